"""The user: buys inference for itself (discover, negotiate, pay per call through a channel, audit a sample) and
trains federated jobs on its own shopping history for rewards, within its privacy budget; ranks ads on the device
and claims ZK-proven conversions to fresh payees through a relay.

Raw user data never leaves this agent except as the inputs of calls the user chose to make; training sends
only masked updates; ads hand the merchant only a commitment. Composition: negotiation (buyer side) + channel
payer + inference client + federated client + ad viewer + control.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.ads.viewer import AdViewer, ClaimResult, RelayChoice, ShopResult, ViewerOptions
from agents.capabilities.control import Command, Empty
from agents.capabilities.federated.client import ClientOptions, FederatedClient
from agents.capabilities.inference import InferenceClient, InferenceOutcome, InferencePlan
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings

ROLE = "user"


class UserOptions(RoleOptions):
    """A user's options: the common ones plus its federated-learning settings."""

    federated: ClientOptions = ClientOptions()
    ads: ViewerOptions = ViewerOptions()


class Privacy(BaseModel):
    """The ε this user has spent over every federated job."""

    epsilon: float


class Refunds(BaseModel):
    """Amounts taken back from expired channels (base units), one per channel."""

    amounts: list[int]


BUY_INFERENCE = Command("buy_inference", InferencePlan, InferenceOutcome)
REFUND_CHANNELS = Command("refund_channels", Empty, Refunds)
CLAIM_REWARDS = Command("claim_rewards", Empty, Refunds)
PRIVACY_SPENT = Command("privacy_spent", Empty, Privacy)
SHOP_ADS = Command("shop_ads", Empty, ShopResult)
CLAIM_ADS = Command("claim_ads", RelayChoice, ClaimResult)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A user built from plain options (see RoleOptions)."""
    opts = UserOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    agent, settlement = parts.agent, parts.settlement
    negotiation = NegotiationBuyer(agent)
    payer = ChannelPayer(agent, settlement)
    client = InferenceClient(agent, settlement, negotiation, payer, parts.options.seed)
    learner = FederatedClient(agent, settlement, opts.federated, opts.seed)

    async def refund(_: Empty) -> Refunds:
        return Refunds(amounts=[r.amount for r in await payer.refund_expired()])

    parts.control.handle(BUY_INFERENCE, client.buy)

    async def claim(_: Empty) -> Refunds:
        return Refunds(amounts=await learner.claim())

    async def privacy(_: Empty) -> Privacy:
        return Privacy(epsilon=learner.epsilon_spent())

    parts.control.handle(REFUND_CHANNELS, refund)
    parts.control.handle(CLAIM_REWARDS, claim)
    parts.control.handle(PRIVACY_SPENT, privacy)
    viewer = AdViewer(agent, settlement, opts.ads, opts.seed)
    parts.control.handle(SHOP_ADS, lambda _: viewer.shop())
    parts.control.handle(CLAIM_ADS, viewer.claim)
    return compose(agent, parts.control, negotiation, payer, client, learner, viewer)
