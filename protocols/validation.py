"""Validation messages: ask a validator to re-execute a job, and its signed attestation."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class ValidationRequest(Model):
    """Re-execute `model_id` on `inputs` and compare with the seller's claimed commitment to `outputs`.

    The claimed commitment binds model id, inputs and outputs (protocols/commitment.py): a request whose
    inputs or outputs do not match it is refused before any work, so nobody can audit a call that never was.
    """

    job_id: str
    model_id: str
    inputs: list[list[float]]
    outputs: list[list[float]]
    claimed_commitment: str
    seller: str


class Attestation(Model):
    """A validator's verdict on a job, signed (0x-hex EIP-191) by its settlement account."""

    job_id: str
    validator: str
    valid: bool
    recomputed_commitment: str
    signature: str


SPEC = ProtocolSpecification(
    name="agora-validation",
    version="2.0.0",
    interactions={ValidationRequest: {Attestation, ErrorReply}, Attestation: set()},
    roles={"requester": {Attestation}, "validator": {ValidationRequest}},
)
"""Roles: a validator receives requests; a requester receives attestations."""
