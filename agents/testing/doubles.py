"""Offline test doubles: an in-process probe agent, raw-envelope forging for adversarial tests, free ports."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from uagents import Model
from uagents.communication import dispatch_local_message
from uagents.dispatch import dispatcher
from uagents_core.envelope import Envelope
from uagents_core.identity import Identity

from agents.base import AgentDeps, AgoraAgent, RemoteError
from agents.clock import SimulatedClock, SystemClock
from agents.crypto import sign_envelope
from agents.settings import AgentSettings
from protocols.errors import ErrorReply

M = TypeVar("M", bound=Model)

__all__ = ["Probe", "SimulatedClock", "SystemClock", "forge_envelope", "free_port", "post_envelope"]


def free_port() -> int:
    """A currently free loopback TCP port (for agents in other processes that must be known in advance)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Probe(AgoraAgent):
    """A bare agent for tests: asks questions, including malformed ones, and returns the typed answers."""

    @classmethod
    def create(cls, data_dir: Path, deps: AgentDeps | None = None, name: str = "probe") -> Probe:
        """A probe with a fresh identity storing its state under `data_dir`."""
        return cls(AgentSettings(name=name, seed=f"probe-{uuid.uuid4()}", data_dir=data_dir), deps)

    async def ask(self, destination: str, message: Model, expect: Sequence[type[Model]], wait: float = 5.0) -> Model:
        """Send and return the reply; an ErrorReply is returned (not raised) so tests can assert on it."""
        try:
            return await self.request_any(destination, message, expect, wait=wait)
        except RemoteError as err:
            return ErrorReply(code=err.code, detail=err.detail)

    async def ask_raw(self, destination: str, schema_digest: str, payload: str, wait: float = 5.0) -> Model:
        """Deliver a raw (possibly malformed) payload in-process and return the ErrorReply or reply."""
        session = uuid.uuid4()
        await dispatcher.register_pending_response(self.address, destination, session, None)
        await dispatch_local_message(self.address, destination, schema_digest, payload, session)
        info = await dispatcher.wait_for_response(self.address, destination, session, wait)
        if info is None:
            raise TimeoutError("no reply")
        return ErrorReply.parse_raw(info.message)


def forge_envelope(
    signer: Identity,
    target: str,
    message: Model,
    *,
    sender: str | None = None,
    expires: int | None = None,
    nonce: int = 1,
    payload: str | None = None,
) -> Envelope:
    """Build and sign an envelope by hand; `sender` may lie about who signed it (for adversarial tests)."""
    envelope = Envelope(
        version=1,
        sender=sender or signer.address,
        target=target,
        session=uuid.uuid4(),
        schema_digest=Model.build_schema_digest(message),
        expires=int(time.time()) + 30 if expires is None else expires,
        nonce=nonce,
    )
    envelope.encode_payload(payload if payload is not None else message.model_dump_json())
    sign_envelope(envelope, signer)
    return envelope


async def post_envelope(endpoint: str, body: bytes | Envelope) -> tuple[int, dict[str, Any]]:
    """POST an envelope (or raw bytes) to an agent endpoint; returns (HTTP status, JSON body)."""
    data = body.model_dump_json().encode() if isinstance(body, Envelope) else body
    async with (
        aiohttp.ClientSession() as session,
        session.post(endpoint, data=data, headers={"content-type": "application/json"}) as resp,
    ):
        return resp.status, dict(await resp.json(content_type=None))
