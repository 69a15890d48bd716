"""The training market's capabilities: a client escrows a fine-tuning job and has it graded; a provider trains
for funded jobs and submits the deliverable.

The client keeps its data in its own store: the training part is granted to the provider, the held-out slice
to the evaluator only (a staked validator, never the provider), and the weights reach the client once paid for;
the provider is paid only when the evaluator measures the agreed quality; if it never delivers, the client
takes its budget back after the deadline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from eth_abi.abi import encode
from eth_utils.crypto import keccak
from pydantic import BaseModel
from uagents import Context

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.catalogue import ModelCatalogue
from agents.capabilities.kit import Capability, Handlers
from agents.capabilities.mandate import MandateGuard
from agents.capabilities.negotiation import BuyerLimits, NegotiationBuyer
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import Settlement, kind_spec, to_bytes32
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import EscrowTerms, JobStatus
from marketplace.chain.escrow import JobExpired
from marketplace.ml import (
    RecommenderSpec,
    catalogue_items,
    evaluate,
    fine_tune,
    load_dataset,
    make_interactions,
    serialize_dataset,
    serialize_model,
    split,
)
from marketplace.registry.models import AgentEntry
from protocols import jobs
from protocols.errors import ErrorCode
from protocols.evaluation import EvaluationRequest, EvaluationResult, EvaluationTerms, TermsAccepted
from protocols.jobs import TrainingRequest, TrainingResult
from protocols.negotiation import JobSpec

MAX_TRAINING_BLOB = 4 * 1024 * 1024
"""Largest training dataset a provider accepts (bytes)."""

METRICS = {"recommender": "auc", "classifier": "accuracy"}
"""The held-out metric a fine-tune of each model kind is judged by."""


def heldout_commitment(heldout_ref: str, salt: str) -> str:
    """Commitment to the held-out data's reference: the provider sees this, never the reference itself."""
    return "0x" + hashlib.sha256(f"agora:heldout:{heldout_ref}:{salt}".encode()).hexdigest()


def terms_hash(
    base_model: int, dataset_ref: str, epochs: int, heldout: str, metric: str, min_score: int, evaluator: str
) -> bytes:
    """The JobEscrow spec hash of a fine-tuning job: what is trained, on what, and how it is judged and by whom."""
    fields = ["string", "uint256", "string", "uint256", "bytes32", "string", "uint256", "address"]
    values = ["agora:fine-tune:v2", base_model, dataset_ref, epochs, to_bytes32(heldout), metric, min_score, evaluator]
    return keccak(encode(fields, values))


class TrainingPlan(BaseModel):
    """What a client buys: a fine-tune of `base_model_id` on catalogue slice `catalogue`, and its limits."""

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


class TrainingOutcome(BaseModel):
    """How one training purchase went."""

    seller: str
    price: int = 0
    escrow_job_id: int = 0
    state: str = "no-deal"
    """no-deal | funded | not-delivered | completed | rejected."""
    score: int = 0
    artifact_hash: str = ""
    received: bool = False
    """Whether the provider released the trained weights to the client (after the evaluator paid it)."""


class FundedJob(Record):
    """A job this client funded: with whom, graded by whom (agent and account), on which data, by which terms."""

    plan: TrainingPlan
    negotiation_id: str
    seller: str
    evaluator: str
    evaluator_account: str
    price: int
    escrow_job_id: int
    dataset_ref: str
    heldout_ref: str
    salt: str
    metric: str
    outcome: TrainingOutcome


