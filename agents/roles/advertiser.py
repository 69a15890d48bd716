"""The advertiser: buys a recommender fine-tuned on its own catalogue, paid through JobEscrow and graded by a
validator on held-out data the seller never sees, and runs ad campaigns paid per ZK-proven conversion.
Composition: negotiation (buyer) + escrow client + campaign desk + control.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.ads.campaign import (
    Announced,
    CampaignDesk,
    CampaignIds,
    CampaignPlans,
    CampaignTable,
    Recipients,
    Refunded,
)
from agents.capabilities.control import Command, Empty
from agents.capabilities.escrow import EscrowClient, TrainingOutcome, TrainingPlan
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.roles.base import RoleOptions, role_parts
from agents.roles.user import Refunds
from agents.settings import AgentSettings

ROLE = "advertiser"


class FundTraining(BaseModel):
    """Buy a fine-tune from the seller at this agent address."""

    seller: str
    plan: TrainingPlan


class Deliver(BaseModel):
    """Have a funded job trained and graded."""

    escrow_job_id: int


FUND_TRAINING = Command("fund_training", FundTraining, TrainingOutcome)
DELIVER_TRAINING = Command("deliver_training", Deliver, TrainingOutcome)
RECLAIM_EXPIRED = Command("reclaim_expired", Empty, Refunds)
CREATE_CAMPAIGNS = Command("create_campaigns", CampaignPlans, CampaignIds)
ANNOUNCE_CREATIVES = Command("announce_creatives", Recipients, Announced)
CAMPAIGN_TABLE = Command("campaign_table", Empty, CampaignTable)
REFUND_CAMPAIGNS = Command("refund_campaigns", Empty, Refunded)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """An advertiser built from plain options (see RoleOptions)."""
    parts = role_parts(ROLE, settings, deps, RoleOptions.model_validate(options))
    agent, settlement = parts.agent, parts.settlement
    negotiation = NegotiationBuyer(agent)
    client = EscrowClient(agent, settlement, negotiation, parts.options.seed)

    async def fund(args: FundTraining) -> TrainingOutcome:
        entry = await settlement.require_registry().get(args.seller)
        if entry is None:
            return TrainingOutcome(seller=args.seller, state="no-seller")
        return await client.fund(entry, args.plan)

    async def deliver(args: Deliver) -> TrainingOutcome:
        return await client.deliver(args.escrow_job_id)

    async def reclaim(_: Empty) -> Refunds:
        return Refunds(amounts=[r.refunded for r in await client.reclaim_expired()])

    parts.control.handle(FUND_TRAINING, fund)
    parts.control.handle(DELIVER_TRAINING, deliver)
    parts.control.handle(RECLAIM_EXPIRED, reclaim)
    desk = CampaignDesk(agent, settlement)
    parts.control.handle(CREATE_CAMPAIGNS, desk.create)
    parts.control.handle(ANNOUNCE_CREATIVES, desk.announce)
    parts.control.handle(CAMPAIGN_TABLE, lambda _: desk.table())
    parts.control.handle(REFUND_CAMPAIGNS, lambda _: desk.refund())
    return compose(agent, parts.control, negotiation, client, desk)
