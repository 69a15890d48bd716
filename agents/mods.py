"""Middleware ("mods", Flower style): small async callables `mod(msg, ctx, next)` stacked around every handler.

Two stacks run per message. Envelope mods guard the transport (HTTP): size, signature, sender, target,
expiry, replay; a rejection becomes an HTTP 4xx whose body is an ErrorReply, and nothing reaches a
handler. Handler mods wrap every handler: metering, schema validation and any user mod (budget guard…);
a rejection there is sent back to the (already authenticated) sender as an ErrorReply message.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic.v1 import ValidationError
from uagents import Model
from uagents_core.envelope import Envelope
from uagents_core.identity import is_user_address

from agents.clock import Clock
from agents.crypto import SignatureError, verify_envelope
from agents.store import AgentStore
from protocols.errors import ErrorCode


class Rejected(Exception):
    """A mod refused a message; `code` is an ErrorCode, `detail` is safe to send back."""

    def __init__(self, code: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


@dataclass(slots=True)
class Inbound:
    """One incoming message as mods see it; `envelope` is None for in-process delivery (never signed)."""

    sender: str
    target: str
    schema_digest: str
    payload: str
    session: uuid.UUID
    size: int
    envelope: Envelope | None = None
    message: Model | None = None
    digest: bytes | None = None
    sync: bool = False
    """The sender waits for the reply in the HTTP response (uAgents "sync")."""
    reply: asyncio.Future[tuple[str, str]] | None = None
    """Set by the agent once the envelope passed every check, when the reply may ride in the HTTP response."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Transport limits: what the default mods accept, what the transport reads, and which peers it posts to."""

    max_message_bytes: int = 64 * 1024
    """Largest envelope accepted, and (plus a little framing) largest HTTP response read from a peer."""
    max_envelope_ttl: float = 300.0
    clock_skew: float = 5.0
    allowed_senders: frozenset[str] | None = None
    allowed_endpoint_hosts: frozenset[str] | None = None
    """When set, the only peer hosts envelopes are posted to: host names, IP addresses or CIDR networks."""
    allow_private_endpoints: bool | None = None
    """Peers on non-public addresses: None allows the class the agent advertises itself at (loopback for a
    loopback agent, private ranges for one on a private address; never link-local), True any address, False
    public addresses only (see agents.transport.EndpointPolicy)."""
    max_pending_replies: int = 1024
    """Requests whose reply may wait in an open HTTP response at once; beyond it replies go as their own envelopes."""


@dataclass(slots=True)
class Metrics:
    """Counters the metering mod keeps: handled messages per schema, rejections per code, time in handlers."""

    handled: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    handler_seconds: float = 0.0
    replies: int = 0
    """Replies to this agent's own requests that arrived in time (they resolve a wait; no handler runs)."""


class ReplayLedger:
    """Persists seen message ids with group commit: ids checked in one event-loop tick share one SQLite
    transaction, and each check resolves only after its commit (durable before any handler runs).

    Expired ids are dropped in the same transaction every `prune_every` new ids or `prune_interval` seconds
    of `wall_clock`, whichever comes first, so a long-running agent keeps only ids still inside their expiry.
    """

    def __init__(
        self,
        store: AgentStore,
        wall_clock: Callable[[], float] = time.time,
        *,
        prune_every: int = 1024,
        prune_interval: float = 60.0,
    ) -> None:
        self._store = store
        self._pending: list[tuple[tuple[str, str, float], asyncio.Future[bool]]] = []
        self._wall_clock = wall_clock
        self._prune_every = prune_every
        self._prune_interval = prune_interval
        self._since_prune = 0
        self._pruned_at = wall_clock()

    async def remember(self, sender: str, message_id: str, expires: float) -> bool:
        """True the first time (sender, message_id) is seen, False for a replay."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(((sender, message_id, expires), future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        now = self._wall_clock()
        prune = self._since_prune >= self._prune_every or now - self._pruned_at >= self._prune_interval
        try:
            results = self._store.remember_messages(
                [entry for entry, _ in pending], forget_before=now if prune else None
            )
        except Exception as err:  # the checks fail closed: every waiter sees the error
            for _, future in pending:
                if not future.done():
                    future.set_exception(err)
            return
        if prune:
            self._since_prune, self._pruned_at = 0, now
        self._since_prune += len(pending)
        for (_, future), fresh in zip(pending, results, strict=True):
            if not future.done():
                future.set_result(fresh)


@dataclass(frozen=True, slots=True)
class ModContext:
    """What a mod may use: the agent address, its store, clocks, limits, metrics, logger and known models.

    `clock` is the injected (possibly simulated) business clock; `wall_clock` is real time, which the
    transport checks use so that a simulated clock can never widen an expiry or replay window.
    """

    address: str
    store: AgentStore
    replay: ReplayLedger
    clock: Clock
    wall_clock: Clock
    limits: Limits
    metrics: Metrics
    logger: logging.Logger
    models: Mapping[str, type[Model]]


Next = Callable[[Inbound, ModContext], Awaitable[None]]
Mod = Callable[[Inbound, ModContext, Next], Awaitable[None]]


def compose(mods: Sequence[Mod], terminal: Next) -> Next:
    """Wrap `terminal` in `mods`, first mod outermost."""
    chain = terminal
    for mod in reversed(mods):
        chain = _bind(mod, chain)
    return chain


def _bind(mod: Mod, nxt: Next) -> Next:
    async def call(msg: Inbound, ctx: ModContext) -> None:
        await mod(msg, ctx, nxt)

    return call


# --- envelope mods (HTTP delivery) ----------------------------------------------------------------
async def limit_size(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Refuse bodies above `limits.max_message_bytes` (also applied to in-process payloads)."""
    if msg.size > ctx.limits.max_message_bytes:
        raise Rejected(ErrorCode.TOO_LARGE, f"{msg.size} bytes > {ctx.limits.max_message_bytes}", status=413)
    await nxt(msg, ctx)


