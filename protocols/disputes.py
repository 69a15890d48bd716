"""Dispute messages: a challenger asks other validators to re-execute a disputed call and vote on chain."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model
from protocols.validation import Attestation


class DisputeVoteRequest(Model):
    """Re-execute a disputed inference call and vote on dispute `dispute_id` with the recomputed commitment.

    `outputs` are the accused's revealed outputs: together with `model_id` and `inputs` they must match the
    commitment the accused attested on chain, and with the payment fields they must give the disputed task
    id, or the voter refuses (the request is about another call).
    """

    dispute_id: int
    job_id: str
    model_id: str
    inputs: list[list[float]]
    outputs: list[list[float]]
    channel_id: int
    cumulative_amount: int


SPEC = ProtocolSpecification(
    name="agora-disputes",
    version="1.0.0",
    interactions={DisputeVoteRequest: {Attestation, ErrorReply}, Attestation: set()},
    roles={"challenger": {Attestation}, "voter": {DisputeVoteRequest}},
)
"""Roles: voters re-execute and vote; the challenger receives their attestations."""
