"""Model-directory squatting (issue 10, finding 6): anyone can register any model URI in ModelRegistry, so a
squatter registers a seller's model id first. Buyers and validators resolve a model id together with the
account that serves it, so the squatter redirects no channel and no audit."""

from __future__ import annotations

import pytest

from agents.capabilities.inference import InferenceOutcome, InferencePlan
from agents.roles import seller as seller_role
from agents.roles import user as user_role
from agents.roles.user import BUY_INFERENCE
from marketplace.chain import ChannelsClient, ModelListing, ModelRegistryClient
from marketplace.chain.deploy import CHANNELS_CONFIG
from tests.attacks.agent_world import chain, economy
from tests.roles.world import AGT, CLASSIFIER, FLOOR, PRICE, World

pytestmark = pytest.mark.chain


async def test_squattedModelId_doesNotRedirectBuyersChannels(economy: World) -> None:
    """The squatter's token is registered first under the seller's model URI: the user still opens its channel
    for the seller's own token and every planned call is paid and served."""
    squatter = economy.chain.accounts[7]
    await economy.fund(squatter.address)
    uri = f"agora://model/{CLASSIFIER.kind}/{CLASSIFIER.id}"
    squatted = await ModelRegistryClient(economy.conn.with_account(squatter)).register_model(
        ModelListing(content_hash=b"\x5a" * 32, uri=uri)
    )
    seller = await economy.seller_with_model(seller_role)
    user = await economy.role(user_role, "user", tokens=AGT)
    plan = InferencePlan(
        kind="classifier", calls=3, opening_per_call=FLOOR // 2, max_per_call=PRICE, deposit=10 * PRICE,
        sample_rate=0.0, channel_ttl=CHANNELS_CONFIG.min_channel_duration + 600,
    )  # fmt: skip

    outcome: InferenceOutcome = await economy.call(user, BUY_INFERENCE, plan)

    assert (outcome.paid_calls, outcome.refused_calls) == (3, 0)
    channel = await ChannelsClient(economy.conn).get_channel(outcome.channels[0])
    assert channel.recipient == seller.keys.eth_address
    assert channel.model_id != squatted.model_id
