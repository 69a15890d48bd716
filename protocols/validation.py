"""Validation messages: ask a validator to re-execute a job, and its signed attestation."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class ValidationRequest(Model):
    """Re-execute `model_id` on `inputs` and compare with the seller's claimed commitment to `outputs`.

    The audited call is bound to what was paid for: its task id commits to the model's token id, the claimed
    commitment (which binds model id, inputs and outputs) and the payment (channel id and the cumulative
    amount of the voucher that paid the call), and `signature` is the channel payer's EIP-191 signature of
    that task id. A validator refuses, before any work, a request that does not match its commitment, is
    not signed by the payer the chain names, or that the seller never attested.
    """

    job_id: str
    model_id: str
    inputs: list[list[float]]
    outputs: list[list[float]]
    claimed_commitment: str
    seller: str
    channel_id: int
    cumulative_amount: int
    signature: str


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
