"""A validator's capabilities: re-execute audited calls and dispute wrong attestations, vote in disputes,
and grade training deliverables as a JobEscrow evaluator.

Every request is checked against what it claims to be about before any gas or CPU is spent: a
ValidationRequest's inputs and outputs must match the seller's commitment, a vote request must match the
disputed attestation on chain, an evaluation must be for a job that names this validator on chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable

from uagents import Context, Model

from agents.base import AgoraAgent, RemoteError
from agents.blobs import BlobRefused
from agents.capabilities.artifacts import ArtifactFetcher
from agents.capabilities.escrow import heldout_commitment, terms_hash
from agents.capabilities.inference import run_call, task_id, task_signer
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import MILLIONTHS, Settlement, to_bytes32
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import ContractRevert, JobStatus
from marketplace.chain.staking import Ballot, Committee, DisputeResolved
from marketplace.ml import InferenceRunner, evaluate, load_dataset, load_model
from protocols import disputes, evaluation, validation
from protocols.commitment import verify_output_commitment
from protocols.disputes import DisputeVoteRequest
from protocols.errors import ErrorCode
from protocols.evaluation import EvaluationRequest, EvaluationResult, EvaluationTerms, TermsAccepted
from protocols.validation import Attestation, ValidationRequest

MAX_HELDOUT_BLOB = 4 * 1024 * 1024


class Recomputer:
    """Gets listed models from their creators (checked against their on-chain hash) and re-executes calls."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement) -> None:
        self.settlement = settlement
        self.artifacts = ArtifactFetcher(agent, settlement)
        self._runners: dict[tuple[str, str], InferenceRunner] = {}

    async def commitment(self, model_id: str, creator: str, rows: list[list[float]]) -> str:
        """The commitment an honest seller (`creator`, the account serving it) of `model_id` gives for `rows`."""
        if (model_id, creator.lower()) not in self._runners:
            try:
                listed = await self.settlement.models.get(model_id, creator)
            except KeyError as exc:
                raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
            model = load_model(await self.artifacts.weights(listed), listed.content_hash)
            self._runners[model_id, creator.lower()] = InferenceRunner(model)
        try:
            return run_call(self._runners[model_id, creator.lower()], model_id, rows)[1]
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc


class Validation(Record):
    """A re-execution this validator attested, by task id."""

    seller: str
    valid: bool
    commitment: str


class ReExecutor(Capability):
    """Re-executes an audited call, attests the result on chain, and disputes a seller that attested otherwise."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, recomputer: Recomputer, voters: int = 2) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.recomputer = recomputer
        self.voters = voters
        self.validations = Repository(agent.store, "validator.validation", Validation)
        self.disputes = Repository(agent.store, "validator.dispute", Record)

    def handlers(self) -> Iterable[Handlers]:
        """ValidationRequest, in the validator role of the validation protocol."""
        return (Handlers(validation.SPEC, "validator", {ValidationRequest: self._on_validation}),)

    async def _on_validation(self, ctx: Context, sender: str, msg: ValidationRequest) -> None:
        task = await self._bound_task(msg)
        done = self.validations.get(task.hex())
        if done is not None:  # asked again: the same answer, no second attestation
            await ctx.send(sender, self.settlement.attestation(msg.job_id, done.valid, done.commitment))
            return
        commitment = await self.recomputer.commitment(msg.model_id, msg.seller, msg.inputs)
        valid = commitment == msg.claimed_commitment.lower()
        await self.settlement.staking.attest(task, to_bytes32(commitment))
        self.validations.put(task.hex(), Validation(seller=msg.seller, valid=valid, commitment=commitment))
        if not valid:
            await self._dispute(msg, task, commitment)
        await ctx.send(sender, self.settlement.attestation(msg.job_id, valid, commitment))

    async def _bound_task(self, msg: ValidationRequest) -> bytes:
        """The request's task id, once the chain confirms it is a paid call the seller stood by (else Rejected).

        Only reads: nobody can make this validator spend gas or CPU on a call that was not paid for by the
        request's signer, or that the seller never attested.
        """
        if not verify_output_commitment(msg.model_id, msg.inputs, msg.outputs, msg.claimed_commitment):
            raise Rejected(ErrorCode.REJECTED, "inputs and outputs do not match the claimed commitment")
        try:
            listed = await self.settlement.models.get(msg.model_id, msg.seller)
        except KeyError as exc:
            raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
        task = task_id(listed.chain_id, msg.claimed_commitment, msg.channel_id, msg.cumulative_amount)
        try:
            channel = await self.settlement.channels.get_channel(msg.channel_id)
        except ContractRevert as exc:
            raise Rejected(ErrorCode.REJECTED, "no such channel") from exc
        if channel.recipient.lower() != msg.seller.lower() or channel.model_id != listed.chain_id:
            raise Rejected(ErrorCode.REJECTED, "that channel does not pay this seller for this model")
        if not 0 < msg.cumulative_amount <= channel.deposit:
            raise Rejected(ErrorCode.REJECTED, "no such payment on that channel")
        signer = task_signer(task, msg.signature)
        if signer is None or signer.lower() != channel.sender.lower():
            raise Rejected(ErrorCode.UNAUTHORIZED, "an audit must be signed by the payer of the channel")
        attested = await self.settlement.staking.attestation_of(task, msg.seller)
        if attested != to_bytes32(msg.claimed_commitment):
            raise Rejected(ErrorCode.REJECTED, "the seller has not attested this call on chain")
        return task

    async def _dispute(self, msg: ValidationRequest, task: bytes, commitment: str) -> None:
        """Challenge the seller's attestation on chain, draw the committee, ask its members to re-execute and vote."""
        staking = self.settlement.staking
        try:
            opened = await staking.open_dispute(task, msg.seller, to_bytes32(commitment))
            committee = await staking.draw_committee(opened.dispute_id)
            if committee is None:  # the seed block was too old: the draw moved on, so draw again
                committee = await staking.draw_committee(opened.dispute_id)
        except ContractRevert as err:
            self.agent.logger.info("no dispute over %s: %s", msg.job_id, err)
            return
        self.disputes.put(str(opened.dispute_id), Record())
        if committee is None:
            return
        vote = DisputeVoteRequest(
            dispute_id=opened.dispute_id, job_id=msg.job_id, model_id=msg.model_id, inputs=msg.inputs,
            outputs=msg.outputs, channel_id=msg.channel_id, cumulative_amount=msg.cumulative_amount,
        )  # fmt: skip
        agents = await self.settlement.agents_of(set(committee.members))
        for member in committee.members:
            for address in agents[member.lower()]:
                try:
                    await self.agent.request(address, vote, Attestation, wait=30)
                except (RemoteError, DeliveryError, TimeoutError) as err:
                    self.agent.logger.info("committee member %s did not vote: %s", address[:16], err)

    async def resolve_disputes(self) -> list[tuple[DisputeResolved, Committee]]:
        """Resolve the disputes this validator opened (after their voting window), with their committees."""
        resolved = []
        for dispute_id, _ in self.disputes.items():
            committee = await self.settlement.staking.committee_of(int(dispute_id))
            resolved.append((await self.settlement.staking.resolve(int(dispute_id)), committee))
            self.disputes.delete(dispute_id)
        return resolved


