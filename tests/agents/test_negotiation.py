"""Contract-net negotiation: a buyer and two sellers in separate processes agree through counteroffers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.base import AgentDeps, AgoraAgent, running
from agents.capabilities.negotiation import BuyerLimits
from agents.policies import NegotiationPolicy, NegotiationView, TimeDependentConcession, UnitPricing
from agents.process import spawn_agent
from agents.resolver import StaticResolver
from agents.roles.sdk import BuyerAgent, SellerAgent
from agents.settings import AgentSettings
from agents.state import key
from protocols.negotiation import JobSpec

Factory = Callable[..., AgoraAgent]
JOB = JobSpec(kind="inference", model_id="tiny-classifier", units=10)
SELLERS = {"seller-a": (10, 7), "seller-b": (12, 6)}  # (unit price, floor unit price) in base units


@pytest.mark.e2e
async def test_negotiate_twoSellerProcesses_agreeWithinBothLimits(make_agent: Factory, tmp_path: Path) -> None:
    resolver = StaticResolver()
    buyer = make_agent("buyer", AgentDeps(resolver=resolver), cls=BuyerAgent)
    limits = BuyerLimits(opening=30, budget=90, deadline_s=20.0, max_rounds=6)
    async with running(buyer):
        peers = {buyer.address: [buyer.endpoint]}
        children = await asyncio.gather(
            *(
                spawn_agent(
                    "agents.testing.factories:unit_seller",
                    AgentSettings(name=name, seed=f"seed-{name}", data_dir=tmp_path / name),
                    peers,
                    {"unit_price": unit, "floor_unit_price": floor},
                )
                for name, (unit, floor) in SELLERS.items()
            )
        )
        try:
            for child in children:
                resolver.add(child.address, child.endpoint)
            deal = await buyer.negotiate([c.address for c in children], JOB, limits)
            stored = buyer.negotiation.agreements.get(deal.negotiation_id) if deal else None
        finally:
            codes = await asyncio.gather(*(c.stop() for c in children))
    assert codes == [0, 0]
    assert deal is not None
    assert deal.rounds >= 1, "agreement must come from counteroffers, not the opening proposal"
    floor = dict(zip([c.address for c in children], [f * JOB.units for _, f in SELLERS.values()], strict=True))
    assert floor[deal.seller] <= deal.price <= limits.budget
    assert stored is not None
    assert stored.price == deal.price


async def test_negotiate_noOverlap_endsWithoutDeal(make_agent: Factory) -> None:
    seller = make_agent("greedy", cls=_seller_class(), pricing=UnitPricing(20, 15))
    buyer = make_agent("buyer", cls=BuyerAgent)
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=50, budget=100, max_rounds=3))
    assert deal is None


async def test_negotiate_inProcess_sellerRecordsSamePrice(make_agent: Factory) -> None:
    seller = make_agent("seller", cls=_seller_class(), pricing=UnitPricing(10, 6))
    buyer = make_agent("buyer", cls=BuyerAgent)
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=40, budget=90))
        assert deal is not None
        stored = seller.negotiation.agreements.get(key(buyer.address, deal.negotiation_id))
    assert stored is not None
    assert stored.price == deal.price
    assert 60 <= deal.price <= 90


async def test_concession_movesMonotonicallyToReservationInIntegers() -> None:
    view = NegotiationView(started_at=0.0, deadline=100.0, round=0, max_rounds=4)
    concession = TimeDependentConcession(2)
    seller = [await concession.offer(100, 60, NegotiationView(0.0, 100.0, r, 4), now=0.0) for r in range(5)]
    assert seller == sorted(seller, reverse=True)
    assert (seller[0], seller[-1]) == (100, 60)
    assert all(isinstance(p, int) for p in seller)
    assert await TimeDependentConcession().offer(40, 90, view, now=50.0) == 65  # half-way by time


def _seller_class() -> type[SellerAgent]:
    class Seller(SellerAgent):
        def __init__(self, settings: AgentSettings, deps: AgentDeps | None = None, *, pricing: UnitPricing) -> None:
            super().__init__(settings, deps, pricing=pricing, policy=NegotiationPolicy())

    return Seller
