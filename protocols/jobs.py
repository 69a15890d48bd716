"""Job messages: inference calls with output commitments, training jobs with artifact hashes and metrics."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.blobs import BlobRef
from protocols.errors import ErrorReply
from protocols.model import Model


class InferenceRequest(Model):
    """Run `model_id` on `inputs` for an agreed `price` (base units)."""

    job_id: str
    model_id: str
    inputs: list[list[float]]
    price: int


class InferenceResult(Model):
    """The outputs plus `output_commitment` (0x-hex keccak/sha256 of the canonical outputs) validators recheck."""

    job_id: str
    model_id: str
    outputs: list[list[float]]
    output_commitment: str


class TrainingRequest(Model):
    """Train from `base_model_id` on `dataset` (held by the client, granted to this provider); `escrow_job_id`
    names the funded JobEscrow job.

    The evaluation terms (a commitment to the held-out data, the metric, the least score, the evaluator's
    account) travel with the request so the provider can check them against the job's on-chain spec hash
    before it works: nobody can change how the work is judged after the provider accepted it.
    """

    job_id: str
    base_model_id: str
    dataset: BlobRef
    epochs: int
    price: int
    escrow_job_id: int
    heldout_commitment: str
    metric: str
    min_score: int
    evaluator: str


class TrainingResult(Model):
    """The trained artifact's 0x-hex hash and its metrics; `artifact` grants the client the weights once the
    evaluator completed the job (None while it is not paid for)."""

    job_id: str
    artifact_hash: str
    metrics: dict[str, float]
    artifact: BlobRef | None = None


SPEC = ProtocolSpecification(
    name="agora-jobs",
    version="3.0.0",
    interactions={
        InferenceRequest: {InferenceResult, ErrorReply},
        TrainingRequest: {TrainingResult, ErrorReply},
        InferenceResult: set(),
        TrainingResult: set(),
    },
    roles={
        "buyer": {InferenceResult, TrainingResult},
        "seller": {InferenceRequest, TrainingRequest},
    },
)
"""Roles: a seller receives requests; a buyer receives results."""
