"""HTTP transport in the uAgents envelope format: an aiohttp receiver and a keep-alive, connection-reusing sender."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from uagents.communication import Dispenser
from uagents_core.envelope import Envelope
from uagents_core.identity import Identity
from uagents_core.types import DeliveryStatus, MsgStatus

from agents.crypto import sign_envelope
from agents.http import KeepAlivePool
from agents.mods import Rejected

log = logging.getLogger("agora.transport")

Receiver = Callable[[bytes, bool], Awaitable[bytes | None]]
"""Takes a raw envelope body and whether the sender waits for the reply in the HTTP response (uAgents "sync");
returns the reply envelope to send back (or None), raises Rejected to refuse the envelope."""
SYNC_HEADER = "x-uagents-connection"


class EnvelopeServer:
    """Receives uAgents envelopes on POST /submit (loopback by default) and hands them to a Receiver."""

    def __init__(self, host: str, port: int, receiver: Receiver, max_body: int) -> None:
        self._host = host
        self._port = port
        self._receiver = receiver
        self._max_body = max_body
        self._handler: web.Server | None = None
        self._listener: asyncio.Server | None = None
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (known after start)."""
        if self._bound_port is None:
            raise RuntimeError("server not started")
        return self._bound_port

    async def start(self) -> None:
        """Bind and start serving."""
        # aiohttp's low-level server: no router or middleware chain, one function sees every request
        # (bodies are read up to aiohttp's 1 MiB cap, then held to max_body by the receiver).
        self._handler = web.Server(self._route, access_log=None)
        self._listener = await asyncio.get_running_loop().create_server(
            self._handler, self._host, self._port, reuse_address=True
        )
        self._bound_port = int(self._listener.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop serving and close connections."""
        if self._listener is not None and self._handler is not None:
            self._listener.close()
            await self._handler.shutdown(1.0)
            self._listener = None

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != "/submit":
            return web.Response(status=404, body=b'{"code": "not_found", "detail": "POST /submit"}')
        if request.method == "HEAD":
            return await self._probe(request)
        if request.method != "POST":
            return web.Response(status=405)
        return await self._submit(request)

    async def _probe(self, _request: web.BaseRequest) -> web.Response:
        return web.Response(headers={"x-uagents-status": "ready"})

    async def _submit(self, request: web.BaseRequest) -> web.Response:
        if request.content_length is not None and request.content_length > self._max_body:
            return _error_response(Rejected("too_large", f"{request.content_length} bytes > {self._max_body}", 413))
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error_response(Rejected("too_large", f"body > {self._max_body} bytes", 413))
        try:
            reply = await self._receiver(body, request.headers.get(SYNC_HEADER) == "sync")
        except Rejected as err:
            return _error_response(err)
        return web.Response(body=reply or b"{}", content_type="application/json")


def _error_response(err: Rejected) -> web.Response:
    body = json.dumps({"code": err.code, "detail": err.detail}).encode()
    return web.Response(status=err.status, body=body, content_type="application/json")


class DeliveryError(RuntimeError):
    """An envelope could not be delivered; `code`/`detail` come from the receiver's ErrorReply when it sent one."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class EnvelopeSender:
    """Seals (nonce + expiry + signature) and posts envelopes on keep-alive connections (aiohttp for https)."""

    def __init__(self, identity: Identity, now: Callable[[], float], timeout: float = 10.0) -> None:
        self._identity = identity
        self._now = now
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._plain = KeepAlivePool(timeout)
        # Microsecond start keeps nonces increasing across restarts without persisting a counter.
        self._nonces = itertools.count(time.time_ns() // 1000)

    def seal(self, envelope: Envelope, ttl: float) -> Envelope:
        """Give the envelope a fresh nonce and an expiry (if it has none) and sign it."""
        envelope.nonce = next(self._nonces)
        if envelope.expires is None:
            envelope.expires = int(self._now() + ttl)
        sign_envelope(envelope, self._identity)
        return envelope

    def _session(self, endpoint: str) -> aiohttp.ClientSession:
        parts = urlsplit(endpoint)
        origin = f"{parts.scheme}://{parts.netloc}"
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=30.0)
            session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._sessions[origin] = session
        return session

    async def post(self, envelope: Envelope, endpoints: list[str], sync: bool = False) -> tuple[MsgStatus, bytes]:
        """Post a sealed envelope to the first endpoint that accepts it; also returns the response body, which
        carries the reply envelope when `sync` asks the peer to answer in the same HTTP exchange."""
        body = envelope.model_dump_json().encode()
        headers = {"content-type": "application/json"}
        if sync:
            headers[SYNC_HEADER] = "sync"
        errors: list[str] = []
        for endpoint in endpoints:
            try:
                status, raw = await self._post(endpoint, body, headers)
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError, aiohttp.ClientError) as err:
                errors.append(f"unreachable: {err.__class__.__name__} {err}")
                continue
            if status == 200:
                return _status(envelope, DeliveryStatus.DELIVERED, "delivered", endpoint), raw
            errors.append(_error_text(status, raw.decode(errors="replace")))
        return _status(envelope, DeliveryStatus.FAILED, "; ".join(errors) or "no endpoint", ""), b""

    async def _post(self, endpoint: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if endpoint.startswith("http://"):
            return await self._plain.post(endpoint, body, headers)
        async with self._session(endpoint).post(endpoint, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def close(self) -> None:
        """Close every pooled connection and session."""
        await self._plain.close()
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def _error_text(status: int, text: str) -> str:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        return f"http_{status}: {text[:200]}"
    if isinstance(data, dict) and "code" in data:
        return f"{data['code']}: {data.get('detail', '')}"
    return f"http_{status}: {text[:200]}"


def _status(envelope: Envelope, status: DeliveryStatus, detail: str, endpoint: str) -> MsgStatus:
    return MsgStatus(
        status=status, detail=detail, destination=envelope.target, endpoint=endpoint, session=envelope.session
    )


class PooledDispenser(Dispenser):  # type: ignore[misc]  # uagents is untyped
    """Replaces uAgents' serial connection-per-message dispenser: envelopes go out at once on pooled sessions."""

    def __init__(self, sender: EnvelopeSender, ttl: float) -> None:
        super().__init__()
        self._sender = sender
        self._ttl = ttl
        self._tasks: set[asyncio.Task[None]] = set()

    def add_envelope(
        self, envelope: Envelope, endpoints: list[str], response_future: asyncio.Future[Any], sync: bool = False
    ) -> None:
        """Seal and send now (uAgents' context signs without a nonce; we re-seal so replay ids are unique)."""
        task = asyncio.get_running_loop().create_task(self._deliver(envelope, endpoints, response_future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, envelope: Envelope, endpoints: list[str], response_future: asyncio.Future[Any]) -> None:
        try:
            status, _ = await self._sender.post(self._sender.seal(envelope, self._ttl), endpoints)
        except Exception as err:  # a send failure must never kill the agent
            log.warning("send failed: %s", err)
            status = _status(envelope, DeliveryStatus.FAILED, str(err), "")
        if status.status != DeliveryStatus.DELIVERED:
            log.warning("delivery to %s failed: %s", envelope.target[:16], status.detail)
        if not response_future.done():
            response_future.set_result(status)

    async def run(self) -> None:
        """Idle until cancelled, then finish in-flight sends and close the sessions."""
        try:
            await asyncio.Event().wait()
        finally:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self._sender.close()
