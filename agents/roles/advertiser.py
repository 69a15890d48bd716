"""An advertiser agent buying a recommender fine-tuned on its own catalogue, paid through JobEscrow.

The advertiser keeps a held-out slice of its data; only the evaluator (a staked validator) sees it. The
seller is paid only when the evaluator measures the agreed quality; if the seller never delivers, the
advertiser takes its budget back after the deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eth_utils.crypto import keccak

from agents.base import AgentDeps, RemoteError
from agents.roles.buyer import BuyerAgent, BuyerLimits
from agents.roles.market import Market, kind_spec
from agents.settings import AgentSettings
from agents.transport import DeliveryError
from marketplace.chain import JobSpec as EscrowJobSpec
from marketplace.chain import JobStatus
from marketplace.chain.escrow import JobExpired
from marketplace.ml import RecommenderSpec, catalogue_items, make_interactions, serialize_dataset, split
from marketplace.registry.models import AgentEntry
from protocols.evaluation import EvaluationRequest, EvaluationResult
from protocols.jobs import TrainingRequest, TrainingResult
from protocols.negotiation import JobSpec


@dataclass(frozen=True)
class TrainingPlan:
    """What an advertiser buys: a fine-tune of `base_model_id` on catalogue slice `catalogue`, and its limits."""

    base_model_id: str
    catalogue: int
    opening: int
    budget: int
    epochs: int
    ttl: int
    min_score: int
    """Least held-out score (millionths, e.g. AUC) the evaluator must measure for the seller to be paid."""
    evaluator_fee_bps: int = 500
    examples: int = 2_500


@dataclass
class TrainingOutcome:
    """How one training purchase went."""

    seller: str
    price: int = 0
    escrow_job_id: int = 0
    state: str = "no-deal"
    """no-deal | not-delivered | completed | rejected (then refunded after expiry: expired)."""
    score: int = 0
    artifact_hash: str = ""


class AdvertiserAgent(BuyerAgent):
    """Buys training jobs: `await advertiser.buy_training(seller_entry, plan)`."""

    def __init__(self, settings: AgentSettings, deps: AgentDeps, market: Market, seed: int = 0) -> None:
        super().__init__(settings, deps)
        self.market = market
        self.seed = seed

    async def buy_training(
        self, seller: AgentEntry, plan: TrainingPlan, after_funding: Callable[[], Awaitable[None]] | None = None
    ) -> TrainingOutcome:
        """Negotiate, escrow, hand over the training data, get the deliverable graded; the result says how it went.

        `after_funding` runs once the escrow is funded (the simulator injects faults there, e.g. killing the seller).
        """
        outcome = TrainingOutcome(seller=seller.card.name or seller.card.address)
        job = JobSpec(kind="training", model_id=plan.base_model_id, units=1)
        deal = await self.negotiate([seller.card.address], job, BuyerLimits(opening=plan.opening, budget=plan.budget))
        if deal is None:
            return outcome
        outcome.price = deal.price
        evaluator = await self._evaluator(
            f"{self.name}:{plan.base_model_id}:{plan.catalogue}", exclude=seller.card.owner
        )
        base = await self.market.models.get(plan.base_model_id)
        deadline = await self.market.chain_time() + plan.ttl
        spec = EscrowJobSpec(
            provider=seller.card.owner,
            evaluator=evaluator.card.owner,
            deadline=deadline,
            budget=deal.price,
            model_id=base.chain_id,
            evaluator_fee_bps=plan.evaluator_fee_bps,
            spec_hash=keccak(text=f"fine-tune:{plan.base_model_id}:{plan.catalogue}:{plan.epochs}"),
        )
        created = await self.market.escrow.create_job(spec)
        outcome.escrow_job_id = created.job_id
        await self.market.token.approve(self.market.escrow.address, deal.price)
        await self.market.escrow.fund(created.job_id, deal.price)
        self.store.put_job(
            deal.negotiation_id, "training", "funded", {"escrow_job_id": created.job_id}, self.clock.now()
        )
        if after_funding is not None:
            await after_funding()

        train_ref, heldout_ref = self._publish_data(plan)
        request = TrainingRequest(
            job_id=deal.negotiation_id,
            base_model_id=plan.base_model_id,
            dataset_ref=train_ref,
            epochs=plan.epochs,
            price=deal.price,
            escrow_job_id=created.job_id,
        )
        try:
            result = await self.request(seller.card.address, request, TrainingResult, wait=60)
        except (RemoteError, DeliveryError, TimeoutError):
            outcome.state = "not-delivered"
            return outcome
        outcome.artifact_hash = result.artifact_hash
        grade = EvaluationRequest(
            escrow_job_id=created.job_id,
            artifact_hash=result.artifact_hash,
            heldout_ref=heldout_ref,
            min_score=plan.min_score,
        )
        verdict = await self.request(evaluator.card.address, grade, EvaluationResult, wait=60)
        outcome.score = verdict.score
        outcome.state = "completed" if verdict.completed else "rejected"
        return outcome

    def _publish_data(self, plan: TrainingPlan) -> tuple[str, str]:
        """Make the catalogue data, put the training part in the blob store; keep the held-out part for grading."""
        spec = kind_spec("recommender")
        assert isinstance(spec, RecommenderSpec)
        data = make_interactions(spec, plan.examples, seed=self.seed, items=catalogue_items(spec, plan.catalogue))
        train, heldout = split(data, 0.2, self.seed)
        train_blob, heldout_blob = serialize_dataset(train), serialize_dataset(heldout)
        self.market.blobs.put(train_blob.data)
        self.market.blobs.put(heldout_blob.data)
        return train_blob.content_id, heldout_blob.content_id

    async def _evaluator(self, job_key: str, exclude: str) -> AgentEntry:
        """A registered validator chosen by stake-weighted selection (never the seller) to judge the job."""
        ranked = await self.market.ranked_validators(keccak(text=f"evaluator:{job_key}"), {exclude})
        if not ranked:
            raise RuntimeError("no registered validator is staked")
        return ranked[0]

    async def reclaim_expired(self, escrow_job_id: int) -> JobExpired | None:
        """After the deadline, take back the budget of a job the seller never delivered."""
        job = await self.market.escrow.get_job(escrow_job_id)
        if job.status in (JobStatus.FUNDED, JobStatus.SUBMITTED):
            return await self.market.escrow.claim_refund(escrow_job_id)
        return None


ROLE = AdvertiserAgent
"""The agent class the simulator instantiates for this role (see marketplace/sim/roles.py)."""
