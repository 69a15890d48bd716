"""Sharding a scenario's agents over agent-host processes (`agora demo --hosts N`).

Each host is a child process serving many agents behind one HTTP server (agents/host.py); agents on different
hosts talk real HTTP and find each other through the registry. Participants are dealt to hosts round-robin in
scenario order, so every host gets a mix of roles, and host `i` binds the i-th of `addresses` (cycled): give
distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) to run hosts as if on distinct machines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.host import HostedAgent, HostHandle, HostLauncher, HostPlan, HostProcess, spawn_host
from agents.markets.plugin import Participant
from agents.settings import AgentSettings

DEFAULT_ADDRESSES = ("127.0.0.1",)


def deal(names: Sequence[str], hosts: int) -> list[list[str]]:
    """Participant names per host, round-robin in order; empty hosts are dropped."""
    if hosts < 1:
        raise ValueError(f"hosts must be at least 1, not {hosts}")
    shards = [list(names[i::hosts]) for i in range(hosts)]
    return [shard for shard in shards if shard]


def host_plans(
    specs: Sequence[Participant],
    hosts: int,
    settings: Callable[[str], AgentSettings],
    options: dict[str, Any],
    peers: dict[str, list[str]],
    addresses: Sequence[str] = DEFAULT_ADDRESSES,
) -> list[HostPlan]:
    """One plan per host: its participants built by their role factories from `options` plus their own."""
    by_name = {spec.name: spec for spec in specs}
    plans = []
    for i, shard in enumerate(deal([spec.name for spec in specs], hosts)):
        agents = [HostedAgent(by_name[n].factory, settings(n), {**by_name[n].options, **options}) for n in shard]
        plans.append(HostPlan(agents=agents, host=addresses[i % len(addresses)], peers=peers))
    return plans


async def start_hosts(plans: Sequence[HostPlan], at_once: int = 2) -> Sequence[HostHandle]:
    """Spawn every host as a local child process (at most `at_once` starting together: each imports torch and web3
    on 2 cores). The default HostLauncher of the economy runner."""
    starting = asyncio.Semaphore(at_once)

    async def start(plan: HostPlan) -> HostProcess:
        async with starting:
            return await spawn_host(plan, ready_within=120.0 + 2.0 * len(plan.agents))

    results = await asyncio.gather(*(start(plan) for plan in plans), return_exceptions=True)
    started = [r for r in results if isinstance(r, HostProcess)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await asyncio.gather(*(host.stop() for host in started))
        raise failures[0]
    return started


@dataclass(frozen=True)
class Placement:
    """Where a run's agents live: in the runner's process (`hosts=0`), or dealt over `hosts` agent hosts bound to
    `addresses` and started by `launcher` (local child processes by default; Ray actors: sim/ray_hosts.py)."""

    hosts: int = 0
    addresses: tuple[str, ...] = DEFAULT_ADDRESSES
    launcher: HostLauncher = field(default=start_hosts)
    runner_address: str = "127.0.0.1"
    """Where the run's chain, registry and operator listen and are reached: loopback when every host runs on this
    machine, else an address of this machine that the hosts' machines reach."""

    def __post_init__(self) -> None:
        if self.runner_address in ("0.0.0.0", "::", ""):  # noqa: S104 - refused, not bound
            raise ValueError("the runner address is where hosts reach the chain and registry: name one address")

    def economy_kwargs(self) -> dict[str, Any]:
        """The Economy keyword arguments this placement stands for."""
        return {
            "hosts": self.hosts,
            "host_addresses": self.addresses,
            "launcher": self.launcher,
            "runner_address": self.runner_address,
        }
