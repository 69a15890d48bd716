"""Typed error replies: every agora agent answers bad input with an ErrorReply instead of crashing."""

from __future__ import annotations

from typing import Final

from uagents_core.protocol import ProtocolSpecification

from protocols.model import Model


class ErrorReply(Model):
    """Why a message was refused: a stable machine-readable code and a human-readable detail."""

    code: str
    detail: str


class ErrorCode:
    """The stable error codes carried in `ErrorReply.code`."""

    MALFORMED: Final = "malformed"
    UNKNOWN_SCHEMA: Final = "unknown_schema"
    TOO_LARGE: Final = "too_large"
    BAD_SIGNATURE: Final = "bad_signature"
    BAD_SENDER: Final = "bad_sender"
    WRONG_TARGET: Final = "wrong_target"
    EXPIRED: Final = "expired"
    REPLAYED: Final = "replayed"
    REJECTED: Final = "rejected"
    UNAUTHORIZED: Final = "unauthorized"
    INTERNAL: Final = "internal"


SPEC = ProtocolSpecification(name="agora-errors", version="1.0.0", interactions={ErrorReply: set()})
"""ErrorReply needs no reply; any role may receive it."""
