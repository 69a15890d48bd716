"""The economy runner: a scenario on a fresh chain with the registry and every market's agents, phase by phase.

The runner names no market and no role. It builds each market's participants from plain options (chain
RPC URL, deployment manifest, registry URL, blob folder) in this process or, for the roles listed in
`processes`, in child processes talking real HTTP; funds them; then runs every market's phases in stage
order, driving agents only through operator control commands. Agents' business clocks are simulated and
moved by command; the chain's clock moves with `evm_increaseTime`, so a seed fixes the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty, call
from agents.host import HostHandle, HostLauncher
from agents.markets.plugin import Ledger, Participant, Phase, Stage, each
from agents.offload import OFFLOAD_ENV
from agents.process import AgentProcess, load_factory, spawn_agent
from agents.resolver import StaticResolver
from agents.roles.base import ADVANCE_CLOCK, GAS_USED, PUBLISH_CARD, STAKE, TRAFFIC, Amount, Seconds
from agents.settings import AgentSettings
from agents.wallet import Wallet
from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.chain.node import free_port, rpc_call
from marketplace.registry.app import RegistrySettings, create_app
from marketplace.sim.hosts import DEFAULT_ADDRESSES, Placement, host_plans, start_hosts
from marketplace.sim.measure import MemoryFigure, MemorySampler, PhaseThroughput, block_number, transactions_in
from marketplace.sim.report import AgentBalance, EconomyReport, GasFigure
from marketplace.sim.scenario import Scenario

GAS_MONEY = 10**20
"""Native currency (wei) given to every agent account for transaction fees."""

CLOCK_START = 1_700_000_000.0
"""Where every agent's simulated clock starts (unix s)."""

STAGES: tuple[Stage, ...] = ("setup", "trade", "settle", "after-deadlines")

ESCROWS = ("JobEscrow", "PaymentChannels", "FederatedRewards", "AdCampaigns", "ValidatorStaking")
"""Contracts that hold tokens for others; all but the stakes must be empty once every deadline has passed."""

Progress = Callable[[str, int, int], None]
"""Called as (phase, done, total) while a phase runs."""

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


@dataclass
class Member:
    """One participant of the run: how it was built and where it runs."""

    spec: Participant
    wallet: Wallet
    address: str
    agent: AgoraAgent | None = None
    process: AgentProcess | None = None
    host: HostHandle | None = None
    alive: bool = True


