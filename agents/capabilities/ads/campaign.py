"""The advertiser's side of the ad market: campaigns escrowed in AdCampaigns, creatives pushed to users, the ROI view.

The advertiser commits each creative on chain (`creativeHash`), so a user can check an announcement whoever
forwards it. Its view of the results is the chain's: budget, spend and the number of proven conversions per
campaign. It receives no message about a purchase or a claim; it learns no user, payee or purchase.
This capability handles no message (it only sends announcements, operator-driven).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.ads.ranking import targeting_for
from agents.capabilities.kit import Capability
from agents.offload import offload
from agents.settlement import Settlement
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain.ads import AdCampaignsClient, CampaignTerms
from protocols.ads import MAX_ITEMS, Creative, CreativeAnnounce, CreativeReceived, creative_hash

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class CampaignPlan(BaseModel):
    """A campaign to create: the creative, its shop, the budget, the payout per conversion and its publisher split."""

    headline: str
    items: list[int] = Field(min_length=1, max_length=MAX_ITEMS)
    merchant: str
    """The shop's agent address (takes commitments)."""
    merchant_account: str
    """The shop's settlement account (publishes roots on chain, is paid for purchases)."""
    price: int = Field(gt=0)
    budget: int = Field(gt=0)
    payout: int = Field(gt=0)
    publisher: str = ZERO_ADDRESS
    publisher_bps: int = Field(default=0, ge=0, le=10_000)
    duration: int = Field(gt=0)
    """Seconds from creation until roots and claims stop and the refund opens."""


class CampaignPlans(BaseModel):
    """Campaigns to create."""

    plans: list[CampaignPlan]


class CampaignIds(BaseModel):
    """Ids of campaigns created."""

    ids: list[int]


class Recipients(BaseModel):
    """Agent addresses to push this advertiser's live creatives to."""

    agents: list[str]


class Announced(BaseModel):
    """How many (user, creative) announcements were checked and kept by their users."""

    received: int


class CampaignRow(BaseModel):
    """One campaign as the advertiser sees it: from the chain only, no identities."""

    campaign_id: int
    headline: str
    budget: int
    payout: int
    spent: int
    conversions: int
    refunded: int
    cost_per_conversion: int | None


class CampaignTable(BaseModel):
    """The advertiser's ROI table."""

    rows: list[CampaignRow]


class Refunded(BaseModel):
    """Unspent budget taken back, one amount per campaign refunded."""

    amounts: list[int]


class OwnCampaign(Record):
    """A campaign this advertiser created, with its creative."""

    creative: dict[str, object]


class CampaignDesk(Capability):
    """Creates campaigns, announces their creatives, reports spend and takes unspent budget back."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.ads = AdCampaignsClient(settlement.conn)
        self.campaigns = Repository(agent.store, "ads.campaign", OwnCampaign)

    async def create(self, plans: CampaignPlans) -> CampaignIds:
        """Escrow each plan's budget in a new campaign committing to its creative."""
        ids = []
        for plan in plans.plans:
            targeting = await offload(targeting_for, plan.items)
            creative = Creative(
                headline=plan.headline, items=plan.items, targeting=targeting, merchant=plan.merchant, price=plan.price
            )
            end = await self.settlement.chain_time() + plan.duration
            terms = CampaignTerms(
                plan.merchant_account, plan.publisher, plan.budget, plan.payout, plan.publisher_bps, end,
                creative_hash(creative),
            )  # fmt: skip
            await self.settlement.token.approve(self.ads.address, plan.budget)
            created = await self.ads.create_campaign(terms)
            self.campaigns.put(str(created.campaign_id), OwnCampaign(creative=creative.dict()))
            ids.append(created.campaign_id)
        return CampaignIds(ids=ids)

    async def announce(self, recipients: Recipients) -> Announced:
        """Push every live creative to each recipient; count the ones kept."""
        now = await self.settlement.chain_time()
        received = 0
        for campaign_id, own in self.campaigns.items():
            if now >= (await self.ads.get_campaign(int(campaign_id))).end:
                continue
            message = CreativeAnnounce(campaign_id=int(campaign_id), creative=Creative.parse_obj(own.creative))
            for agent in recipients.agents:
                try:
                    await self.agent.request(agent, message, CreativeReceived, wait=30)
                    received += 1
                except (RemoteError, DeliveryError, TimeoutError) as exc:
                    self.agent.logger.info("creative %s refused by %s…: %s", campaign_id, agent[:16], exc)
        return Announced(received=received)

    async def table(self) -> CampaignTable:
        """Spend, verified conversions and cost per conversion of every campaign, read from the chain."""
        rows = []
        for campaign_id, own in self.campaigns.items():
            c = await self.ads.get_campaign(int(campaign_id))
            conversions = c.conversions
            rows.append(
                CampaignRow(
                    campaign_id=c.campaign_id,
                    headline=str(own.creative["headline"]),
                    budget=c.budget,
                    payout=c.payout,
                    spent=c.spent,
                    conversions=conversions,
                    refunded=c.refunded,
                    cost_per_conversion=c.spent // conversions if conversions else None,
                )
            )
        return CampaignTable(rows=rows)

    async def refund(self) -> Refunded:
        """Take back the unspent budget of every campaign that has ended."""
        now = await self.settlement.chain_time()
        amounts = []
        for campaign_id, _ in self.campaigns.items():
            c = await self.ads.get_campaign(int(campaign_id))
            if now >= c.end and c.escrowed > 0:
                amounts.append((await self.ads.refund(c.campaign_id)).amount)
        return Refunded(amounts=amounts)