class DisputeVoter(Capability):
    """Votes in a dispute after re-executing the disputed call, only if the call matches the disputed attestation."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, recomputer: Recomputer) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.recomputer = recomputer

    def handlers(self) -> Iterable[Handlers]:
        """DisputeVoteRequest, in the voter role of the disputes protocol."""
        return (Handlers(disputes.SPEC, "voter", {DisputeVoteRequest: self._on_vote_request}),)

    async def _on_vote_request(self, ctx: Context, sender: str, msg: DisputeVoteRequest) -> None:
        staking = self.settlement.staking
        try:
            dispute = await staking.dispute_of(msg.dispute_id)
        except ContractRevert as exc:
            raise Rejected(ErrorCode.REJECTED, "no such dispute") from exc
        accused = "0x" + dispute.accused_result.hex()
        # The model is the one the paid channel's recipient serves: the accused may be a validator, not the seller.
        try:
            seller = (await self.settlement.channels.get_channel(msg.channel_id)).recipient
            listed = await self.settlement.models.get(msg.model_id, seller)
        except ContractRevert as exc:
            raise Rejected(ErrorCode.REJECTED, "no such channel") from exc
        except KeyError as exc:
            raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
        task = task_id(listed.chain_id, accused, msg.channel_id, msg.cumulative_amount)
        if dispute.task_id != task or dispute.resolved:
            raise Rejected(ErrorCode.REJECTED, "dispute is about another task, or already resolved")
        committee = await staking.committee_of(msg.dispute_id)
        if not committee.includes(self.settlement.account):
            raise Rejected(ErrorCode.UNAUTHORIZED, "this agent does not sit on that dispute's committee")
        if not verify_output_commitment(msg.model_id, msg.inputs, msg.outputs, accused):
            raise Rejected(ErrorCode.REJECTED, "inputs and outputs do not match the disputed attestation")
        commitment = await self.recomputer.commitment(msg.model_id, seller, msg.inputs)
        seat = next(s for s in committee.seats if s.member.lower() == self.settlement.account.lower())
        if seat.ballot is Ballot.ABSENT:  # asked again (another candidate agent, a retry): vote once
            await staking.vote(msg.dispute_id, to_bytes32(commitment))
        await ctx.send(sender, self.settlement.attestation(msg.job_id, True, commitment))


class Grade(Record):
    """An evaluation this validator made and what it settled."""

    metric: str
    score: int
    completed: bool
    fee: int = 0
    royalties: int = 0
    provider: int = 0


class KeptTerms(Record):
    """Evaluation terms a client committed to on chain, kept by the job's evaluator (the held-out set in its store)."""

    heldout_ref: str
    metric: str
    min_score: int


