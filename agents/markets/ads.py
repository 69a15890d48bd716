"""The ad market: advertisers pay users per conversion proven in zero knowledge, without learning who converted.

Advertisers escrow campaigns in AdCampaigns and push creatives to users; users rank them on their own device,
buy from the campaign's shop, and hand the shop only a conversion commitment; the shop publishes Merkle roots of
commitments; users prove membership (Groth16) to fresh payees and hand the proofs to a relay that claims them
in batches; after the end advertisers take back the unspent budget (see docs/ads.md).

Scenario section `markets.ads`; phases: ad campaigns (trade: create, announce), ad conversions (trade: rank and
buy, roots), ad claims (settle: prove, relay), ad refunds (after deadlines).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agents.capabilities.ads.campaign import CampaignPlan, CampaignPlans, Recipients
from agents.capabilities.ads.merchant import MerchantOptions
from agents.capabilities.ads.viewer import RelayChoice, ViewerOptions
from agents.capabilities.control import Empty
from agents.markets.plugin import EconomyContext, Market, MarketPanel, Participant, Phase, Refund
from agents.roles import advertiser, merchant, relay, user
from marketplace.chain.ads import AdCampaignsClient
from marketplace.ml import RecommenderSpec
from marketplace.ml.data import base_items

AGT = 10**18
SHOP = "shop-1"
RELAY = "relay-1"
HEADLINES = ("Autumn picks", "Back in stock", "Staff favourites", "New arrivals", "Last chance")


class AdsSection(BaseModel):
    """The ad market of a scenario (amounts in AGT base units, durations in seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    advertisers: int = Field(default=2, ge=1, le=50)
    """Advertisers advertiser-1 … run campaigns (the same agents as the training market's, when both run)."""
    campaigns_per_advertiser: int = Field(default=1, ge=1, le=10)
    users: int = Field(default=10, ge=2, le=1_000)
    """Users user-01 … see the creatives (the same agents as the other markets' users)."""
    purchases_per_user: int = Field(default=1, ge=0, le=10)
    items_per_creative: int = Field(default=5, ge=1, le=16)
    budget: int = Field(default=3 * AGT, gt=0)
    payout: int = Field(default=AGT // 4, gt=0)
    """Paid per proven conversion, publisher share included."""
    publisher_bps: int = Field(default=1_000, ge=0, le=10_000)
    """Share of each payout to the relay, the publisher of record (it pays the claims' gas)."""
    price: int = Field(default=10**16, gt=0)
    """What one purchase at the shop costs."""
    duration: int = Field(default=2 * 86_400, ge=3_600)
    min_leaves: int = Field(default=2, ge=1)
    """The shop publishes no root over fewer commitments (a one-leaf root names its buyer's claim)."""


def advertiser_name(i: int) -> str:
    """The i-th advertiser (0-based), shared with the training market."""
    return f"advertiser-{i + 1}"


def user_name(i: int) -> str:
    """The i-th user (0-based), shared with the other markets."""
    return f"user-{i + 1:02d}"


class AdsMarket(Market):
    """Campaigns paid per ZK-proven, unlinkable conversion (see module docstring)."""

    name: ClassVar[str] = "ads"
    section: ClassVar[type[BaseModel]] = AdsSection
    # Payees are fresh keys, roots commit to fresh secrets, and Groth16 proofs are randomised (zero knowledge):
    # the calldata of roots and claims, and so their gas, vary by a few units from run to run.
    varying: ClassVar[frozenset[str]] = frozenset({"payees", "roots", "relay"})
    varying_gas: ClassVar[frozenset[str]] = frozenset({"claimMany", "publishRoot"})

    def participants(self, section: AdsSection, seed: int) -> list[Participant]:
        """Advertisers (funded with their budgets), the shop, the relay, and users (funded for their purchases)."""
        found = [
            Participant(
                name=advertiser_name(i), role=advertiser.ROLE, factory="agents.roles.advertiser:build",
                funding=section.budget * section.campaigns_per_advertiser,
            )
            for i in range(section.advertisers)
        ]  # fmt: skip
        shop = MerchantOptions(price=section.price, min_leaves=section.min_leaves)
        found.append(Participant(name=SHOP, role=merchant.ROLE, factory="agents.roles.merchant:build",
                                 options={"shop": shop.model_dump()}))  # fmt: skip
        found.append(Participant(name=RELAY, role=relay.ROLE, factory="agents.roles.relay:build"))
        for i in range(section.users):
            viewer = ViewerOptions(enabled=True, shopper_id=i, world_seed=seed, purchases=section.purchases_per_user)
            found.append(
                Participant(
                    name=user_name(i), role=user.ROLE, factory="agents.roles.user:build",
                    funding=section.price * section.purchases_per_user,
                    options={"ads": viewer.model_dump(), "seed": seed},
                )
            )  # fmt: skip
        return found

    def phases(self, section: AdsSection) -> list[Phase]:
        """ad campaigns, ad conversions (trade) → ad claims (settle) → ad refunds (after deadlines)."""

        async def campaigns(ctx: EconomyContext) -> None:
            users = [ctx.address(user_name(i)) for i in range(section.users)]
            data = ctx.ledger.sections.setdefault(self.name, _empty_section())
            for i in range(section.advertisers):
                name = advertiser_name(i)
                plans = [self._plan(section, ctx, i * section.campaigns_per_advertiser + k)
                         for k in range(section.campaigns_per_advertiser)]  # fmt: skip
                ids = (await ctx.call(name, advertiser.CREATE_CAMPAIGNS, CampaignPlans(plans=plans))).ids
                data["campaigns"][name] = ids
                kept = await ctx.call(name, advertiser.ANNOUNCE_CREATIVES, Recipients(agents=users), wait=600)
                data["announcements_kept"] += kept.received

        async def conversions(ctx: EconomyContext) -> None:
            data = ctx.ledger.sections.setdefault(self.name, _empty_section())
            for i in range(section.users):
                ctx.progress("ad conversions", i, section.users)
                shopped = await ctx.call(user_name(i), user.SHOP_ADS, Empty(), wait=600)
                data["purchases"] += shopped.purchases
                data["commitments"] += shopped.committed
                ctx.ledger.flows["users→shop (purchases)"] += shopped.purchases * section.price
            roots = await ctx.call(SHOP, merchant.PUBLISH_ROOTS, Empty(), wait=600)
            data["roots"] = [r.model_dump() for r in roots.roots]

        async def claims(ctx: EconomyContext) -> None:
            data = ctx.ledger.sections.setdefault(self.name, _empty_section())
            relay_agent = ctx.address(RELAY)
            for i in range(section.users):
                ctx.progress("ad claims", i, section.users)
                await ctx.call(user_name(i), user.CLAIM_ADS, RelayChoice(relay=relay_agent), wait=1_200)
            sent = await ctx.call(RELAY, relay.RELAY_CLAIMS, Empty(), wait=1_200)
            data["relay"] = sent.model_dump()
            payees, paid_users, paid_publisher = await _payouts(ctx, data)
            data["payees"] = payees
            ctx.ledger.flows["advertisers→fresh payees (ad conversions)"] += paid_users
            ctx.ledger.flows["advertisers→relay (publisher share)"] += paid_publisher
            await self._tables(ctx, section, data)

        async def refunds(ctx: EconomyContext) -> None:
            data = ctx.ledger.sections.setdefault(self.name, _empty_section())
            for i in range(section.advertisers):
                name = advertiser_name(i)
                for amount in (await ctx.call(name, advertiser.REFUND_CAMPAIGNS, Empty())).amounts:
                    ctx.ledger.refunds.append(Refund(kind="ads", payer=name, amount=amount, reason="unspent budget"))
            await self._tables(ctx, section, data)

        return [
            Phase("ad campaigns", "trade", campaigns),
            Phase("ad conversions", "trade", conversions),
            Phase("ad claims", "settle", claims),
            Phase("ad refunds", "after-deadlines", refunds),
        ]

    def _plan(self, section: AdsSection, ctx: EconomyContext, index: int) -> CampaignPlan:
        rng = random.Random(f"{ctx.seed}:ads:{index}")
        items = sorted(rng.sample(base_items(RecommenderSpec()), section.items_per_creative))
        return CampaignPlan(
            headline=HEADLINES[index % len(HEADLINES)], items=items, merchant=ctx.address(SHOP),
            merchant_account=ctx.account(SHOP), price=section.price, budget=section.budget, payout=section.payout,
            publisher=ctx.account(RELAY), publisher_bps=section.publisher_bps, duration=section.duration,
        )  # fmt: skip

    async def _tables(self, ctx: EconomyContext, section: AdsSection, data: dict[str, Any]) -> None:
        """The ROI table: each advertiser's view, read from the chain (no identities)."""
        rows = []
        for i in range(section.advertisers):
            name = advertiser_name(i)
            for row in (await ctx.call(name, advertiser.CAMPAIGN_TABLE, Empty())).rows:
                rows.append({"advertiser": name, **row.model_dump()})
        data["roi"] = rows

    def settle_window(self, section: AdsSection) -> int:
        """Campaigns end `duration` after creation: the refunds open then."""
        return section.duration

    def holders(self, data: dict[str, Any]) -> list[str]:
        """Accounts outside the participants that hold this market's tokens at the end: the fresh payees (public
        on chain). The runner's token accounting must add their balances for conservation to hold."""
        return list(data.get("payees", []))

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"ad conversions": "users rank ads locally and buy", "ad claims": "users prove conversions (Groth16)"}

    def plot(self, data: dict[str, Any], out_dir: Path) -> list[Path]:
        """Per campaign: budget split into paid conversions and refunded or unspent budget; cost per conversion."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = data.get("roi", [])
        labels = [f"#{r['campaign_id']} {r['advertiser']}" for r in rows]
        spent = [r["spent"] / AGT for r in rows]
        rest = [(r["budget"] - r["spent"]) / AGT for r in rows]
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
        left.bar(labels, spent, color="#2f9e6a", label="paid for proven conversions")
        left.bar(labels, rest, bottom=spent, color="#c9ced6", label="refunded / unspent")
        left.set_ylabel("AGT")
        left.set_title("Campaign budgets")
        left.legend()
        left.tick_params(axis="x", rotation=30)
        costs = [(r["cost_per_conversion"] or 0) / AGT for r in rows]
        right.bar(labels, [r["conversions"] for r in rows], color="#3b7dd8")
        right.set_title("Verified conversions (cost each: " + ", ".join(f"{c:.2f}" for c in costs) + " AGT)")
        right.tick_params(axis="x", rotation=30)
        fig.tight_layout()
        path = out_dir / "ads.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [path]

    def panel(self, data: dict[str, Any]) -> MarketPanel | None:
        """The advertisers' ROI table as it stands (filled once claims settle), with purchases and roots so far."""
        if not data:
            return None
        rows: list[list[str | int | float]] = [
            [r["campaign_id"], r["advertiser"], r["budget"] / AGT, r["spent"] / AGT, r["conversions"],
             (r["cost_per_conversion"] or 0) / AGT, r["refunded"] / AGT]
            for r in data.get("roi", [])
        ]  # fmt: skip
        return MarketPanel(
            title="Ad campaigns: the advertisers' view (no identities)",
            columns=["campaign", "advertiser", "budget AGT", "spent AGT", "verified conversions",
                     "cost per conversion AGT", "refunded AGT"],
            rows=rows,
            note=f"{data.get('purchases', 0)} purchases, {len(data.get('roots', []))} roots published",
        )  # fmt: skip

    def summary(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """Conversions proven, spend, the relay's gas per claim."""
        rows = data.get("roi", [])
        conversions = sum(r["conversions"] for r in rows)
        spent = sum(r["spent"] for r in rows)
        relay_data = data.get("relay", {})
        per_claim = relay_data.get("gas", 0) // max(relay_data.get("paid", 0), 1)
        return [
            ("ad conversions proven / purchases", f"{conversions} / {data.get('purchases', 0)}"),
            (
                "ad spend (AGT)",
                f"{spent / AGT:.2f}" + (f", {spent / conversions / AGT:.3f} per conversion" if conversions else ""),
            ),
            ("ad claim gas per conversion (batched)", f"{per_claim:,}"),
        ]


def _empty_section() -> dict[str, Any]:
    return {"campaigns": {}, "announcements_kept": 0, "purchases": 0, "commitments": 0, "roots": [], "roi": []}


async def _payouts(ctx: EconomyContext, data: dict[str, Any]) -> tuple[list[str], int, int]:
    """Payees of the market's campaigns (public ConversionClaimed events), what they and the publisher were paid."""
    ads = AdCampaignsClient(ctx.conn)
    ids = [i for ids in data["campaigns"].values() for i in ids]
    events = await ads.conversions_of(ids)
    payees = sorted({e.payee for e in events})
    return payees, sum(e.user_amount for e in events), sum(e.publisher_amount for e in events)


MARKET = AdsMarket()
"""The instance registered under the `agora.markets` entry point `ads`."""