class Economy:
    """One run of a scenario on a LocalChain; `await Economy(...).run()` returns the report."""

    def __init__(
        self,
        scenario: Scenario,
        chain: LocalChain,
        workdir: Path,
        progress: Progress | None = None,
        processes: frozenset[str] = frozenset(),
        registry_url: str | None = None,
        hosts: int = 0,
        host_addresses: Sequence[str] = DEFAULT_ADDRESSES,
        launcher: HostLauncher = start_hosts,
        registry_database: str | None = None,
        runner_address: str = "127.0.0.1",
    ) -> None:
        self.scenario = scenario
        self.chain = chain
        self.workdir = workdir
        self._progress = progress or (lambda phase, done, total: None)
        self.processes = processes
        """Roles whose agents run in child processes (over HTTP) instead of this one."""
        self.hosts = hosts
        """Agent-host processes the other participants are dealt to (0: they run in this process)."""
        self.host_addresses = tuple(host_addresses)
        self.launcher = launcher
        """How hosts start: local child processes (default), or Ray actors (marketplace/sim/ray_hosts.py)."""
        self._host_processes: list[HostHandle] = []
        self.registry_url = registry_url
        """A registry that outlives the run (`agora demo --serve`); None: the run serves its own."""
        self.runner_address = runner_address
        """Where the run's own registry and operator listen and are reached (the chain is started there too)."""
        self.registry_database = registry_database
        """A Postgres server (SQLAlchemy URL) the run's own registry keeps its tables on, in a database of its own
        created for the run and dropped after it; None: a SQLite file in the run's folder."""
        self.seed = scenario.seed
        self.concurrency = scenario.concurrency
        self.current_phase = ""
        self.ledger = Ledger()
        self.members: dict[str, Member] = {}
        self.log_level = logging.WARNING
        self._resolver = StaticResolver()
        operator = AgentSettings(
            name="operator", seed=f"agora-demo:{self.seed}:operator", data_dir=workdir / "operator", host=runner_address
        )
        self._operator = AgoraAgent(operator, AgentDeps(resolver=self._resolver))
        logging.getLogger("operator").setLevel(logging.WARNING)
        self._gas: dict[str, tuple[int, int]] = {}
        self._timeline: list[dict[str, int]] = []
        self._phases: list[str] = []
        self._throughput: list[PhaseThroughput] = []
        self._traffic_of_stopped = 0
        """Messages handled by agents the run stopped (their counters end with them)."""
        self.conn: ChainConnection

    @property
    def operator_endpoint(self) -> str:
        """Where the agents reach the runner's operator (its control commands come from there)."""
        return str(self._operator.endpoint)

    # --- the EconomyContext that phases see -------------------------------------------------------
    async def call(self, name: str, command: Command[A, R], args: A, *, wait: float = 120.0) -> R:
        """Send a control command to a participant and return its typed result."""
        return await call(self._operator, self.members[name].address, command, args, wait=wait)

    def address(self, name: str) -> str:
        """A participant's agent address."""
        return self.members[name].address

    def account(self, name: str) -> str:
        """A participant's settlement account."""
        return self.members[name].wallet.eth_address

    def names(self, role: str) -> list[str]:
        """Participants with this role, in creation order."""
        return [n for n, m in self.members.items() if m.spec.role == role]

    def owner_names(self) -> dict[str, str]:
        """Settlement account (lower-case) → participant name."""
        return {m.wallet.eth_address.lower(): n for n, m in self.members.items()}

    def alive(self, name: str) -> bool:
        """Whether the participant is still running."""
        return self.members[name].alive

    async def kill(self, name: str) -> None:
        """Stop a participant (its gas record is kept for the report)."""
        member = self.members[name]
        if not member.alive:
            return
        self._add_gas(await self.call(name, GAS_USED, Empty()))
        self._traffic_of_stopped += (await self.call(name, TRAFFIC, Empty())).messages
        member.alive = False
        if member.process is not None:
            await member.process.stop()
        elif member.host is not None:
            await member.host.stop_agent(name)
        elif member.agent is not None:
            await member.agent.stop()

    def faults(self, phase: str) -> list[str]:
        """Participants the scenario kills in this phase."""
        return [f.agent for f in self.scenario.faults if f.phase == phase]

    def progress(self, phase: str, done: int, total: int) -> None:
        """Report progress of a long phase."""
        self._progress(phase, done, total)

    # --- set-up -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _registry(self) -> AsyncIterator[str]:
        if self.registry_url is not None:
            yield self.registry_url
            return
        async with contextlib.AsyncExitStack() as stack:
            database = f"sqlite+aiosqlite:///{self.workdir / 'registry.sqlite3'}"
            if self.registry_database is not None:
                database = await stack.enter_async_context(fresh_database(self.registry_database))
            runner = web.AppRunner(create_app(RegistrySettings(database_url=database, ttl=3600)), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            port = free_port(self.runner_address)
            await web.TCPSite(runner, self.runner_address, port).start()
            yield f"http://{self.runner_address}:{port}"

    async def _start_members(self, registry_url: str) -> None:
        manifest = self.chain.deployment.save(self.workdir / "deployment.json")
        common = {
            "rpc_url": self.chain.rpc_url,
            "manifest": str(manifest),
            "registry_url": registry_url,
            "operators": [self._operator.address],
            "clock_start": CLOCK_START,
        }
        specs = self.scenario.participants()
        for spec in specs:
            wallet = Wallet.from_seed(f"agora-demo:{self.seed}:{spec.name}")
            self.members[spec.name] = Member(spec, wallet, wallet.agent_address)

        def settings(name: str) -> AgentSettings:
            seed = f"agora-demo:{self.seed}:{name}"
            # With several agents driven at once, a seller must not serve its buyers one message at a time.
            return AgentSettings(name=name, seed=seed, data_dir=self.workdir / "agents" / name,
                                 concurrent_handlers=self.concurrency > 1)  # fmt: skip

        starting = asyncio.Semaphore(2)  # each child imports torch and web3: more at once only thrash 2 cores

        async def spawn(member: Member) -> None:
            peers = {self._operator.address: [self._operator.endpoint]}
            options = {**member.spec.options, **common}
            async with starting:
                member.process = await spawn_agent(
                    member.spec.factory, settings(member.spec.name), peers, options, ready_within=120
                )
            self._resolver.add(member.process.address, member.process.endpoint)

        remote = [m for m in self.members.values() if m.spec.role in self.processes]
        await asyncio.gather(*(spawn(m) for m in remote))  # child start-up (imports) overlaps
        if self.hosts:
            await self._start_hosts(common, settings)
        for name, member in self.members.items():
            if member.process is not None or member.host is not None:
                continue
            options: dict[str, Any] = {**member.spec.options, **common}
            member.agent = load_factory(member.spec.factory)(settings(name), AgentDeps(wallet=member.wallet), options)
            logging.getLogger(name).setLevel(self.log_level)
            await member.agent.start()

    async def _start_hosts(self, common: dict[str, Any], settings: Callable[[str], AgentSettings]) -> None:
        peers = {self._operator.address: [self._operator.endpoint]}
        specs = [m.spec for m in self.members.values() if m.spec.role not in self.processes]
        plans = host_plans(specs, self.hosts, settings, common, peers, self.host_addresses)
        self._host_processes = list(await self.launcher(plans))
        for host in self._host_processes:
            for name, (address, endpoint) in host.agents.items():
                self.members[name].host = host
                self._resolver.add(address, endpoint)

    async def restart_host(self, index: int) -> None:
        """Crash host `index` (SIGKILL: nothing stopped cleanly) and start it again on the same address and port:
        its agents come back from their stores, with the same addresses and endpoints."""
        crashed = self._host_processes[index]
        await crashed.kill()
        (again,) = await self.launcher([crashed.plan.pinned(crashed.url)])
        self._host_processes[index] = again
        for name in again.agents:
            self.members[name].host = again

    async def _fund(self, treasury: TokenClient) -> None:
        async def fund(member: Member) -> None:
            rpc_call(self.chain.rpc_url, "anvil_setBalance", [member.wallet.eth_address, hex(GAS_MONEY)])
            if member.spec.funding:
                await treasury.transfer(member.wallet.eth_address, member.spec.funding)

        await each(self.concurrency, list(self.members.values()), fund)
        staking = [name for name, member in self.members.items() if member.spec.stake]
        await self._each_call(
            staking, lambda name: self.call(name, STAKE, Amount(amount=self.members[name].spec.stake))
        )

    async def _each_call(self, names: Sequence[str], act: Callable[[str], Awaitable[Any]]) -> None:
        """`act` on every named participant, `concurrency` at a time."""

        async def run(name: str) -> None:
            await act(name)

        await each(self.concurrency, names, run)

    async def _advance(self, seconds: int) -> None:
        """Move the chain's clock and every live agent's simulated clock forward."""
        self.chain.increase_time(seconds)
        alive = [name for name, member in self.members.items() if member.alive]
        await self._each_call(alive, lambda name: self.call(name, ADVANCE_CLOCK, Seconds(seconds=seconds)))

    # --- accounting -------------------------------------------------------------------------------
    def _add_gas(self, used: Any) -> None:
        for op, (count, total) in used.gas.items():
            known = self._gas.get(op, (0, 0))
            self._gas[op] = (known[0] + count, known[1] + total)

    async def _balances(self, token: TokenClient) -> dict[str, int]:
        found = {"treasury": await token.balance_of(self.chain.treasury.address)}
        held = await asyncio.gather(*(token.balance_of(m.wallet.eth_address) for m in self.members.values()))
        found.update(zip(self.members, held, strict=True))
        for contract in ESCROWS:
            found[contract] = await token.balance_of(self.chain.deployment.address(contract))
        for name, plugin in self.scenario.plugins.items():
            # Accounts a market paid that are no participant (fresh payees): their tokens still count.
            outside = plugin.holders(self.ledger.sections.get(name, {}))
            found[f"{name}: accounts outside the economy"] = sum(
                await asyncio.gather(*(token.balance_of(account) for account in outside))
            )
        return found

    async def _snapshot(self, token: TokenClient, phase: str) -> dict[str, int]:
        balances = await self._balances(token)
        self._phases.append(phase)
        self._timeline.append({k: v for k, v in balances.items() if k in self.members})
        return balances

    async def _stakes(self) -> dict[str, int]:
        """Each staked agent's remaining stake (bond), which slashing reduces."""
        from marketplace.chain import StakingClient

        staking = StakingClient(self.conn)
        return {
            name: (await staking.stake_of(m.wallet.eth_address)).total
            for name, m in self.members.items()
            if m.spec.stake
        }

    # --- the run ----------------------------------------------------------------------------------
    def _phases_by_stage(self) -> dict[Stage, list[Phase]]:
        staged: dict[Stage, list[Phase]] = {stage: [] for stage in STAGES}
        for name, plugin in self.scenario.plugins.items():
            for phase in plugin.phases(self.scenario.markets[name]):
                staged[phase.stage].append(phase)
        return staged

    async def _run_phase(self, phase: Phase) -> None:
        self.current_phase = phase.name
        if not phase.faults_inside:
            for name in self.faults(phase.name):
                await self.kill(name)
        async with self._measured(phase.name):
            await phase.run(self)

    async def _traffic(self) -> int:
        """Messages every agent has handled so far (asked by control command, so from any host)."""
        counts: list[int] = []

        async def ask(name: str) -> None:
            counts.append((await self.call(name, TRAFFIC, Empty())).messages)

        await each(max(self.concurrency, 4), [n for n, m in self.members.items() if m.alive], ask)
        return sum(counts) + self._traffic_of_stopped

    @contextlib.asynccontextmanager
    async def _measured(self, phase: str) -> AsyncIterator[None]:
        """Record what `phase` moved: seconds, messages agents took in, paid calls, transactions on chain."""
        rpc_url = self.chain.rpc_url
        messages, calls, block = await self._traffic(), self.ledger.calls.get("paid", 0), await block_number(rpc_url)
        began = time.perf_counter()
        yield
        seconds = time.perf_counter() - began
        last = await block_number(rpc_url)
        self._throughput.append(
            PhaseThroughput(
                phase=phase,
                seconds=round(seconds, 3),
                messages=max(0, await self._traffic() - messages),  # a restarted host's agents count afresh
                paid_calls=self.ledger.calls.get("paid", 0) - calls,
                transactions=await transactions_in(rpc_url, block + 1, last),
            )
        )

    async def _set_up(self, registry_url: str, token: TokenClient, started: float, timing: dict[str, float]) -> None:
        """Start and fund every participant, publish cards, run the markets' set-up phases."""
        await self._start_members(registry_url)
        timing["start_seconds"] = time.perf_counter() - started
        async with self._measured("funding"):
            await self._fund(token)
        # Cards go up before set-up, so agents resolve each other (a seller fetches a parent model from its
        # creator), and again after it, listing what set-up built.
        async with self._measured("cards"):
            await self._each_call(list(self.members), lambda name: self.call(name, PUBLISH_CARD, Empty()))
        for phase in self._phases_by_stage()["setup"]:
            await self._run_phase(phase)
        async with self._measured("cards"):
            await self._each_call(list(self.members), lambda name: self.call(name, PUBLISH_CARD, Empty()))

    async def run(self) -> EconomyReport:
        """Run every phase and return the report."""
        started = time.perf_counter()
        timing: dict[str, float] = {}
        staged = self._phases_by_stage()
        with MemorySampler() as memory:
            async with self.chain.connect() as conn, self._registry() as registry_url:
                self.conn = conn
                token = TokenClient(conn)
                supply_before = await token.total_supply()
                initial = await self._balances(token)
                await self._operator.start()
                try:
                    await self._set_up(registry_url, token, started, timing)
                    start = await self._snapshot(token, "funded")
                    timing["setup_seconds"] = time.perf_counter() - started
                    for phase in staged["trade"]:
                        await self._run_phase(phase)
                        await self._snapshot(token, phase.name)
                    for name in self.faults("settlement"):
                        await self.kill(name)
                    for phase in staged["settle"]:
                        await self._run_phase(phase)
                    windows = [p.settle_window(self.scenario.markets[n]) for n, p in self.scenario.plugins.items()]
                    async with self._measured("deadlines pass"):
                        await self._advance(max(windows, default=0) + 60)
                    for phase in staged["after-deadlines"]:
                        await self._run_phase(phase)
                    final = await self._snapshot(token, "settled")
                    stakes = await self._stakes()
                    alive = [name for name, member in self.members.items() if member.alive]

                    async def tally_gas(name: str) -> None:
                        self._add_gas(await self.call(name, GAS_USED, Empty()))

                    await self._each_call(alive, tally_gas)
                finally:
                    await self._stop_all()
                supply_after = await token.total_supply()
        timing["wall_seconds"] = time.perf_counter() - started
        report = self._report(initial, start, final, supply_before, supply_after, timing)
        report.throughput = self._throughput
        report.memory = MemoryFigure(
            peak_bytes=memory.peak_agora, anvil_bytes=memory.peak_anvil, agents=len(self.members)
        )
        for name, stake in stakes.items():
            report.balances[name].stake_after = stake
        return report

    async def _stop_all(self) -> None:
        for member in self.members.values():
            if not member.alive:
                continue
            member.alive = False
            if member.process is not None:
                await member.process.stop()
            elif member.agent is not None:
                await member.agent.stop()
        await asyncio.gather(*(host.stop() for host in self._host_processes))
        await self._operator.stop()
        if any(m.process is not None for m in self.members.values()) or self._host_processes:
            # Let asyncio finish closing the children's pipes before asyncio.run() closes the loop.
            await asyncio.sleep(0.1)

    def _report(
        self,
        initial: dict[str, int],
        start: dict[str, int],
        final: dict[str, int],
        supply_before: int,
        supply_after: int,
        timing: dict[str, float],
    ) -> EconomyReport:
        holders_ok = sum(initial.values()) == supply_before and sum(final.values()) == supply_after
        no_stuck_funds = all(final[contract] == 0 for contract in ESCROWS if contract != "ValidatorStaking")
        balances = {
            "treasury": AgentBalance(
                address=self.chain.treasury.address,
                role="treasury",
                before=initial["treasury"],
                after=final["treasury"],
            )
        }
        for name, m in self.members.items():
            balances[name] = AgentBalance(
                address=m.wallet.eth_address, role=m.spec.role, before=start[name], after=final[name]
            )
        ledger = self.ledger
        return EconomyReport(
            scenario=self.scenario.name,
            seed=self.scenario.seed,
            token_supply_before=supply_before,
            token_supply_after=supply_after,
            balances=balances,
            jobs={kind: dict(sorted(counts.items())) for kind, counts in sorted(ledger.jobs.items())},
            inference_calls=dict(ledger.calls),
            channel_claims=ledger.claims,
            gas_used={op: GasFigure(count=c, total=t) for op, (c, t) in sorted(self._gas.items())},
            royalties=dict(sorted(ledger.royalties.items())),
            validations=ledger.validations,
            refunds=ledger.refunds,
            conservation_ok=holders_ok and no_stuck_funds and supply_before == supply_after,
            balance_timeline=self._timeline,
            phases=self._phases,
            flows=dict(sorted(ledger.flows.items())),
            markets=ledger.sections,
            timing=timing,
        )


@contextlib.asynccontextmanager
async def fresh_database(server: str) -> AsyncIterator[str]:
    """A database created on the Postgres `server` (an SQLAlchemy URL) for one run, dropped after it: a registry
    keyed by agent address must not list the cards a previous run with the same seed left."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.ext.asyncio import create_async_engine

    url = make_url(server)
    if not url.drivername.startswith("postgresql"):
        raise ValueError(f"the registry database must be a PostgreSQL server URL, not {url.drivername}://…")
    name = f"agora_run_{os.urandom(6).hex()}"
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


def run_economy(
    scenario: Scenario,
    workdir: Path,
    progress: Progress | None = None,
    processes: frozenset[str] = frozenset(),
    placement: Placement | None = None,
    registry_database: str | None = None,
) -> EconomyReport:
    """Start a fresh anvil with agora deployed, run the scenario on it, stop everything, return the report;
    the registry keeps its tables on the Postgres server `registry_database` when given (else in SQLite)."""
    from marketplace.chain import local_chain

    # Torch releases the GIL in its kernels: threads keep the loop responsive without a process pool's
    # start-up cost per agent process (children inherit the setting).
    os.environ.setdefault(OFFLOAD_ENV, "thread")
    report = progress or (lambda phase, done, total: None)
    report("chain", 0, 1)
    # Chain time runs from the agents' clock start, one second a block: the committee draws (seeded by block
    # hashes) and so the whole report repeat for a seed.
    placement = placement or Placement()
    with local_chain(accounts=2, genesis_time=int(CLOCK_START), host=placement.runner_address) as chain:
        report("chain", 1, 1)
        economy = Economy(scenario, chain, workdir, progress, processes, registry_database=registry_database,
                          **placement.economy_kwargs())  # fmt: skip
        return asyncio.run(economy.run())


__all__ = ["Economy", "run_economy"]
