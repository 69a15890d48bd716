"""Agent hosts placed as Ray actors, on a local Ray instance bound to loopback: hosted agents answer over HTTP,
stop one by one, die with their actor and come back from their stores; the default economy on two Ray-placed
hosts gives the in-process report."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import ray
from uagents.dispatch import dispatcher

from agents.base import AgentDeps, AgoraAgent
from agents.host import HostedAgent, HostError, HostHandle, HostLauncher, HostPlan
from agents.markets.plugin import Phase
from agents.process import LOOPBACK_ONLY_ENV
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from marketplace.chain import local_chain
from marketplace.sim.economy import CLOCK_START, Economy
from marketplace.sim.ray_hosts import RayHost, connect, ray_launcher
from marketplace.sim.report import EconomyReport
from marketplace.sim.scenario import load_scenario
from protocols.jobs import InferenceRequest, InferenceResult
from tests.sim.conftest import DefaultRun

ECHO = "tests.agents.test_host:echo"  # answers with its name and how many requests its store has counted
ADDRESSES = ("127.0.0.2", "127.0.0.3")


@pytest.fixture(scope="module")
def launcher() -> Iterator[HostLauncher]:
    """One local Ray instance on 127.0.0.1 for the module; its actors refuse any connection but loopback."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOOPBACK_ONLY_ENV, "1")
        with _ray_leaks_ignored():
            connect()
        try:
            yield ray_launcher()
        finally:
            with _ray_leaks_ignored():
                ray.shutdown()


@contextlib.contextmanager
def _ray_leaks_ignored() -> Iterator[None]:
    """Ray's start and shutdown leave log files and process handles unclosed (ResourceWarning, an error under
    this suite's filters): collect them here, where they are known to be Ray's, rather than in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()


@pytest.fixture
async def asker(tmp_path: Path) -> AsyncIterator[tuple[AgoraAgent, StaticResolver]]:
    directory = StaticResolver()
    settings = AgentSettings(name="asker", seed="ray-asker", data_dir=tmp_path / "asker")
    async with AgoraAgent(settings, AgentDeps(resolver=directory)) as agent:
        yield agent, directory
    dispatcher.sinks.pop(agent.address, None)


def _plan(tmp_path: Path, names: list[str], asker: AgoraAgent, host: str = "127.0.0.2") -> HostPlan:
    members = [HostedAgent(ECHO, AgentSettings(name=n, seed=f"ray-{n}", data_dir=tmp_path / n)) for n in names]
    return HostPlan(agents=members, host=host, peers={asker.address: [asker.endpoint]})


async def _launch(launcher: HostLauncher, plan: HostPlan, directory: StaticResolver) -> HostHandle:
    (host,) = await launcher([plan])
    for address, endpoint in host.agents.values():
        directory.add(address, endpoint)
    return host


async def _ask(asker: AgoraAgent, host: HostHandle, name: str, job: str) -> str:
    request = InferenceRequest(job_id=job, model_id="m", inputs=[[1.0]], price=1)
    reply = await asker.request(host.agents[name][0], request, InferenceResult, wait=20.0)
    return reply.model_id


async def _status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.head(url) as response:
        return response.status


async def test_plan_placedAsActor_agentsAnswerOverHttp(
    launcher: HostLauncher, asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, directory = asker
    host = await _launch(launcher, _plan(tmp_path, ["a", "b", "c"], agent), directory)
    try:
        assert isinstance(host, RayHost)
        assert host.url.startswith("http://127.0.0.2:")  # bound where the plan says, one server for all three
        assert all(endpoint.startswith(f"{host.url}/agents/") for _, endpoint in host.agents.values())
        assert [await _ask(agent, host, n, f"j-{n}") for n in ("a", "b", "c")] == ["a:1", "b:1", "c:1"]
        assert not set(dispatcher.sinks) & {address for address, _ in host.agents.values()}  # not in this process
    finally:
        assert await host.stop() == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        await _status(host.agents["a"][1])


async def test_stopAgent_othersKeepServing(
    launcher: HostLauncher, asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, directory = asker
    host = await _launch(launcher, _plan(tmp_path, ["a", "b"], agent), directory)
    try:
        assert await _status(host.agents["a"][1]) == 200
        await host.stop_agent("a")
        assert await _status(host.agents["a"][1]) == 404
        assert await _ask(agent, host, "b", "still-there") == "b:1"
    finally:
        await host.stop()


async def test_kill_samePlanAgain_agentsResumeFromStores(
    launcher: HostLauncher, asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    """ray.kill ends the actor's process mid-service; the plan placed again on the same port keeps the agents'
    addresses, endpoints and stores."""
    agent, directory = asker
    host = await _launch(launcher, _plan(tmp_path, ["a"], agent), directory)
    assert await _ask(agent, host, "a", "before") == "a:1"
    await host.kill()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _status(host.agents["a"][1])

    again = await _launch(launcher, host.plan.pinned(host.url), directory)
    try:
        assert again.agents == host.agents
        assert await _ask(agent, again, "a", "after") == "a:2"  # the one served before the crash, from its store
    finally:
        assert await again.stop() == 0


@pytest.mark.parametrize(("address", "refusal"), [("192.0.2.7", "no live node"), ("node-1", "IP address")])
async def test_planBindingNoNodesAddress_refusedBeforeAnyActor(
    launcher: HostLauncher, asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path, address: str, refusal: str
) -> None:
    agent, _ = asker
    good, bad = _plan(tmp_path, ["a"], agent), _plan(tmp_path, ["b"], agent, host=address)
    cpus = ray.available_resources().get("CPU")
    with pytest.raises(HostError, match=refusal):
        await launcher([good, bad])
    # The good plan's host was started, then ended with the launch: the CPU its actor reserved is free again.
    for _ in range(100):
        if ray.available_resources().get("CPU") == cpus:
            break
        await asyncio.sleep(0.1)
    assert ray.available_resources().get("CPU") == cpus


# --- the default economy on two hosts placed by Ray --------------------------------------------------


@pytest.fixture
def in_process(default_run: DefaultRun) -> EconomyReport:
    """The default scenario's report from one process (tests/sim/conftest.py)."""
    return default_run.report


class CrashingEconomy(Economy):
    """Kills host 1's actor (ray.kill) just before training and places its plan again."""

    crashed = False

    async def _run_phase(self, phase: Phase) -> None:
        if phase.name == "training" and not self.crashed:
            await self.restart_host(1)
            self.crashed = True
        await super()._run_phase(phase)


@pytest.mark.slow
def test_economy_onTwoRayHosts_hostKilledMidRun_sameReportAsInOneProcess(
    launcher: HostLauncher, in_process: EconomyReport, tmp_path: Path
) -> None:
    """Set-up, models and inference run on two Ray-placed hosts; host 1's actor is then killed and placed again
    before training, and the run ends with the same report as the one in one process."""
    with local_chain(accounts=2, genesis_time=int(CLOCK_START)) as chain:
        scenario = load_scenario()
        economy = CrashingEconomy(scenario, chain, tmp_path, hosts=2, host_addresses=ADDRESSES, launcher=launcher)
        report = asyncio.run(economy.run())
    assert report.conservation_ok
    assert report.deterministic_view() == in_process.deterministic_view()
    hosts = {name: member.host for name, member in economy.members.items() if member.host is not None}
    assert set(hosts) == set(economy.members)  # every participant served by a Ray-placed host
    assert all(isinstance(host, RayHost) for host in hosts.values())
    assert {host.url.split("//")[1].split(":")[0] for host in hosts.values()} == set(ADDRESSES)
    assert economy.crashed