class EscrowClient(Capability):
    """Buys training jobs: `fund(seller, plan)` negotiates and escrows; `deliver(job_id)` gets it trained and graded.

    With a `guard`, the agreed price is checked against the user's mandate (job kind `training`) before any
    transaction is sent.
    """

    def __init__(
        self,
        agent: AgoraAgent,
        settlement: Settlement,
        negotiation: NegotiationBuyer,
        seed: int,
        guard: MandateGuard | None = None,
    ) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.negotiation = negotiation
        self.seed = seed
        self.guard = guard
        if guard is not None and guard.terms.spender.lower() != settlement.account.lower():
            raise ValueError("the mandate governs another account than this agent's")
        self.jobs = Repository(agent.store, "escrow.client", FundedJob)

    async def fund(self, seller: AgentEntry, plan: TrainingPlan) -> TrainingOutcome:
        """Negotiate with `seller`, choose an evaluator, create and fund the JobEscrow job.

        Raises MandateExceeded (before any transaction) when the mandate does not allow paying the agreed price.
        """
        outcome = TrainingOutcome(seller=seller.card.name or seller.card.address)
        job = JobSpec(kind="training", model_id=plan.base_model_id, units=1)
        limits = BuyerLimits(opening=plan.opening, budget=plan.budget)
        deal = await self.negotiation.negotiate([seller.card.address], job, limits)
        if deal is None:
            return outcome
        if self.guard is not None:
            await self.guard.authorize(seller.card.owner, plan.base_model_id, "training", deal.price)
            # Counted now, with no await since the check: a concurrent spend cannot slip past it. A transaction
            # failing later leaves it counted, so the mandate errs towards spending less.
            self.guard.record(seller.card.owner, deal.price)
        outcome.price = deal.price
        s = self.settlement
        evaluator = await self._evaluator(
            f"{self.agent.name}:{plan.base_model_id}:{plan.catalogue}", exclude=seller.card.owner
        )
        base = await s.models.get(plan.base_model_id, seller.card.owner)
        now = await s.chain_time()
        train_ref, heldout_ref = self._publish_data(plan)
        # Deterministic for a seed (reports stay reproducible) and unguessable without this agent's key.
        salt = keccak(
            bytes(s.conn.account.key) + f"{seller.card.address}:{plan.model_dump_json()}:{now}".encode()
        ).hex()
        metric = METRICS[base.kind]
        spec_hash = terms_hash(
            base.chain_id, train_ref, plan.epochs, heldout_commitment(heldout_ref, salt), metric, plan.min_score,
            evaluator.card.owner,
        )  # fmt: skip
        terms = EscrowTerms(
            provider=seller.card.owner,
            evaluator=evaluator.card.owner,
            deadline=now + plan.ttl,
            budget=deal.price,
            model_id=base.chain_id,
            evaluator_fee_bps=plan.evaluator_fee_bps,
            spec_hash=spec_hash,
        )
        created = await s.escrow.create_job(terms)
        await s.token.approve(s.escrow.address, deal.price)
        await s.escrow.fund(created.job_id, deal.price)
        outcome.escrow_job_id, outcome.state = created.job_id, "funded"
        committed = EvaluationTerms(
            escrow_job_id=created.job_id, dataset_ref=train_ref, epochs=plan.epochs,
            heldout=self.agent.blobs.grant(heldout_ref, evaluator.card.address), salt=salt, metric=metric,
            min_score=plan.min_score,
        )  # fmt: skip
        await self.agent.request(evaluator.card.address, committed, TermsAccepted, wait=30)
        record = FundedJob(
            plan=plan,
            negotiation_id=deal.negotiation_id,
            seller=seller.card.address,
            evaluator=evaluator.card.address,
            evaluator_account=evaluator.card.owner,
            price=deal.price,
            escrow_job_id=created.job_id,
            dataset_ref=train_ref,
            heldout_ref=heldout_ref,
            salt=salt,
            metric=metric,
            outcome=outcome,
        )
        self.jobs.put(str(created.job_id), record)
        return outcome

    async def deliver(self, escrow_job_id: int) -> TrainingOutcome:
        """Hand the training data and the committed terms to the seller; then read the evaluator's verdict."""
        job = self.jobs.get(str(escrow_job_id))
        if job is None:
            raise KeyError(f"escrow job {escrow_job_id} was not funded by this agent")
        outcome = job.outcome
        request = TrainingRequest(
            job_id=job.negotiation_id,
            base_model_id=job.plan.base_model_id,
            dataset=self.agent.blobs.grant(job.dataset_ref, job.seller),
            epochs=job.plan.epochs,
            price=job.price,
            escrow_job_id=escrow_job_id,
            heldout_commitment=heldout_commitment(job.heldout_ref, job.salt),
            metric=job.metric,
            min_score=job.plan.min_score,
            evaluator=job.evaluator_account,
        )
        try:
            result = await self.agent.request(job.seller, request, TrainingResult, wait=120)
        except (RemoteError, DeliveryError, TimeoutError):
            outcome.state = "not-delivered"
        else:
            outcome.artifact_hash = result.artifact_hash
            grade = EvaluationRequest(escrow_job_id=escrow_job_id, artifact_hash=result.artifact_hash)
            verdict = await self.agent.request(job.evaluator, grade, EvaluationResult, wait=60)
            outcome.score = verdict.score
            outcome.state = "completed" if verdict.completed else "rejected"
            if result.artifact is not None and result.artifact.blob_id == result.artifact_hash:
                await self.agent.blobs.fetch(result.artifact)
                outcome.received = True
        job.outcome = outcome
        self.jobs.put(str(escrow_job_id), job)
        return outcome

    def _publish_data(self, plan: TrainingPlan) -> tuple[str, str]:
        """Make the catalogue data, put the training part in the blob store; keep the held-out part for grading."""
        spec = kind_spec("recommender")
        assert isinstance(spec, RecommenderSpec)
        data = make_interactions(spec, plan.examples, seed=self.seed, items=catalogue_items(spec, plan.catalogue))
        train, heldout = split(data, 0.2, self.seed)
        train_blob, heldout_blob = serialize_dataset(train), serialize_dataset(heldout)
        self.agent.blobs.put(train_blob.data, pin="escrow")
        self.agent.blobs.put(heldout_blob.data, pin="escrow")
        return train_blob.content_id, heldout_blob.content_id

    async def _evaluator(self, job_key: str, exclude: str) -> AgentEntry:
        """A registered validator chosen by stake-weighted selection (never the seller) to judge the job."""
        ranked = await self.settlement.ranked_validators(keccak(text=f"evaluator:{job_key}"), {exclude})
        if not ranked:
            raise RuntimeError("no registered validator is staked")
        return ranked[0]

    async def reclaim_expired(self) -> list[JobExpired]:
        """After the deadline, take back the budget of every job of this client that was never settled."""
        refunds = []
        now = await self.settlement.chain_time()
        for job_id, _ in self.jobs.items():
            job = await self.settlement.escrow.get_job(int(job_id))
            # A job still within its deadline is skipped (JobEscrow would revert), not allowed to sink the others.
            if job.status in (JobStatus.FUNDED, JobStatus.SUBMITTED) and job.deadline <= now:
                refunds.append(await self.settlement.escrow.claim_refund(int(job_id)))
        return refunds


