"""Agent hosts: many agents behind one HTTP server, each still checking its own envelopes and keeping its own store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from uagents import Context
from uagents_core.identity import Identity

from agents.base import AgentDeps, AgoraAgent
from agents.host import AgentHost, HostedAgent, HostError, HostPlan, HostProcess, spawn_host
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from agents.testing.doubles import forge_envelope, post_envelope
from protocols.jobs import InferenceRequest, InferenceResult

Make = Callable[..., AgoraAgent]
ECHO = "tests.agents.test_host:echo"


def echo(settings: AgentSettings, deps: AgentDeps, options: dict[str, object]) -> AgoraAgent:
    """Answers an InferenceRequest with its own name as the model id, and counts what it served in its store."""
    agent = AgoraAgent(settings, deps)

    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        served = int(agent.store.get("echo.served", 0)) + 1
        agent.store.put("echo.served", served)
        result = InferenceResult(
            job_id=msg.job_id, model_id=f"{settings.name}:{served}", outputs=[], output_commitment="0x"
        )
        await ctx.send(sender, result)

    agent.on_message(InferenceRequest, replies=InferenceResult)(handle)
    return agent


def _plan(tmp_path: Path, names: list[str], peers: dict[str, list[str]]) -> HostPlan:
    members = [HostedAgent(ECHO, AgentSettings(name=n, seed=f"host-{n}", data_dir=tmp_path / n)) for n in names]
    return HostPlan(agents=members, peers=peers)


@pytest.fixture
async def asker(make_agent: Make) -> AsyncIterator[tuple[AgoraAgent, StaticResolver]]:
    directory = StaticResolver()
    agent = make_agent("asker", AgentDeps(resolver=directory))
    async with agent:
        yield agent, directory


async def _ask(asker: AgoraAgent, host: HostProcess, name: str, job: str) -> str:
    address, _ = host.agents[name]
    request = InferenceRequest(job_id=job, model_id="m", inputs=[[1.0]], price=1)
    reply = await asker.request(address, request, InferenceResult, wait=10.0)
    return reply.model_id


async def test_one_server_routes_to_many_agents_over_http(
    asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, directory = asker
    host = await spawn_host(_plan(tmp_path, ["a", "b", "c"], {agent.address: [agent.endpoint]}))
    try:
        endpoints = {endpoint for _, endpoint in host.agents.values()}
        assert {e.removeprefix(host.url).split("/")[1] for e in endpoints} == {"agents"}  # one server, one port
        for address, endpoint in host.agents.values():
            directory.add(address, endpoint)
        assert [await _ask(agent, host, n, f"j-{n}") for n in ("a", "b", "c")] == ["a:1", "b:1", "c:1"]
    finally:
        assert await host.stop() == 0


async def test_each_hosted_agent_checks_its_own_envelopes(
    asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, _ = asker
    host = await spawn_host(_plan(tmp_path, ["a", "b"], {agent.address: [agent.endpoint]}))
    try:
        (a, a_endpoint), (b, _) = host.agents["a"], host.agents["b"]
        message = InferenceRequest(job_id="x", model_id="m", inputs=[[1.0]], price=1)
        mallory = Identity.generate()
        # Signed by one key while claiming another sender: refused by the agent, not waved through by the host.
        status, body = await post_envelope(a_endpoint, forge_envelope(mallory, a, message, sender=agent.address))
        assert (status, body["code"]) == (401, "bad_signature")
        # A valid envelope for b posted on a's path: a refuses what is not addressed to it.
        status, body = await post_envelope(a_endpoint, forge_envelope(mallory, b, message))
        assert (status, body["code"]) == (404, "wrong_target")
        # An address no agent on this host has.
        status, body = await post_envelope(
            f"{host.url}/agents/agent1qnobody/submit", forge_envelope(mallory, a, message)
        )
        assert (status, body["code"]) == (404, "unknown_agent")
    finally:
        await host.stop()


async def test_stopping_one_agent_leaves_the_others_serving(
    asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, directory = asker
    host = await spawn_host(_plan(tmp_path, ["a", "b"], {agent.address: [agent.endpoint]}))
    try:
        for address, endpoint in host.agents.values():
            directory.add(address, endpoint)
        await host.stop_agent("a")
        async with aiohttp.ClientSession() as session, session.head(host.agents["a"][1]) as gone:
            assert gone.status == 404
        assert await _ask(agent, host, "b", "still-there") == "b:1"
    finally:
        await host.stop()


async def test_killed_host_restarts_with_its_agents_stores(
    asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    """SIGKILL, then the same plan again: the agents keep their addresses, stores and replay ledgers."""
    agent, directory = asker
    plan = _plan(tmp_path, ["a"], {agent.address: [agent.endpoint]})
    host = await spawn_host(plan)
    address, endpoint = host.agents["a"]
    directory.add(address, endpoint)
    seen = forge_envelope(Identity.generate(), address, InferenceRequest(job_id="r", model_id="m", inputs=[], price=1))
    assert (await post_envelope(endpoint, seen))[0] == 200
    # Handled in order: once the reply to this one is back, both were served and counted.
    assert await _ask(agent, host, "a", "before") == "a:2"
    await host.kill()

    again = await spawn_host(plan)
    try:
        assert again.agents["a"][0] == address
        directory.add(address, again.agents["a"][1])
        assert await _ask(agent, again, "a", "after") == "a:3"  # two served before the crash, counted in its store
        status, body = await post_envelope(again.agents["a"][1], seen)
        assert (status, body["code"]) == (409, "replayed")
    finally:
        await again.stop()


async def test_blobs_are_served_through_the_host_path(make_agent: Make, tmp_path: Path) -> None:
    directory = StaticResolver()
    server = AgentHost()
    await server.start()
    try:
        settings = server.settings_for(AgentSettings(name="owner", seed="host-owner", data_dir=tmp_path / "owner"))
        owner = AgoraAgent(settings, AgentDeps(resolver=directory))
        await server.add(owner)
        reader = make_agent("reader", AgentDeps(resolver=directory))
        await reader.start()
        directory.add(owner.address, owner.endpoint)
        data = os.urandom(200_000)
        ref = owner.blobs.grant(owner.blobs.put(data), reader.address)
        assert await reader.blobs.fetch(ref) == data
    finally:
        await server.stop()


async def test_agents_not_built_for_the_host_are_refused(make_agent: Make, tmp_path: Path) -> None:
    server = AgentHost()
    await server.start()
    try:
        with pytest.raises(HostError, match="settings_for"):
            await server.add(make_agent("own-server"))
        with pytest.raises(HostError, match="needs a seed"):
            server.settings_for(AgentSettings(name="no-seed"))
        settings = server.settings_for(AgentSettings(name="twice", seed="host-twice", data_dir=tmp_path / "twice"))
        await server.add(AgoraAgent(settings))
        duplicate = AgoraAgent(settings)
        with pytest.raises(HostError, match="already hosted"):
            await server.add(duplicate)
        await duplicate.stop()  # refused, never started: the caller still owns it
    finally:
        await server.stop()


async def test_host_of_hundreds_of_agents_reports_every_one(tmp_path: Path) -> None:
    """The READY line lists every agent's name, address and endpoint: for 400 agents it outgrows asyncio's
    default 64 KiB line limit, which once failed the launch of a host of the 1,000-agent scenario."""
    names = [f"agent-{i:03d}" for i in range(400)]
    host = await spawn_host(_plan(tmp_path, names, {}))
    try:
        assert sorted(host.agents) == names
        assert len({address for address, _ in host.agents.values()}) == 400
    finally:
        assert await host.stop() == 0


async def test_plans_larger_than_an_environment_string_reach_the_host(
    asker: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    """A plan of a few hundred agents is larger than the 128 KiB an environment string may hold."""
    agent, directory = asker
    (member,) = _plan(tmp_path, ["a"], {}).agents
    bulky = HostedAgent(member.factory, member.settings, {"padding": "x" * 300_000})
    host = await spawn_host(HostPlan(agents=[bulky], peers={agent.address: [agent.endpoint]}))
    try:
        address, endpoint = host.agents["a"]
        directory.add(address, endpoint)
        assert await _ask(agent, host, "a", "bulky") == "a:1"
    finally:
        await host.stop()
