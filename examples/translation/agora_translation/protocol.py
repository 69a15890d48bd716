"""The translation protocol's wire messages: plain-typed uAgents models under their own protocol specification."""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class TranslationRequest(Model):
    """Translate `text` with `model_id` for an agreed `price` (base units), already paid by a voucher for `job_id`."""

    job_id: str
    model_id: str
    text: str
    price: int


class TranslationResult(Model):
    """The translation of the request `job_id`."""

    job_id: str
    model_id: str
    text: str


SPEC = ProtocolSpecification(
    name="agora-translation",
    version="0.1.0",
    interactions={TranslationRequest: {TranslationResult, ErrorReply}, TranslationResult: set()},
    roles={"translator": {TranslationRequest}, "client": {TranslationResult}},
)
"""Roles: a translator receives requests; a client receives translations."""
