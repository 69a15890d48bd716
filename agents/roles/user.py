"""The user: buys inference for itself (discover, negotiate, pay per call through a channel, audit a sample).

Raw user data never leaves this agent except as the inputs of calls the user chose to make.
Composition: negotiation (buyer side) + channel payer + inference client + control.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty
from agents.capabilities.inference import InferenceClient, InferenceOutcome, InferencePlan
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings

ROLE = "user"


class Refunds(BaseModel):
    """Amounts taken back from expired channels (base units), one per channel."""

    amounts: list[int]


BUY_INFERENCE = Command("buy_inference", InferencePlan, InferenceOutcome)
REFUND_CHANNELS = Command("refund_channels", Empty, Refunds)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A user built from plain options (see RoleOptions)."""
    parts = role_parts(ROLE, settings, deps, RoleOptions.model_validate(options))
    agent, settlement = parts.agent, parts.settlement
    negotiation = NegotiationBuyer(agent)
    payer = ChannelPayer(agent, settlement)
    client = InferenceClient(agent, settlement, negotiation, payer, parts.options.seed)

    async def refund(_: Empty) -> Refunds:
        return Refunds(amounts=[r.amount for r in await payer.refund_expired()])

    parts.control.handle(BUY_INFERENCE, client.buy)
    parts.control.handle(REFUND_CHANNELS, refund)
    return compose(agent, parts.control, negotiation, payer, client)
