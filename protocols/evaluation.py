"""Evaluation messages: a validator grades a training deliverable on held-out data and settles the escrow."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.blobs import BlobRef
from protocols.errors import ErrorReply
from protocols.model import Model


class EvaluationTerms(Model):
    """How JobEscrow job `escrow_job_id` is judged, sent by its client to its evaluator when it funds the job.

    The evaluator keeps them only if they hash to the job's on-chain spec hash, together with the dataset
    and epochs the provider trains on; `heldout` is granted to the evaluator only, and `salt` keeps its content
    id hidden from the provider, which sees only a commitment. Once kept, the terms cannot change and the
    client cannot withhold them.
    """

    escrow_job_id: int
    dataset_ref: str
    epochs: int
    heldout: BlobRef
    salt: str
    metric: str
    min_score: int


class TermsAccepted(Model):
    """The evaluator holds the terms of a job and will grade its deliverable by them."""

    escrow_job_id: int


class EvaluationRequest(Model):
    """Grade the artifact submitted to JobEscrow job `escrow_job_id` by the terms its client committed to.

    Anyone may ask (the provider does, once it submitted, granting the evaluator the weights in `artifact`);
    the evaluator completes the job when the measured score reaches the terms' least score, else rejects it,
    and answers later requests from its record.
    """

    escrow_job_id: int
    artifact_hash: str
    artifact: BlobRef | None = None


class EvaluationResult(Model):
    """The evaluator's verdict: the metric, the measured score (millionths) and whether it paid the seller."""

    escrow_job_id: int
    metric: str
    score: int
    completed: bool


SPEC = ProtocolSpecification(
    name="agora-evaluation",
    version="3.0.0",
    interactions={
        EvaluationTerms: {TermsAccepted, ErrorReply},
        EvaluationRequest: {EvaluationResult, ErrorReply},
        TermsAccepted: set(),
        EvaluationResult: set(),
    },
    roles={"requester": {TermsAccepted, EvaluationResult}, "validator": {EvaluationTerms, EvaluationRequest}},
)
"""Roles: validators keep terms and grade deliverables; requesters (clients, providers) receive verdicts."""
