"""The negotiation engine enforces limits whatever the injected (async) policies decide: a buyer never agrees above
its budget, a seller never below its floor, and every overruled decision is counted in `refusals`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from uagents import Context

from agents.base import AgoraAgent, running
from agents.capabilities.kit import Capability, Handlers, compose
from agents.capabilities.negotiation import BuyerLimits
from agents.policies import NegotiationPolicy, NegotiationView, Side, UnitPricing
from agents.roles.sdk import BuyerAgent, SellerAgent
from agents.settings import AgentSettings
from agents.testing.doubles import Probe
from protocols import negotiation
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject

JOB = JobSpec(kind="inference", model_id="tiny-classifier", units=10)
BUDGET = 100
UNIT_PRICE, FLOOR_UNIT = 10, 6
FLOOR = FLOOR_UNIT * JOB.units


class Overspend:
    """A concession policy (an LLM gone wrong, say) that offers far beyond any limit, slowly."""

    async def offer(self, opening: int, reservation: int, view: NegotiationView, now: float) -> int:
        await asyncio.sleep(0)
        return 10 * max(opening, reservation)


class GiveAway:
    """A concession policy that offers nothing at all."""

    async def offer(self, opening: int, reservation: int, view: NegotiationView, now: float) -> int:
        await asyncio.sleep(0)
        return 0


class AcceptAnything:
    """An acceptance policy that takes whatever the other side says."""

    async def accepts(self, side: Side, price: int, our_next: int, reservation: int) -> bool:
        await asyncio.sleep(0)
        return True


RECKLESS_BUYER = NegotiationPolicy(concession=Overspend(), acceptance=AcceptAnything())
RECKLESS_SELLER = NegotiationPolicy(concession=GiveAway(), acceptance=AcceptAnything())


class GreedySeller(Capability):
    """A seller double: always asks `ask`; accepts a counteroffer only when `accept_counters`; logs what it got."""

    def __init__(self, agent: AgoraAgent, ask: int, accept_counters: bool) -> None:
        super().__init__(agent)
        self.ask, self.accept_counters = ask, accept_counters
        self.counters: list[int] = []
        self.accepted: list[int] = []

    def handlers(self) -> Iterable[Handlers]:
        table = {CallForProposals: self._cfp, CounterOffer: self._counter, Accept: self._accept, Reject: self._reject}
        return (Handlers(negotiation.SPEC, "seller", table),)  # type: ignore[arg-type]

    async def _cfp(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        await ctx.send(
            sender, Proposal(negotiation_id=msg.negotiation_id, price=self.ask, round=0, valid_until=msg.deadline)
        )

    async def _counter(self, ctx: Context, sender: str, msg: CounterOffer) -> None:
        self.counters.append(msg.price)
        if self.accept_counters:
            await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))
        else:
            await ctx.send(
                sender, Proposal(negotiation_id=msg.negotiation_id, price=self.ask, round=msg.round, valid_until=0)
            )

    async def _accept(self, ctx: Context, sender: str, msg: Accept) -> None:
        self.accepted.append(msg.price)
        await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))

    async def _reject(self, ctx: Context, sender: str, msg: Reject) -> None:
        """A buyer's Reject ends nothing this double keeps: it only records accepted prices."""


def _settings(tmp_path: Path, name: str) -> AgentSettings:
    return AgentSettings(name=name, seed=f"limits-test:{name}", data_dir=tmp_path / name)


def _greedy(tmp_path: Path, ask: int, accept_counters: bool) -> tuple[AgoraAgent, GreedySeller]:
    agent = AgoraAgent(_settings(tmp_path, "greedy"))
    double = GreedySeller(agent, ask, accept_counters)
    compose(agent, double)
    return agent, double


async def test_negotiate_overspendingBuyerPolicyClampedToBudget(tmp_path: Path) -> None:
    seller, double = _greedy(tmp_path, ask=BUDGET + 50, accept_counters=True)
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=RECKLESS_BUYER)
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=40, budget=BUDGET))
        stored = buyer.negotiation.agreements.get(deal.negotiation_id) if deal else None

    assert deal is not None
    assert deal.price == BUDGET  # the counteroffer, clamped; not the seller's ask the policy accepted
    assert double.counters == [BUDGET]
    assert double.accepted == []
    assert buyer.negotiation.refusals == 2  # one offer clamped, one acceptance above the budget refused
    assert stored is not None
    assert stored.price == BUDGET


async def test_negotiate_sellerAskingAboveBudgetNeverAccepted(tmp_path: Path) -> None:
    seller, double = _greedy(tmp_path, ask=BUDGET + 1, accept_counters=False)
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=RECKLESS_BUYER)
    limits = BuyerLimits(opening=40, budget=BUDGET, max_rounds=3)
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, limits)
        agreements = len(buyer.negotiation.agreements)

    assert deal is None
    assert double.accepted == []
    assert double.counters == [BUDGET] * limits.max_rounds
    assert buyer.negotiation.refusals == 2 * (limits.max_rounds + 1)
    assert agreements == 0


async def test_negotiationSeller_givingAwayPolicyClampedAndRefusedBelowFloor(tmp_path: Path) -> None:
    seller = SellerAgent(
        _settings(tmp_path, "seller"), pricing=UnitPricing(UNIT_PRICE, FLOOR_UNIT), policy=RECKLESS_SELLER
    )
    probe = Probe.create(tmp_path / "probe")
    async with running(seller, probe):
        cfp = CallForProposals(negotiation_id="n1", job=JOB, max_price=BUDGET, deadline=2**40, max_rounds=5)
        opening = await probe.ask(seller.address, cfp, (Proposal, Reject))
        lowball = await probe.ask(
            seller.address, CounterOffer(negotiation_id="n1", price=1, round=1), (Proposal, Accept)
        )
        nothing_agreed = len(seller.negotiation.agreements)
        refusals = seller.negotiation.refusals
        taken = await probe.ask(seller.address, Accept(negotiation_id="n1", price=FLOOR, round=1), (Accept, Reject))
        agreed = [a.price for a in seller.negotiation.agreements.values()]

    assert isinstance(opening, Proposal)
    assert opening.price == FLOOR  # the policy offered 0
    assert isinstance(lowball, Proposal), "the seller accepted a price below its floor"
    assert lowball.price == FLOOR
    assert nothing_agreed == 0
    assert refusals == 3  # two offers clamped, one acceptance below the floor refused
    assert isinstance(taken, Accept)
    assert agreed == [FLOOR]


async def test_negotiate_givingAwaySellerDealsNoLowerThanFloor(tmp_path: Path) -> None:
    seller = SellerAgent(
        _settings(tmp_path, "seller"), pricing=UnitPricing(UNIT_PRICE, FLOOR_UNIT), policy=RECKLESS_SELLER
    )
    buyer = BuyerAgent(_settings(tmp_path, "buyer"))
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=1, budget=BUDGET, max_rounds=5))
        agreed = [a.price for a in seller.negotiation.agreements.values()]

    assert deal is not None
    assert FLOOR <= deal.price <= BUDGET
    assert seller.negotiation.refusals > 0
    assert agreed == [deal.price]
