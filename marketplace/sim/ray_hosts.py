"""Agent hosts placed as Ray actors on a Ray cluster: a HostLauncher for the economy runner.

    economy = Economy(scenario, chain, workdir, hosts=4, launcher=ray_launcher("10.0.0.5:6379"))

Each HostPlan becomes one async actor that runs an `AgentHost` and the plan's agents in the actor's own event
loop (agents/host.py `start_plan`, as a host process does, without its pipe or signals). Ray only places and
stops hosts: agents still talk real HTTP to each other, the registry and the chain, so every node must reach
the chain's RPC URL, the registry's URL, the runner's operator endpoint and every other host's URL, and the
runner must reach the hosts' URLs.

Where a host runs follows the address its plan binds: a loopback address can only be reached from the runner's
machine, so that host runs on the runner's own node; a wildcard address (0.0.0.0) runs anywhere (Ray spreads
such hosts over the nodes) and advertises its node's IP; any other address is a node's IP and the host runs on
that node. A plan's `public_url` (a proxy, a NAT) overrides the advertised URL.

`address=None` (or "local") starts a throwaway Ray instance on this machine bound to 127.0.0.1, with no
dashboard and no usage statistics; otherwise `ray.init(address=...)` joins a running cluster (`ray start --head`
on one machine, `ray start --address=HEAD:6379` on the others and on the runner's machine). Every node must run
the same agora and Python packages: Ray ships plans (seeds included) to the actors, not code.

Ray is imported here only: nothing else in agora needs it installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agents.host import AgentHost, HostError, HostHandle, HostLauncher, HostPlan, plan_info, start_plan
from agents.process import LOOPBACK_ONLY_ENV, allow_loopback_only

LOCAL = "local"
WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - names the wildcard bind, binds nothing itself
QUIET = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_IMPORT_WARNING": "1"}
"""Set before Ray starts: no usage statistics reported, no import-order warning."""


def connect(address: str | None = None, *, num_cpus: int = 2, object_store_mb: int = 128) -> None:
    """Join the Ray cluster at `address` (`host:port` of its head), or start a local instance on 127.0.0.1 when
    `address` is None or "local" (`num_cpus` logical CPUs, a small object store: plans and replies are small).
    Does nothing if this process is already connected."""
    if ray.is_initialized():
        return
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address in (None, LOCAL):
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=object_store_mb << 20,
            _node_ip_address="127.0.0.1",
            **quiet,
        )
    else:
        ray.init(address=address, **quiet)


class HostActor:
    """A host's agents in a Ray actor: `start` binds the host and starts them, `stop_agent` stops one, `stop`
    stops them all. One actor per host, in a worker process of its own (a kill ends only that host)."""

    def __init__(self, loopback_only: bool) -> None:
        if loopback_only:
            allow_loopback_only()
        self._server: AgentHost | None = None
        self._names: dict[str, str] = {}

    async def start(self, plan_json: str) -> dict[str, Any]:
        """Bind the plan's address and start its agents; the host's URL and its agents (see `plan_info`)."""
        plan = HostPlan.from_json(plan_json)
        advertise = ray.util.get_node_ip_address() if plan.host in WILDCARDS else None  # type: ignore[no-untyped-call]
        self._server, self._names = await start_plan(plan, advertise)
        return plan_info(self._server, self._names)

    async def stop_agent(self, name: str) -> None:
        """Stop one agent (the others keep serving); an unknown name changes nothing."""
        if self._server is not None and name in self._names:
            await self._server.remove(self._names[name])

    async def stop(self) -> None:
        """Stop every agent, then the server."""
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def ping(self) -> None:
        """Answers while the actor lives (a killed one raises RayActorError instead)."""


_RemoteHost = ray.remote(HostActor)


class RayHost:
    """Runner-side handle on a host running as a Ray actor (implements agents.host.HostHandle)."""

    def __init__(self, actor: Any, plan: HostPlan, info: dict[str, Any]) -> None:
        self.actor = actor
        self.plan = plan
        self.url: str = info["url"]
        self.agents: dict[str, tuple[str, str]] = {a["name"]: (a["address"], a["endpoint"]) for a in info["agents"]}

    async def stop_agent(self, name: str, wait: float = 30.0) -> None:
        """Stop one agent of this host (the others keep running)."""
        await asyncio.wait_for(_result(self.actor.stop_agent.remote(name)), wait)

    async def stop(self, wait: float = 15.0) -> int:
        """Stop every agent and the host, then end the actor; 0 if the agents stopped cleanly within `wait` s,
        1 if not (the actor is ended all the same)."""
        try:
            await asyncio.wait_for(_result(self.actor.stop.remote()), wait)
            code = 0
        except (TimeoutError, RayActorError):
            code = 1
        await self.kill()
        return code

    async def kill(self, wait: float = 30.0) -> None:
        """End the actor's process abruptly (ray.kill), as a crash would, and return once its port refuses
        connections (so the same plan can be placed anew on it). Ray reports an actor dead before its process
        is gone: the port is the proof (behind a plan's `public_url`, only Ray's word is available)."""
        ray.kill(self.actor, no_restart=True)
        async with asyncio.timeout(wait):
            with contextlib.suppress(RayActorError):
                await _result(self.actor.ping.remote())
            if self.plan.public_url is None:
                await _until_refused(self.url)


async def _until_refused(url: str) -> None:
    parts = urlsplit(url)
    while True:
        try:
            _, writer = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:
            return
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)


async def _result(ref: Any) -> Any:
    return await ref


def placement(host: str) -> Any:
    """Where a host binding `host` must run: the runner's node for a loopback address, anywhere for a wildcard,
    else the node with that IP (HostError if the cluster has none)."""
    if host in WILDCARDS:
        return "SPREAD"
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise HostError(f"a host plan binds {host!r}: give an IP address (a node's, loopback or 0.0.0.0)") from None
    if loopback:
        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    for node in ray.nodes():
        if node["Alive"] and node["NodeManagerAddress"] == host:
            return NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
    raise HostError(f"no live node of the Ray cluster has the address {host} that a host plan binds")


def ray_launcher(
    address: str | None = None, *, num_cpus: int = 2, cpus_per_host: float = 1.0, ready_within: float = 300.0
) -> HostLauncher:
    """Connect to Ray now (see `connect`) and return a HostLauncher placing each plan as an actor; a host
    reserves `cpus_per_host` of its node's logical CPUs and must have every agent started within `ready_within` s.
    """
    connect(address, num_cpus=num_cpus)
    loopback_only = os.environ.get(LOOPBACK_ONLY_ENV) == "1"

    async def place(plan: HostPlan) -> RayHost:
        where = placement(plan.host)
        actor: Any = _RemoteHost.options(num_cpus=cpus_per_host, scheduling_strategy=where).remote(loopback_only)
        try:
            info = await asyncio.wait_for(_result(actor.start.remote(plan.to_json())), ready_within)
        except BaseException:
            ray.kill(actor, no_restart=True)
            raise
        return RayHost(actor, plan, info)

    async def launch(plans: Sequence[HostPlan]) -> Sequence[HostHandle]:
        results = await asyncio.gather(*(place(plan) for plan in plans), return_exceptions=True)
        started = [r for r in results if isinstance(r, RayHost)]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.gather(*(host.stop() for host in started))
            raise failures[0]
        return started

    return launch
