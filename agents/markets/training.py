"""The training market: advertisers buy fine-tunes of a seller's recommender on their own catalogue, paid through
JobEscrow and graded by a validator on held-out data; a seller that never delivers is refunded after expiry.

Scenario section `markets.training`; phases: training (trade, with mid-job faults), refunds (after
deadlines). Sellers, their models and the validators come from the inference market of the same scenario.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agents.capabilities.control import Empty
from agents.capabilities.escrow import TrainingPlan
from agents.markets.inference import AGT, seed_of
from agents.markets.plugin import EconomyContext, Market, Participant, Phase, Refund
from agents.roles import advertiser, seller
from agents.roles.advertiser import Deliver, FundTraining
from marketplace.chain import EscrowClient, JobStatus, ModelRegistryClient


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingSeller(_Strict):
    """A seller that fine-tunes one of its recommenders, and its prices per job (base units)."""

    name: str
    base_model: str
    price: int = Field(default=50 * AGT, gt=0)
    floor: int = Field(default=30 * AGT, gt=0)


class TrainingSection(_Strict):
    """The training market of a scenario: advertiser i buys from seller i mod len(sellers)."""

    sellers: list[TrainingSeller] = Field(min_length=1)
    advertisers: int = Field(default=1, ge=0, le=50)
    opening: int = Field(default=20 * AGT, gt=0)
    budget: int = Field(default=60 * AGT, gt=0)
    epochs: int = Field(default=3, ge=1, le=20)
    ttl: int = Field(default=1_800, gt=0)
    min_score: int = Field(default=600_000, ge=0, le=1_000_000)
    """Least held-out AUC (millionths) for the evaluator to pay the seller."""


class TrainingMarket(Market):
    """Escrowed fine-tuning (see module docstring)."""

    name: ClassVar[str] = "training"
    section: ClassVar[type[BaseModel]] = TrainingSection

    def participants(self, section: TrainingSection, seed: int) -> list[Participant]:
        """Advertisers hold their training budget; sellers learn their training prices."""
        found = [
            Participant(
                name=spec.name,
                role=seller.ROLE,
                factory="agents.roles.seller:build",
                options={"training_price": spec.price, "training_floor": spec.floor},
            )
            for spec in section.sellers
        ]
        found += [
            Participant(
                name=f"advertiser-{i + 1}",
                role=advertiser.ROLE,
                factory="agents.roles.advertiser:build",
                funding=section.budget,
                options={"seed": seed_of(seed, "adv", i)},
            )
            for i in range(section.advertisers)
        ]
        return found

    def phases(self, section: TrainingSection) -> list[Phase]:
        """training → (deadlines pass) → refunds."""
        funded: dict[str, int] = {}

        async def training(ctx: EconomyContext) -> None:
            counts = ctx.ledger.jobs.setdefault("training", Counter())
            names = ctx.names(advertiser.ROLE)
            for i, name in enumerate(names):
                spec = section.sellers[i % len(section.sellers)]
                if not ctx.alive(spec.name):
                    counts["no-seller"] += 1
                    continue
                plan = TrainingPlan(
                    base_model_id=spec.base_model,
                    catalogue=i % 4,
                    opening=section.opening,
                    budget=section.budget,
                    epochs=section.epochs,
                    ttl=section.ttl,
                    min_score=section.min_score,
                )
                outcome = await ctx.call(
                    name, advertiser.FUND_TRAINING, FundTraining(seller=ctx.address(spec.name), plan=plan)
                )
                if not outcome.escrow_job_id:
                    counts[outcome.state] += 1
                    continue
                funded[name] = outcome.escrow_job_id
                if spec.name in ctx.faults("training"):
                    await ctx.kill(spec.name)  # the seller dies after the job is funded
                await ctx.call(
                    name, advertiser.DELIVER_TRAINING, Deliver(escrow_job_id=outcome.escrow_job_id), wait=300
                )
                ctx.progress("training", i + 1, len(names))
            await _flows(ctx, funded)

        async def refunds(ctx: EconomyContext) -> None:
            for name in funded:
                for amount in (await ctx.call(name, advertiser.RECLAIM_EXPIRED, Empty())).amounts:
                    ctx.ledger.refunds.append(
                        Refund(kind="escrow", payer=name, amount=amount, reason="seller never delivered")
                    )
            escrow, counts = EscrowClient(ctx.conn), ctx.ledger.jobs.setdefault("training", Counter())
            for job_id in funded.values():
                counts[(await escrow.get_job(job_id)).status.name.lower()] += 1

        return [
            Phase("training", "trade", training, faults_inside=True),
            Phase("escrow refunds", "after-deadlines", refunds),
        ]

    def settle_window(self, section: TrainingSection) -> int:
        """Escrow deadlines pass."""
        return section.ttl

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"training": "advertisers buying fine-tunes"}


async def _flows(ctx: EconomyContext, funded: dict[str, int]) -> None:
    """Where completed training budgets went: provider, evaluator fee, royalties along the base model's lineage."""
    escrow, registry, owners = EscrowClient(ctx.conn), ModelRegistryClient(ctx.conn), ctx.owner_names()
    for job_id in funded.values():
        job = await escrow.get_job(job_id)
        if job.status != JobStatus.COMPLETED:
            continue
        fee = job.budget * job.evaluator_fee_bps // 10_000
        ctx.ledger.flows["advertisers→validators (evaluation fees)"] += fee
        for payout in await registry.split(job.model_id, job.budget - fee, job.provider):
            if payout.recipient.lower() == job.provider.lower():
                ctx.ledger.flows["advertisers→sellers (training)"] += payout.amount
            else:
                ctx.ledger.flows["advertisers→upstream creators (royalties)"] += payout.amount
                ctx.ledger.royalties[owners.get(payout.recipient.lower(), payout.recipient)] += payout.amount


MARKET = TrainingMarket()
"""The instance registered under the `agora.markets` entry point `training`."""
