"""What every economy role shares: built from plain options (so any process can build it), an operator-only
control channel, a registry card, and a simulated clock the operator can move.

A role factory has the signature `build(settings, deps, options) -> AgoraAgent` that
`agents.process.spawn_agent` expects, so every role runs in-process or in a child process alike.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Control, Empty
from agents.clock import SimulatedClock
from agents.crypto import schema_digest
from agents.resolver import FirstOfResolver, StaticResolver
from agents.settings import AgentSettings
from agents.settlement import Settlement, SettlementSettings
from agents.wallet import Wallet
from marketplace.registry.resolver import RegistryResolver
from protocols.cards import AgentCard, Offering
from protocols.control import ControlCommand


class RoleOptions(BaseModel):
    """Plain settings every role is built from: where the chain, manifest and registry are; who operates it."""

    model_config = ConfigDict(extra="allow")

    rpc_url: str
    manifest: str
    registry_url: str | None = None
    operators: list[str] = []
    clock_start: float | None = None
    """Start a simulated clock here (unix s), moved only by the `advance_clock` command; None: system clock."""
    seed: int = 0


class Seconds(BaseModel):
    """A duration in seconds."""

    seconds: float


class GasUse(BaseModel):
    """Gas this agent's transactions used, by contract function: name → (count, total gas)."""

    gas: dict[str, tuple[int, int]]


class Traffic(BaseModel):
    """Messages this agent took in since it started: requests its handlers ran on and replies to its own requests
    (control commands not counted), and messages it refused."""

    messages: int
    rejected: int


class CardPublished(BaseModel):
    """The card an agent published to the registry."""

    card: AgentCard


class Amount(BaseModel):
    """An amount in token base units."""

    amount: int


GAS_KEY = "role.gas_used"

CONTROL_DIGEST = schema_digest(ControlCommand)
"""Control commands from operators: left out of an agent's traffic figures (the runner's asking is not trade)."""

ADVANCE_CLOCK = Command("advance_clock", Seconds, Empty)
GAS_USED = Command("gas_used", Empty, GasUse)
TRAFFIC = Command("traffic", Empty, Traffic)
PUBLISH_CARD = Command("publish_card", Empty, CardPublished)
STAKE = Command("stake", Amount, Empty)


@dataclass
class RoleParts:
    """An agent under construction: the agent, its settlement handles, its control channel and options."""

    role: str
    agent: AgoraAgent
    settlement: Settlement
    control: Control
    options: RoleOptions
    offerings: Callable[[], list[Offering]] = list
    """What the agent's registry card offers, read when the card is published."""

    def card(self) -> AgentCard:
        """The registry card this agent publishes: where it is reached, what it offers, which account owns it."""
        return AgentCard(
            address=self.agent.address,
            role=self.role,
            name=self.agent.settings.name,
            endpoints=[self.agent.endpoint],
            offerings=self.offerings(),
            owner=self.agent.keys.eth_address,
        )

    async def publish(self) -> AgentCard:
        """Register the card, or update the one listed before."""
        card = self.card()
        await self.settlement.require_registry().publish(card)
        return card


_BUILT: weakref.WeakKeyDictionary[AgoraAgent, RoleParts] = weakref.WeakKeyDictionary()


def parts_of(agent: AgoraAgent) -> RoleParts:
    """The parts of an agent a role factory built (to publish its card from outside the control channel)."""
    try:
        return _BUILT[agent]
    except KeyError:
        raise ValueError(f"{agent.settings.name} was not built by a role factory") from None


def role_parts(
    role: str,
    settings: AgentSettings,
    deps: AgentDeps,
    options: RoleOptions,
) -> RoleParts:
    """Build the agent and the parts every role has: settlement, control (clock, gas, card, stake commands)."""
    wallet = deps.wallet or (Wallet.from_seed(settings.seed) if settings.seed else Wallet.generate())
    clock = SimulatedClock(options.clock_start) if options.clock_start is not None else deps.clock
    resolver = deps.resolver
    if options.registry_url:
        # Peers this agent was told about first, then whatever the registry lists.
        resolver = FirstOfResolver(resolver or StaticResolver(), RegistryResolver(options.registry_url))
    agent = AgoraAgent(settings, dataclasses.replace(deps, wallet=wallet, clock=clock, resolver=resolver))
    settlement = SettlementSettings(
        rpc_url=options.rpc_url,
        manifest=Path(options.manifest),
        registry_url=options.registry_url,
    ).connect(wallet)
    control = Control(agent, options.operators)
    # The gas tally lives in the agent's store, so the report counts a restarted agent's transactions too.
    meter = settlement.conn.gas_meter
    meter.restore({op: (c, t) for op, (c, t) in agent.store.get(GAS_KEY, {}).items()})
    meter.on_record = lambda totals: agent.store.put(GAS_KEY, totals)

    async def advance(args: Seconds) -> Empty:
        if not isinstance(agent.clock, SimulatedClock):
            raise ValueError("this agent runs on the system clock")
        agent.clock.advance(args.seconds)
        return Empty()

    async def gas(_: Empty) -> GasUse:
        return GasUse(gas=settlement.conn.gas_meter.totals())

    async def traffic(_: Empty) -> Traffic:
        metrics = agent.metrics
        handled = sum(n for digest, n in metrics.handled.items() if digest != CONTROL_DIGEST)
        return Traffic(messages=handled + metrics.replies, rejected=sum(metrics.rejected.values()))

    async def publish(_: Empty) -> CardPublished:
        return CardPublished(card=await parts.publish())

    async def stake(args: Amount) -> Empty:
        await settlement.token.approve(settlement.staking.address, args.amount)
        await settlement.staking.stake(args.amount)
        return Empty()

    control.handle(ADVANCE_CLOCK, advance)
    control.handle(GAS_USED, gas)
    control.handle(TRAFFIC, traffic)
    control.handle(PUBLISH_CARD, publish)
    control.handle(STAKE, stake)

    async def close(_: Any) -> None:
        await settlement.close()
        if isinstance(resolver, FirstOfResolver):
            await resolver.resolvers[-1].close()

    agent.on_event("shutdown")(close)

    parts = RoleParts(role, agent, settlement, control, options)
    _BUILT[agent] = parts
    return parts
