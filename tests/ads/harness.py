"""Runs the ads market plugin on the test chain with real agents, and records what the advertiser and merchant see.

`MarketRun` implements the plugin's EconomyContext over a tests.roles World: it builds the market's participants
from their factories and options (as the economy runner does), funds them, runs the phases by stage, moves the
chain past the campaigns' end, and keeps every token holder it knows of, fresh payees included. `Recorder` keeps
every message an agent handled and every reply it received, for the unlinkability test.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, call
from agents.markets.ads import AdsSection
from agents.markets.plugin import Ledger, Participant, Stage
from agents.mods import Inbound, ModContext, Next
from agents.process import load_factory
from agents.settings import AgentSettings
from agents.wallet import Wallet
from marketplace.chain import ChainConnection, TokenClient
from marketplace.sim.markets import installed_markets
from tests.roles.world import World

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)
STAGES: tuple[Stage, ...] = ("setup", "trade", "settle", "after-deadlines")


@dataclass
class Recorder:
    """Everything one agent received: handled messages (sender, schema, payload) and replies to its requests."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, agent: AgoraAgent) -> None:
        """Record `agent`'s inbound messages (a handler mod) and the replies its requests get."""

        async def record(msg: Inbound, ctx: ModContext, next_: Next) -> None:
            self.messages.append((msg.sender, msg.payload))
            await next_(msg, ctx)

        agent.use(record)
        original = agent.request_any

        async def request_any(destination: str, message: Any, expect: Any, *, wait: float = 10.0) -> Any:
            reply = await original(destination, message, expect, wait=wait)
            self.messages.append((destination, reply.json()))
            return reply

        agent.request_any = request_any  # type: ignore[method-assign]  # instance-level wrapper, test only

    def text(self) -> str:
        """Every recorded sender and payload, as one lower-case string to search."""
        return "\n".join(f"{sender} {payload}" for sender, payload in self.messages).lower()


@dataclass
class MarketRun:
    """The EconomyContext the ads plugin's phases see, over a World."""

    world: World
    section: AdsSection
    seed: int = 7
    ledger: Ledger = field(default_factory=Ledger)
    agents: dict[str, AgoraAgent] = field(default_factory=dict)
    specs: dict[str, Participant] = field(default_factory=dict)
    recorders: dict[str, Recorder] = field(default_factory=dict)

    @property
    def conn(self) -> ChainConnection:
        """The treasury's connection."""
        return self.world.conn

    async def start(self, record: tuple[str, ...] = ()) -> None:
        """Build, fund and start every participant; record the named ones' views."""
        market = installed_markets()["ads"]
        for spec in market.participants(self.section, self.seed):
            seed = f"ads-test:{spec.name}"
            settings = AgentSettings(name=spec.name, seed=seed, data_dir=self.world.workdir / "agents" / spec.name)
            options = self.world.options(**spec.options)
            agent = load_factory(spec.factory)(settings, AgentDeps(wallet=Wallet.from_seed(seed)), options)
            logging.getLogger(spec.name).setLevel(logging.WARNING)
            if spec.name in record:
                self.recorders[spec.name] = Recorder()
                self.recorders[spec.name].attach(agent)
            await self.world.fund(agent.keys.eth_address, spec.funding)
            await agent.start()
            self.world.started.append(agent)
            self.agents[spec.name], self.specs[spec.name] = agent, spec

    async def run(self) -> None:
        """Every phase by stage; the chain moves past the campaigns' end before the after-deadlines stage."""
        market = installed_markets()["ads"]
        phases = market.phases(self.section)
        for stage in STAGES:
            if stage == "after-deadlines":
                self.world.chain.increase_time(market.settle_window(self.section) + 60)
            for phase in phases:
                if phase.stage == stage:
                    await phase.run(self)

    async def holders(self) -> dict[str, int]:
        """Token balance of every participant, the AdCampaigns contract and every payee the market reported."""
        token = TokenClient(self.conn)
        found = {name: await token.balance_of(a.keys.eth_address) for name, a in self.agents.items()}
        found["AdCampaigns"] = await token.balance_of(self.conn.deployment.address("AdCampaigns"))
        for payee in self.ledger.sections.get("ads", {}).get("payees", []):
            found[payee] = await token.balance_of(payee)
        return found

    # --- EconomyContext ---------------------------------------------------------------------------
    async def call(self, name: str, command: Command[A, R], args: A, *, wait: float = 120.0) -> R:
        """A control command to a participant."""
        return await call(self.world.operator, self.agents[name].address, command, args, wait=wait)

    def address(self, name: str) -> str:
        """A participant's agent address."""
        return str(self.agents[name].address)

    def account(self, name: str) -> str:
        """A participant's settlement account."""
        return str(self.agents[name].keys.eth_address)

    def names(self, role: str) -> list[str]:
        """Participants with this role."""
        return [n for n, s in self.specs.items() if s.role == role]

    def owner_names(self) -> dict[str, str]:
        """Settlement account → participant name."""
        return {a.keys.eth_address.lower(): n for n, a in self.agents.items()}

    def alive(self, name: str) -> bool:
        """Every participant stays alive here."""
        return True

    async def kill(self, name: str) -> None:
        """These runs inject no faults: a phase that asks for one is a bug in the test."""
        raise AssertionError(f"the ads harness kills nobody, yet a phase asked to kill {name}")

    def faults(self, phase: str) -> list[str]:
        """No faults in these runs."""
        return []

    def progress(self, phase: str, done: int, total: int) -> None:
        """Progress is not shown."""


def totals(holders: dict[str, int]) -> Counter[str]:
    """Balances as a Counter (for readable diffs in assertions)."""
    return Counter(holders)
