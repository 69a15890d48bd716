"""Evaluation and audit messages: a validator grades a training deliverable, stakes vote in disputes."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model
from protocols.validation import Attestation


class EvaluationRequest(Model):
    """Grade the artifact submitted to JobEscrow job `escrow_job_id` on held-out data (`heldout_ref`, a blob id).

    The evaluator completes the job when the measured score reaches `min_score` (in millionths), else rejects it.
    """

    escrow_job_id: int
    artifact_hash: str
    heldout_ref: str
    min_score: int


class EvaluationResult(Model):
    """The evaluator's verdict: the metric, the measured score (millionths) and whether it paid the seller."""

    escrow_job_id: int
    metric: str
    score: int
    completed: bool


class DisputeVoteRequest(Model):
    """Re-execute a disputed inference call and vote on dispute `dispute_id` with the recomputed commitment."""

    dispute_id: int
    job_id: str
    model_id: str
    inputs: list[list[float]]


SPEC = ProtocolSpecification(
    name="agora-evaluation",
    version="1.0.0",
    interactions={
        EvaluationRequest: {EvaluationResult, ErrorReply},
        DisputeVoteRequest: {Attestation, ErrorReply},
        EvaluationResult: set(),
        Attestation: set(),
    },
    roles={"requester": {EvaluationResult, Attestation}, "validator": {EvaluationRequest, DisputeVoteRequest}},
)
"""Roles: validators grade and vote; requesters (buyers, challengers) receive verdicts."""
