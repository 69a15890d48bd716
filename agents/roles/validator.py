"""A validator: re-executes sampled inference calls, grades training deliverables, and votes in disputes.

It is paid evaluator fees by JobEscrow and rewarded from slashed stake when it wins a dispute; it is
slashed itself if a majority of other validators recompute a different result than the one it attested.
"""

from __future__ import annotations

import hashlib
import json

from uagents import Context, Protocol

from agents.base import AgentDeps, AgoraAgent
from agents.mods import Rejected
from agents.roles.market import MILLIONTHS, ListedModel, Market, rows_to_inputs, task_id, to_bytes32
from agents.roles.seller import bind
from agents.settings import AgentSettings
from marketplace.chain import JobStatus
from marketplace.chain.staking import DisputeResolved
from marketplace.ml import AgoraModel, InferenceRunner, evaluate, load_dataset, load_model
from protocols import evaluation, validation
from protocols.errors import ErrorCode
from protocols.evaluation import DisputeVoteRequest, EvaluationRequest, EvaluationResult
from protocols.validation import Attestation, ValidationRequest

MAX_HELDOUT_BLOB = 4 * 1024 * 1024


class ValidatorAgent(AgoraAgent):
    """Checks other agents' work against the chain and the blob store; attests, evaluates, disputes, votes."""

    def __init__(self, settings: AgentSettings, deps: AgentDeps, market: Market, voters: int = 2) -> None:
        super().__init__(settings, deps)
        self.market = market
        self.voters = voters
        self._runners: dict[str, InferenceRunner] = {}
        audit = Protocol(spec=validation.SPEC, role="validator")
        bind(audit, validation.SPEC, ValidationRequest, self._on_validation)
        self.include(audit)
        grading = Protocol(spec=evaluation.SPEC, role="validator")
        bind(grading, evaluation.SPEC, EvaluationRequest, self._on_evaluation)
        bind(grading, evaluation.SPEC, DisputeVoteRequest, self._on_vote_request)
        self.include(grading)

    async def _runner(self, model_id: str) -> InferenceRunner:
        """The model behind a listed id, loaded from the blob store and checked against its on-chain hash."""
        if model_id not in self._runners:
            try:
                listed: ListedModel = await self.market.models.get(model_id)
            except KeyError as exc:
                raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
            model: AgoraModel = load_model(self.market.blobs.get(listed.content_hash), listed.content_hash)
            self._runners[model_id] = InferenceRunner(model)
        return self._runners[model_id]

    async def recompute(self, model_id: str, rows: list[list[float]]) -> str:
        """Re-execute a call deterministically and return the commitment an honest seller would have given."""
        runner = await self._runner(model_id)
        try:
            return runner.run(rows_to_inputs(runner.spec, rows)).commitment
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc

    async def _on_validation(self, ctx: Context, sender: str, msg: ValidationRequest) -> None:
        commitment = await self.recompute(msg.model_id, msg.inputs)
        task = task_id(msg.job_id)
        valid = commitment == msg.claimed_commitment.lower()
        await self.market.staking.attest(task, to_bytes32(commitment))
        self.store.put(f"validation:{msg.job_id}", {"valid": valid, "seller": msg.seller})
        if not valid:
            await self._dispute(msg, task, commitment)
        await ctx.send(sender, self.market.attestation(msg.job_id, valid, commitment))

    async def _dispute(self, msg: ValidationRequest, task: bytes, commitment: str) -> None:
        """Challenge the seller's on-chain attestation and ask other validators to re-execute and vote."""
        seller_claim = await self.market.staking.attestation_of(task, msg.seller)
        if seller_claim != to_bytes32(msg.claimed_commitment):
            return  # the seller never stood by this result on chain: nothing to slash, the buyer just stops
        opened = await self.market.staking.open_dispute(task, msg.seller, to_bytes32(commitment))
        disputes = self.store.get("disputes", [])
        self.store.put("disputes", [*disputes, opened.dispute_id])
        vote = DisputeVoteRequest(
            dispute_id=opened.dispute_id, job_id=msg.job_id, model_id=msg.model_id, inputs=msg.inputs
        )
        for voter in await self._voters(task, exclude={msg.seller.lower(), self.market.account.lower()}):
            await self.request(voter, vote, Attestation, wait=30)

    async def _voters(self, task: bytes, exclude: set[str]) -> list[str]:
        """Other validators' agent addresses, chosen by stake-weighted selection seeded with the task id."""
        if self.market.registry is None:
            return []
        ranked = await self.market.ranked_validators(task, exclude)
        return [entry.card.address for entry in ranked[: self.voters]]

    async def _on_vote_request(self, ctx: Context, sender: str, msg: DisputeVoteRequest) -> None:
        commitment = await self.recompute(msg.model_id, msg.inputs)
        dispute = await self.market.staking.dispute_of(msg.dispute_id)
        if dispute.task_id != task_id(msg.job_id):
            raise Rejected(ErrorCode.REJECTED, "dispute is about another task")
        await self.market.staking.vote(msg.dispute_id, to_bytes32(commitment))
        await ctx.send(sender, self.market.attestation(msg.job_id, True, commitment))

    async def resolve_disputes(self) -> list[DisputeResolved]:
        """Resolve the disputes this validator opened whose voting window has closed."""
        resolved = []
        for dispute_id in self.store.get("disputes", []):
            if self.store.get(f"resolved:{dispute_id}"):
                continue
            resolved.append(await self.market.staking.resolve(dispute_id))
            self.store.put(f"resolved:{dispute_id}", True)
        return resolved

    async def _on_evaluation(self, ctx: Context, sender: str, msg: EvaluationRequest) -> None:
        job = await self.market.escrow.get_job(msg.escrow_job_id)
        if job.evaluator.lower() != self.market.account.lower():
            raise Rejected(ErrorCode.REJECTED, "this validator is not the job's evaluator")
        if job.status != JobStatus.SUBMITTED or job.deliverable != to_bytes32(msg.artifact_hash):
            raise Rejected(ErrorCode.REJECTED, "no such deliverable submitted for this job")
        try:
            model = load_model(self.market.blobs.get(msg.artifact_hash), msg.artifact_hash)
            heldout = load_dataset(
                self.market.blobs.get(msg.heldout_ref, MAX_HELDOUT_BLOB), msg.heldout_ref, MAX_HELDOUT_BLOB
            )
            metrics = evaluate(model, heldout)
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        score = round(metrics.score * MILLIONTHS)
        reason = hashlib.sha256(json.dumps(metrics.to_dict(), sort_keys=True).encode()).digest()
        completed = score >= msg.min_score
        record: dict[str, int | bool] = {"score": score, "completed": completed}
        if completed:
            paid = await self.market.escrow.complete(msg.escrow_job_id, reason, min(100, score // 10_000))
            record.update(fee=paid.evaluator_fee, royalties=paid.royalties, provider=paid.provider_amount)
        else:
            await self.market.escrow.reject(msg.escrow_job_id, reason)
        self.store.put(f"evaluation:{msg.escrow_job_id}", record)
        result = EvaluationResult(
            escrow_job_id=msg.escrow_job_id, metric=metrics.metric, score=score, completed=completed
        )
        await ctx.send(sender, result)


ROLE = ValidatorAgent
"""The agent class the simulator instantiates for this role (see marketplace/sim/roles.py)."""
