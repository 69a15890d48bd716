"""Evaluation messages: a validator grades a training deliverable on held-out data and settles the escrow."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


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


SPEC = ProtocolSpecification(
    name="agora-evaluation",
    version="2.0.0",
    interactions={
        EvaluationRequest: {EvaluationResult, ErrorReply},
        EvaluationResult: set(),
    },
    roles={"requester": {EvaluationResult}, "validator": {EvaluationRequest}},
)
"""Roles: validators grade deliverables; requesters (buyers) receive verdicts."""