class Evaluator(Capability):
    """Keeps a JobEscrow job's evaluation terms when they match its spec hash, then grades the deliverable on the
    held-out data and completes (pays) or rejects (refunds) the job, once, whoever asks."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.terms = Repository(agent.store, "evaluator.terms", KeptTerms)
        self.grades = Repository(agent.store, "evaluator.grade", Grade)
        self._grading: dict[int, asyncio.Lock] = {}

    def handlers(self) -> Iterable[Handlers]:
        """EvaluationTerms and EvaluationRequest, in the validator role of the evaluation protocol."""
        table: dict[type[Model], Handler] = {EvaluationTerms: self._on_terms, EvaluationRequest: self._on_evaluation}
        return (Handlers(evaluation.SPEC, "validator", table),)

    async def _on_terms(self, ctx: Context, sender: str, msg: EvaluationTerms) -> None:
        job = await self.settlement.escrow.get_job(msg.escrow_job_id)
        if job.evaluator.lower() != self.settlement.account.lower():
            raise Rejected(ErrorCode.REJECTED, "this validator is not the job's evaluator")
        committed = heldout_commitment(msg.heldout.blob_id, msg.salt)
        expected = terms_hash(
            job.model_id, msg.dataset_ref, msg.epochs, committed, msg.metric, msg.min_score, job.evaluator
        )
        if expected != job.spec_hash:
            raise Rejected(ErrorCode.REJECTED, "these terms are not the ones the escrow job committed to")
        try:  # the held-out set now, while the client is there to serve it: grading must not depend on it later
            await self.agent.blobs.fetch(msg.heldout, MAX_HELDOUT_BLOB)
        except BlobRefused as exc:
            raise Rejected(ErrorCode.REJECTED, f"the held-out data is not readable: {exc}") from exc
        self.agent.blobs.pin(msg.heldout.blob_id, f"escrow:{msg.escrow_job_id}")
        kept = KeptTerms(heldout_ref=msg.heldout.blob_id, metric=msg.metric, min_score=msg.min_score)
        self.terms.add(str(msg.escrow_job_id), kept)
        await ctx.send(sender, TermsAccepted(escrow_job_id=msg.escrow_job_id))

    async def _on_evaluation(self, ctx: Context, sender: str, msg: EvaluationRequest) -> None:
        async with self._grading.setdefault(msg.escrow_job_id, asyncio.Lock()):  # the provider and client may both ask
            grade = self.grades.get(str(msg.escrow_job_id)) or await self._grade(msg)
        result = EvaluationResult(
            escrow_job_id=msg.escrow_job_id, metric=grade.metric, score=grade.score, completed=grade.completed
        )
        await ctx.send(sender, result)

    async def _grade(self, msg: EvaluationRequest) -> Grade:
        escrow = self.settlement.escrow
        job = await escrow.get_job(msg.escrow_job_id)
        terms = self.terms.get(str(msg.escrow_job_id))
        if job.evaluator.lower() != self.settlement.account.lower() or terms is None:
            raise Rejected(ErrorCode.REJECTED, "no committed terms for that job here")
        if job.status != JobStatus.SUBMITTED or job.deliverable != to_bytes32(msg.artifact_hash):
            raise Rejected(ErrorCode.REJECTED, "no such deliverable submitted for this job")
        if msg.artifact is None or msg.artifact.blob_id != msg.artifact_hash:
            raise Rejected(ErrorCode.REJECTED, "grading needs a grant to the submitted deliverable")
        blobs = self.agent.blobs
        try:
            model = load_model(await blobs.fetch(msg.artifact), msg.artifact_hash)
            heldout = load_dataset(blobs.get(terms.heldout_ref, MAX_HELDOUT_BLOB), terms.heldout_ref, MAX_HELDOUT_BLOB)
            metrics = await offload(evaluate, model, heldout)
        except ValueError as exc:  # BlobRefused included: an unreadable deliverable is not graded
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        score = round(metrics.score * MILLIONTHS) if metrics.metric == terms.metric else 0
        reason = hashlib.sha256(json.dumps(metrics.to_dict(), sort_keys=True).encode()).digest()
        grade = Grade(metric=terms.metric, score=score, completed=score >= terms.min_score)
        if grade.completed:
            paid = await escrow.complete(msg.escrow_job_id, reason, min(100, score // 10_000))
            grade.fee, grade.royalties, grade.provider = paid.evaluator_fee, paid.royalties, paid.provider_amount
        else:
            await escrow.reject(msg.escrow_job_id, reason)
        self.grades.put(str(msg.escrow_job_id), grade)
        self.agent.blobs.unpin(terms.heldout_ref, f"escrow:{msg.escrow_job_id}")
        return grade
