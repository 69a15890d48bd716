"""The user role (agents.roles.user.build) against a real seller on the real contracts: discovery through the
registry, a negotiated price within the plan, one paid call per planned call, and the unspent deposit back."""

from __future__ import annotations

import pytest

from agents.capabilities.inference import InferenceOutcome, InferencePlan
from agents.roles import seller as seller_role
from agents.roles import user as user_role
from agents.roles.selling import CLAIM, Claimed
from agents.roles.user import BUY_INFERENCE, REFUND_CHANNELS, Refunds
from marketplace.chain import ChannelsClient, TokenClient
from marketplace.chain.deploy import CHANNELS_CONFIG
from tests.roles.world import AGT, FLOOR, PRICE, World

pytestmark = pytest.mark.chain

FUNDING = AGT
TTL = CHANNELS_CONFIG.min_channel_duration + 600


def _plan(kind: str = "classifier", calls: int = 6) -> InferencePlan:
    return InferencePlan(
        kind=kind,  # type: ignore[arg-type]
        calls=calls,
        opening_per_call=FLOOR // 2,
        max_per_call=PRICE,
        deposit=30 * PRICE,
        sample_rate=0.0,
        channel_ttl=TTL,
    )


async def test_buyInference_paysEachPlannedCallWithinLimitsAndRefundsTheRest(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    user = await economy.role(user_role, "user", tokens=FUNDING)
    token, channels = TokenClient(economy.conn), ChannelsClient(economy.conn)
    plan = _plan()

    outcome: InferenceOutcome = await economy.call(user, BUY_INFERENCE, plan)

    assert (outcome.paid_calls, outcome.refused_calls, outcome.bad_results) == (plan.calls, 0, 0)
    assert len(outcome.channels) == 1
    assert len(outcome.negotiated_prices) == 1
    per_call = outcome.negotiated_prices[0]
    assert FLOOR <= per_call <= plan.max_per_call
    assert outcome.spent == per_call * plan.calls <= plan.max_per_call * plan.calls
    channel = await channels.get_channel(outcome.channels[0])
    assert channel.recipient == seller.keys.eth_address
    assert channel.deposit <= plan.deposit
    assert await token.balance_of(user.keys.eth_address) == FUNDING - channel.deposit

    claimed: Claimed = await economy.call(seller, CLAIM)
    assert [pairs for pairs, _ in claimed.claims] == [[(channel.channel_id, outcome.spent)]]
    early: Refunds = await economy.call(user, REFUND_CHANNELS)
    assert early.amounts == []  # the channel is still open: nothing can be taken back yet

    economy.chain.increase_time(TTL + 1)
    refunds: Refunds = await economy.call(user, REFUND_CHANNELS)

    assert refunds.amounts == [channel.deposit - outcome.spent]
    assert await token.balance_of(user.keys.eth_address) == FUNDING - outcome.spent
    assert (await channels.get_channel(channel.channel_id)).closed
    assert (await economy.call(user, REFUND_CHANNELS)).amounts == []  # refunded once only


async def test_buyInference_noSellerOfThatKindSpendsNothing(economy: World) -> None:
    await economy.seller_with_model(seller_role)  # sells a classifier only
    user = await economy.role(user_role, "user", tokens=FUNDING)

    outcome: InferenceOutcome = await economy.call(user, BUY_INFERENCE, _plan(kind="recommender"))

    assert (outcome.paid_calls, outcome.spent, outcome.channels) == (0, 0, [])
    assert await TokenClient(economy.conn).balance_of(user.keys.eth_address) == FUNDING


async def test_buyInference_depositShortOfPlanPaysWhatItCovers(economy: World) -> None:
    await economy.seller_with_model(seller_role)
    user = await economy.role(user_role, "user", tokens=FUNDING)
    plan = _plan(calls=6).model_copy(update={"deposit": 3 * PRICE})  # less than 6 calls at any agreed price

    outcome: InferenceOutcome = await economy.call(user, BUY_INFERENCE, plan)

    per_call = outcome.negotiated_prices[0]
    assert outcome.paid_calls == min(plan.calls, plan.deposit // per_call)
    assert outcome.spent == outcome.paid_calls * per_call <= plan.deposit
    assert len(outcome.channels) == 1
    assert await TokenClient(economy.conn).balance_of(user.keys.eth_address) == FUNDING - plan.deposit