async def verify_signature(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Require an agent sender whose key signed the envelope (uAgents lets `user…` senders skip signing)."""
    env = msg.envelope
    if env is not None:
        if is_user_address(env.sender):
            raise Rejected(ErrorCode.BAD_SENDER, "unsigned user senders are not accepted", status=401)
        msg.digest = env._digest()  # the signed digest, reused as the replay id
        try:
            verify_envelope(env, msg.digest)
        except SignatureError as err:
            raise Rejected(ErrorCode.BAD_SIGNATURE, str(err), status=401) from err
    await nxt(msg, ctx)


async def check_sender(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Refuse senders outside `limits.allowed_senders` (when set) and envelopes meant for another agent."""
    allowed = ctx.limits.allowed_senders
    if allowed is not None and msg.sender not in allowed:
        raise Rejected(ErrorCode.BAD_SENDER, "sender not allowed", status=403)
    if msg.target != ctx.address:
        raise Rejected(ErrorCode.WRONG_TARGET, "envelope is addressed to another agent", status=404)
    await nxt(msg, ctx)


async def check_expiry(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Require `expires` in (now, now + max_envelope_ttl]: bounded expiry keeps the replay table bounded."""
    env = msg.envelope
    if env is not None:
        now = ctx.wall_clock.now()
        if env.expires is None:
            raise Rejected(ErrorCode.EXPIRED, "envelope has no expiry")
        if env.expires < now - ctx.limits.clock_skew:
            raise Rejected(ErrorCode.EXPIRED, "envelope expired")
        if env.expires > now + ctx.limits.max_envelope_ttl + ctx.limits.clock_skew:
            raise Rejected(ErrorCode.EXPIRED, "envelope expiry too far in the future")
    await nxt(msg, ctx)


async def guard_replay(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Accept each signed envelope once per sender, persisted so a restart does not reopen replays."""
    env = msg.envelope
    if env is not None:
        # The signed digest covers session, payload, expiry and nonce: it is the message id.
        message_id = (msg.digest or env._digest()).hex()
        expires = float(env.expires or 0) + ctx.limits.clock_skew
        if not await ctx.replay.remember(env.sender, message_id, expires):
            raise Rejected(ErrorCode.REPLAYED, "envelope already received", status=409)
    await nxt(msg, ctx)


ENVELOPE_MODS: tuple[Mod, ...] = (limit_size, verify_signature, check_sender, check_expiry, guard_replay)
"""The default transport guard, in order: cheap checks first, the replay table written last."""


# --- handler mods ---------------------------------------------------------------------------------
async def meter(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Count handled and rejected messages and time spent in handlers; log rejections once."""
    started = time.perf_counter()
    try:
        await nxt(msg, ctx)
    except Rejected as err:
        ctx.metrics.rejected[err.code] += 1
        ctx.logger.info("rejected %s from %s: %s", err.code, msg.sender[:16], err.detail)
        raise
    finally:
        ctx.metrics.handler_seconds += time.perf_counter() - started
    ctx.metrics.handled[msg.schema_digest] += 1


async def validate_schema(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
    """Parse the payload into its declared model; unknown or malformed payloads become typed rejections."""
    model = ctx.models.get(msg.schema_digest)
    if model is None:
        raise Rejected(ErrorCode.UNKNOWN_SCHEMA, f"no handler for schema {msg.schema_digest[:20]}…")
    try:
        msg.message = model.parse_raw(msg.payload)
    except (ValidationError, ValueError, TypeError) as err:
        raise Rejected(ErrorCode.MALFORMED, f"payload does not match {model.__name__}") from err
    await nxt(msg, ctx)


HANDLER_MODS: tuple[Mod, ...] = (meter, limit_size, validate_schema)
"""The default handler stack; user mods run inside it, after the message is typed."""
