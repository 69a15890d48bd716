"""The reseller example on a real chain: an upstream seller, the reseller, and a user who only finds the reseller."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from agents.base import AgoraAgent
from agents.capabilities.control import Empty, call
from agents.capabilities.inference import InferencePlan
from agents.roles import seller, selling, user
from agents.roles.base import PUBLISH_CARD
from agents.roles.seller import BuildModels, ModelOffer
from marketplace.chain import ChainConnection, ChannelsClient, Lineage, ModelRegistryClient, TokenClient
from tests.code_size import code_lines
from tests.examples.conftest import RoleAgent

pytestmark = [pytest.mark.chain, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "reseller.py"
# Loaded by path: a third-party distribution installs a top-level `examples` package that shadows ours.
reseller = runpy.run_path(str(EXAMPLE), run_name="reseller_example")

COST = 10**16
"""The upstream seller's fixed price per call (base units)."""
MARKUP = 4 * 10**15
RESALE = COST + MARKUP
CALLS = 4
ROYALTY_BPS = 500
"""Share of the reseller's takings that its model's lineage routes to the upstream model's owner."""


def test_example_isSmall() -> None:
    assert code_lines(EXAMPLE) <= 60


async def _channels_from(conn: ChainConnection, sender: str) -> list[int]:
    channels = ChannelsClient(conn)
    found = []
    for channel_id in range(1, await channels.channel_count() + 1):
        if (await channels.get_channel(channel_id)).sender.lower() == sender.lower():
            found.append(channel_id)
    return found


async def test_reseller_resellsUpstreamCallsWithMarkup(
    conn: ChainConnection, operator: AgoraAgent, role_agent: RoleAgent
) -> None:
    upstream = await role_agent("upstream", seller.build, {})
    middle = await role_agent(
        "reseller",
        reseller["build"],
        {
            "upstream": upstream.address,
            "upstream_model": "clf-up",
            "resold_id": "clf-resold",
            "calls": CALLS,
            "max_per_call": 2 * COST,
            "markup": MARKUP,
            "royalty_bps": ROYALTY_BPS,
        },
    )
    buyer = await role_agent("buyer", user.build, {"seed": 3})
    accounts = {agent: agent.keys.eth_address for agent in (upstream, middle, buyer)}
    token = TokenClient(conn)
    await token.transfer(accounts[middle], COST * CALLS)
    await token.transfer(accounts[buyer], RESALE * CALLS)
    before = {agent: await token.balance_of(account) for agent, account in accounts.items()}

    offer = ModelOffer(id="clf-up", kind="classifier", price_per_call=COST, reserve_price=COST)
    await call(operator, upstream.address, seller.BUILD_MODELS, BuildModels(models=[offer], world_seed=7))
    await call(operator, middle.address, reseller["SOURCE"], Empty())
    # Only the reseller is listed: the user cannot go around it to the cheaper upstream seller.
    await call(operator, middle.address, PUBLISH_CARD, Empty())
    plan = InferencePlan(
        kind="classifier",
        calls=CALLS,
        opening_per_call=COST,
        max_per_call=2 * COST,
        deposit=RESALE * CALLS,
        sample_rate=0.0,
        channel_ttl=3_600,
    )
    outcome = await call(operator, buyer.address, user.BUY_INFERENCE, plan, wait=300)
    assert (outcome.paid_calls, outcome.refused_calls, outcome.bad_results) == (CALLS, 0, 0)
    assert outcome.negotiated_prices == [RESALE]
    assert outcome.spent == RESALE * CALLS

    await call(operator, middle.address, selling.CLAIM, Empty())
    await call(operator, upstream.address, selling.CLAIM, Empty())

    channels, models = ChannelsClient(conn), ModelRegistryClient(conn)
    (sold,) = [await channels.get_channel(c) for c in outcome.channels]
    (bought,) = [await channels.get_channel(c) for c in await _channels_from(conn, accounts[middle])]
    assert (sold.recipient.lower(), sold.claimed) == (accounts[middle].lower(), RESALE * CALLS)
    assert (bought.recipient.lower(), bought.claimed) == (accounts[upstream].lower(), COST * CALLS)
    # The resold model is the upstream model's child in ModelRegistry: part of every claim flows upstream.
    assert await models.lineage_of(sold.model_id) == Lineage(parents=((bought.model_id, ROYALTY_BPS),))
    royalty = RESALE * CALLS * ROYALTY_BPS // 10_000
    payouts = await models.split(sold.model_id, RESALE * CALLS, accounts[middle])
    assert {(p.recipient.lower(), p.amount) for p in payouts if p.amount} == {
        (accounts[upstream].lower(), royalty),
        (accounts[middle].lower(), RESALE * CALLS - royalty),
    }

    after = {agent: await token.balance_of(account) for agent, account in accounts.items()}
    assert after[middle] - before[middle] == MARKUP * CALLS - royalty
    assert after[upstream] - before[upstream] == COST * CALLS + royalty
    assert after[buyer] - before[buyer] == -RESALE * CALLS
