"""Attacks on the live dashboard's economy view: a card that names someone else's account as its owner must
not relabel that account's tokens in the balance chart, and no HTTP request can write the run's figures.

The view counts a card owner's tokens under the card's role only when the owner vouches for the card's agent
(AgentRegistry.agentOf on chain; the test registry's reputation table stands in for it); the figures of an
`agora demo --serve` run reach the view in-process only (GET /v1/economy is its one route, read-only).
"""

from __future__ import annotations

import asyncio

from marketplace.registry.app import ECONOMY
from tests.registry.conftest import Registry, clock, identity, make_card, registry

__all__ = ["clock", "registry"]  # fixtures used by name below

VICTIM = "0x" + "7e" * 20
"""A treasury's (or any user's) settlement account."""


async def _settle(registry: Registry) -> None:
    # Labelling runs in a background task after the write; let it finish.
    await asyncio.gather(*list(registry.service._pending))


async def test_card_claimingAnotherOwner_doesNotRelabelItsTokens(registry: Registry) -> None:
    view = registry.client.server.app[ECONOMY]
    view.label(VICTIM, "treasury", "treasury")
    mallory = identity("mallory")
    await registry.register(mallory, make_card(mallory, role="advertiser", name="treasury-2", owner=VICTIM))
    await _settle(registry)
    assert (view.name_of(VICTIM), view.role_of(VICTIM)) == ("treasury", "treasury")

    stranger = "0x" + "5a" * 20  # nobody named it: a claim still does not name it
    eve = identity("eve")
    await registry.register(eve, make_card(eve, role="seller", name="big-seller", owner=stranger))
    await _settle(registry)
    assert view.role_of(stranger) == "other"


async def test_card_ownerVouchesForItsAgent_isLabelled(registry: Registry) -> None:
    view = registry.client.server.app[ECONOMY]
    owner = "0x" + "0a" * 20
    seller = identity("honest-seller")
    registry.reputation.vouched[owner] = seller.address
    await registry.register(seller, make_card(seller, role="seller", name="honest-seller", owner=owner))
    await _settle(registry)
    assert (view.name_of(owner), view.role_of(owner)) == ("honest-seller", "seller")


async def test_economyView_noRequestWritesTheRunFigures(registry: Registry) -> None:
    forged = {"run": {"status": "finished", "royalties": {"mallory": 10**24}}}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = await registry.client.request(method, "/v1/economy", json=forged)
        assert answer.status == 405, method
    for path in ("/v1/economy/run", "/v1/economy/publish", "/v1/run"):
        assert (await registry.client.post(path, json=forged)).status in (404, 405), path
    status, body = await registry.get("/v1/economy")
    assert status == 200
    assert body["run"] == {}