class TrainingJob(Record):
    """A fine-tune this provider delivered."""

    escrow_job_id: int
    artifact: str
    child_model_id: str


class EscrowProvider(Capability):
    """Trains for funded JobEscrow jobs that name this agent, registers the child model, submits the deliverable."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, catalogue: ModelCatalogue, seed: int = 0) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.catalogue = catalogue
        self.seed = seed
        self.deliveries = Repository(agent.store, "escrow.provider", TrainingJob)

    async def _ask_for_grade(self, evaluator: str, escrow_job_id: int, artifact_hash: str) -> EvaluationResult | None:
        """Have the job's evaluator (the account the chain names) grade the deliverable now, so nobody can stall it;
        each candidate agent gets a grant to read the weights, and only the account's own agent can settle."""
        candidates = await self.settlement.agents_of({evaluator}, role=None)
        for address in candidates[evaluator.lower()]:
            artifact = self.agent.blobs.grant(artifact_hash, address)
            grade = EvaluationRequest(escrow_job_id=escrow_job_id, artifact_hash=artifact_hash, artifact=artifact)
            try:
                return await self.agent.request(address, grade, EvaluationResult, wait=60)
            except (RemoteError, DeliveryError, TimeoutError) as err:
                self.agent.logger.info("evaluator candidate %s did not grade: %s", address[:16], err)
        return None

    def handlers(self) -> Iterable[Handlers]:
        """TrainingRequest, in the seller role of the jobs protocol."""
        return (Handlers(jobs.SPEC, "seller", {TrainingRequest: self._on_training}),)

    async def _on_training(self, ctx: Context, sender: str, msg: TrainingRequest) -> None:
        served = self.catalogue.get(msg.base_model_id)
        terms = self.catalogue.training
        if served is None or terms is None:
            raise Rejected(ErrorCode.REJECTED, f"fine-tuning {msg.base_model_id} is not sold here")
        if self.deliveries.get(str(msg.escrow_job_id)) is not None:
            raise Rejected(ErrorCode.REPLAYED, "this job was already delivered")
        job = await self.settlement.escrow.get_job(msg.escrow_job_id)
        if job.provider.lower() != self.settlement.account.lower() or job.status != JobStatus.FUNDED:
            raise Rejected(ErrorCode.REJECTED, "escrow job is not funded for this seller")
        if job.budget < terms.floor or msg.price != job.budget:
            raise Rejected(ErrorCode.REJECTED, "escrow budget differs from the agreed price")
        if job.model_id != served.chain_id:
            raise Rejected(ErrorCode.REJECTED, "the escrow job names another model than the one fine-tuned here")
        expected = terms_hash(
            served.chain_id, msg.dataset.blob_id, msg.epochs, msg.heldout_commitment, msg.metric, msg.min_score,
            job.evaluator,
        )  # fmt: skip
        if expected != job.spec_hash or msg.metric != METRICS[served.kind]:
            raise Rejected(ErrorCode.REJECTED, "the request's terms are not the ones the escrow job committed to")
        try:
            blob = await self.agent.blobs.fetch(msg.dataset, MAX_TRAINING_BLOB)
            dataset = load_dataset(blob, msg.dataset.blob_id, MAX_TRAINING_BLOB)
            train, check = split(dataset, 0.1, self.seed)  # type: ignore[type-var]  # either kind splits
            tuned, _ = fine_tune(
                self.catalogue.model(served.model_id), train, epochs=msg.epochs, lr=0.01, seed=self.seed
            )
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        child_id = f"{served.model_id}-ft-{msg.escrow_job_id}"
        artifact = serialize_model(tuned)
        prices = (served.price_per_call, served.floor_per_call)
        await self.catalogue.publish(
            child_id, tuned, prices, parent=served.model_id, royalty_bps=terms.child_royalty_bps
        )
        await self.settlement.escrow.submit(msg.escrow_job_id, to_bytes32(artifact.artifact_hash))
        metrics = await offload(evaluate, tuned, check)
        self.deliveries.put(
            str(msg.escrow_job_id),
            TrainingJob(escrow_job_id=msg.escrow_job_id, artifact=artifact.artifact_hash, child_model_id=child_id),
        )
        verdict = await self._ask_for_grade(job.evaluator, msg.escrow_job_id, artifact.artifact_hash)
        paid = verdict is not None and verdict.completed
        result = TrainingResult(
            job_id=msg.job_id,
            artifact_hash=artifact.artifact_hash,
            metrics={"score": metrics.score, "loss": metrics.loss},
            artifact=self.agent.blobs.grant(artifact.artifact_hash, sender) if paid else None,
        )
        await ctx.send(sender, result)
