"""The offline-safe agora agent: a uAgents Agent with a wallet, a durable store, a clock, mods and a fast transport."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop
from cosmpy.aerial.wallet import LocalWallet
from uagents import Agent, Context, Model, Protocol
from uagents.agent import AgentRepresentation
from uagents.communication import dispatch_local_message
from uagents.context import ExternalContext
from uagents.dispatch import dispatcher
from uagents.registration import AgentRegistrationPolicy
from uagents.resolver import Resolver
from uagents.storage import KeyValueStore
from uagents.types import MsgInfo
from uagents_core.envelope import Envelope
from uagents_core.identity import parse_identifier
from uagents_core.types import DeliveryStatus, MsgStatus

from agents.blobs import Blobs
from agents.clock import Clock, SystemClock
from agents.crypto import schema_digest
from agents.mods import (
    ENVELOPE_MODS,
    HANDLER_MODS,
    Inbound,
    Metrics,
    Mod,
    ModContext,
    Rejected,
    ReplayLedger,
    compose,
)
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from agents.store import AgentStore
from agents.transport import (
    RESPONSE_OVERHEAD,
    DeliveryError,
    EndpointPolicy,
    EnvelopeSender,
    EnvelopeServer,
    PooledDispenser,
)
from agents.wallet import Wallet
from protocols import errors
from protocols.errors import ErrorCode, ErrorReply

M = TypeVar("M", bound=Model)

_ERROR_DIGEST = schema_digest(ErrorReply)

# uAgents' constructor asks the Fetch.ai ledger for the Almanac contract version (a blocking gRPC call
# that stalls ~33 s offline). agora never registers in the Almanac, so the contract is never needed.
_uagents_agent: Any = importlib.import_module("uagents.agent")
_uagents_agent.get_almanac_contract = lambda *args, **kwargs: None


class _NoRegistration(AgentRegistrationPolicy):  # type: ignore[misc]  # uagents is untyped
    """agora agents are found through a resolver (static directory or the agora registry), never the Almanac."""

    async def register(self, *args: Any, **kwargs: Any) -> None:
        """Do nothing: no ledger, no Agentverse."""


class RemoteError(RuntimeError):
    """The peer answered with an ErrorReply."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(f"{reply.code}: {reply.detail}")
        self.code = reply.code
        self.detail = reply.detail


@dataclass(frozen=True)
class AgentDeps:
    """An agent's collaborators, all optional: defaults are a seed-derived wallet, the system clock, an empty
    static resolver and a SQLite store in the agent's data dir."""

    wallet: Wallet | None = None
    clock: Clock | None = None
    resolver: Resolver | None = None
    store: AgentStore | None = None


class _AgoraContext(ExternalContext):  # type: ignore[misc]  # uagents is untyped
    """The handler context: uAgents' own, except that replies to remote peers go out signed once, on pooled
    connections, with a nonce (uAgents signs, then our dispenser would have to re-sign to add the nonce)."""

    def __init__(self, owner: AgoraAgent, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._agora_agent = owner

    async def send(self, destination: str, message: Model, timeout: int = 30) -> MsgStatus:  # noqa: ASYNC109  # uAgents signature
        """uAgents' reactive send, with the schema digest cached (uAgents rebuilds the JSON schema per message)."""
        status: MsgStatus = await self.send_raw(
            destination,
            schema_digest(type(message)),
            message.model_dump_json(),
            timeout=timeout,
            protocol_digest=self._protocol[0],
            queries=self._queries,
        )
        return status

    async def send_raw(self, destination: str, message_schema_digest: str, message_body: str, **kw: Any) -> MsgStatus:
        """Remote fire-and-forget sends take agora's path; everything else (local, sync, awaited) stays uAgents'."""
        _, _, address = parse_identifier(destination)
        queries = kw.get("queries") or {}
        if (
            not address
            or dispatcher.contains(address)
            or kw.get("sync")
            or kw.get("wait_for_response")
            or address in queries
        ):
            return await super().send_raw(destination, message_schema_digest, message_body, **kw)
        # validate_replies() reads this record to check that a handler answered with an allowed reply.
        self._outbound_messages.setdefault(address, []).append((message_body, message_schema_digest))
        waiter = self._agora_agent._sync_waiters.pop((address, self.session), None)
        if waiter is not None and not waiter.done():
            waiter.set_result((message_schema_digest, message_body))  # goes back in the open HTTP exchange
            return MsgStatus(
                status=DeliveryStatus.DELIVERED,
                detail="replied in the HTTP response",
                destination=address,
                endpoint="",
                session=self.session,
            )
        status: MsgStatus = await self._agora_agent._send_remote(
            address, message_schema_digest, message_body, self.session, sync=False
        )
        return status


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        loop = uvloop.new_event_loop()  # libuv loop: cheaper per message than asyncio's default
        asyncio.set_event_loop(loop)
        return loop


class AgoraAgent(Agent):  # type: ignore[misc]  # uagents is untyped
    """A uAgents Agent that never leaves loopback/its resolver, checks every envelope, and keeps state on disk.

    Register handlers the uAgents way (`@agent.on_message(Model, replies=...)` or `agent.include(protocol)`),
    add middleware with `agent.use(mod)`, then `async with agent:` (or `await agent.start()`/`stop()`).
    """

    def __init__(self, settings: AgentSettings, deps: AgentDeps | None = None) -> None:
        deps = deps or AgentDeps()
        self._settings = settings
        wallet, resolver, store = deps.wallet, deps.resolver, deps.store
        self._agora_wallet = wallet or (Wallet.from_seed(settings.seed) if settings.seed else Wallet.generate())
        self._clock: Clock = deps.clock or SystemClock()
        self._mods: list[Mod] = list(HANDLER_MODS)
        self._envelope_mods: list[Mod] = list(ENVELOPE_MODS)
        data_dir = settings.state_dir()
        super().__init__(
            name=settings.name,
            port=settings.port or 8000,
            agentverse="http://127.0.0.1:9",  # a closed local port: nothing may reach Agentverse
            resolve=resolver if resolver is not None else StaticResolver(),
            registration_policy=_NoRegistration(),
            network="testnet",
            loop=_event_loop(),
            enable_agent_inspector=False,
            publish_agent_details=False,
            handle_messages_concurrently=settings.concurrent_handlers,
            shutdown_timeout=5.0,
            mark_inactive_on_shutdown=False,
            report_events=False,
        )
        data_dir.mkdir(parents=True, exist_ok=True)
        # uAgents writes its key/value store into the working directory; keep it in the data dir.
        self._storage = KeyValueStore(self.address[0:16], cwd=str(data_dir))
        self._store = store or AgentStore(data_dir / "state.sqlite3")
        self._metrics = Metrics()
        self._wall_clock = SystemClock()  # envelope expiry is real time, whatever clock the business logic uses
        self._sender = EnvelopeSender(
            self._identity,
            self._wall_clock.now,
            policy=EndpointPolicy.for_agent(settings.limits, settings.advertised_host()),
            max_response_bytes=settings.limits.max_message_bytes + RESPONSE_OVERHEAD,
        )
        self._dispenser = PooledDispenser(self._sender, settings.envelope_ttl)
        replay = ReplayLedger(self._store)
        self._blobs = Blobs(
            data_dir / "blobs",
            self._agora_wallet.identity,
            self._store,
            self._resolver,
            EndpointPolicy.for_agent(settings.limits, settings.advertised_host()),
            replay,
            self._wall_clock.now,
            settings.blob_limits,
        )
        self._envelope_server = EnvelopeServer(
            settings.host,
            settings.port,
            self._receive_envelope,
            settings.limits.max_message_bytes,
            routes={"/blobs/": self._blobs.serve},
        )
        self._started = False
        self._sync_waiters: dict[tuple[str, uuid.UUID], asyncio.Future[tuple[str, str]]] = {}
        self._mod_context = ModContext(
            address=self.address,
            store=self._store,
            replay=replay,
            clock=self._clock,
            wall_clock=self._wall_clock,
            limits=settings.limits,
            metrics=self._metrics,
            logger=self._logger,
            models=self._models,
        )
        self._envelope_chain = compose(self._envelope_mods, self._accept_envelope)
        error_protocol = Protocol(spec=errors.SPEC)

        error_protocol.on_message(ErrorReply)(_log_error_reply)
        self.include(error_protocol)

    # --- uAgents hooks that would reach the network ---------------------------------------------
    def _initialize_wallet_and_identity(self, seed: Any, name: Any, wallet_key_derivation_index: int = 0) -> None:
        self._identity = self._agora_wallet.identity
        # uAgents also wants a Cosmos wallet for the Fetch.ai ledger; it is never used, so make a throwaway one.
        self._wallet = LocalWallet.generate()

    async def _update_agent_status(self, active: bool) -> None:
        """No Almanac status updates."""

    async def _resolve_events_enabled(self) -> None:
        """No Agentverse telemetry."""
        self._events_enabled = False

    def start_registration_loop(self) -> None:
        """No registration loop: discovery goes through the resolver."""

    # --- public properties ------------------------------------------------------------------------
    @property
    def settings(self) -> AgentSettings:
        """The agent's settings."""
        return self._settings

    @property
    def keys(self) -> Wallet:
        """The agent's wallet (settlement account + messaging identity)."""
        return self._agora_wallet

    @property
    def store(self) -> AgentStore:
        """The agent's durable store."""
        return self._store

    @property
    def blobs(self) -> Blobs:
        """The agent's own blobs: stored in its data folder, served to peers it grants them to, fetched by reference."""
        return self._blobs

    @property
    def clock(self) -> Clock:
        """The injected clock."""
        return self._clock

    @property
    def resolver(self) -> Resolver:
        """The resolver used to find peers' endpoints."""
        return self._resolver

    @property
    def logger(self) -> logging.Logger:
        """The agent's logger (named after the agent)."""
        logger: logging.Logger = self._logger
        return logger

    @property
    def metrics(self) -> Metrics:
        """Counters kept by the metering mod."""
        return self._metrics

    @property
    def endpoint(self) -> str:
        """The URL peers post envelopes to (the public URL when set, else the bound loopback address)."""
        if self._settings.public_url:
            return self._settings.public_url.rstrip("/") + "/submit"
        return f"http://{self._settings.host}:{self._envelope_server.port}/submit"

    # --- middleware -------------------------------------------------------------------------------
    def use(self, mod: Mod) -> None:
        """Add a handler mod; it runs inside the defaults (the message is already typed in `msg.message`)."""
        self._mods.append(mod)

    def use_envelope(self, mod: Mod) -> None:
        """Add an envelope mod; it runs after the default transport checks, before the handler queue."""
        self._envelope_mods.append(mod)
        self._envelope_chain = compose(self._envelope_mods, self._accept_envelope)

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start handlers and the HTTP server; returns once the agent accepts messages."""
        if self._started:
            raise RuntimeError("an agent object starts once; build a new one (same seed, same data dir) to restart")
        self._loop = asyncio.get_running_loop()
        self._store.forget_expired(self._wall_clock.now())
        self.setup()
        if self._settings.listen:
            await self._envelope_server.start()
        elif not self._settings.public_url:
            raise RuntimeError("an agent that does not listen needs the public_url its AgentHost serves it at")
        self._started = True

    async def stop(self) -> None:
        """Stop serving, finish handlers and sends, run shutdown handlers, leave the process-wide dispatcher."""
        if not self._started:
            self._leave_dispatcher()
            self._store.close()
            return
        self._started = False
        if self._settings.listen:
            await self._envelope_server.stop()
        await self._blobs.close()
        await self._shutdown([])
        self._leave_dispatcher()
        self._store.close()

    def _leave_dispatcher(self) -> None:
        if self in dispatcher.sinks.get(self.address, set()):
            dispatcher.unregister(self.address, self)

    async def __aenter__(self) -> AgoraAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def serve_forever(self) -> None:
        """Run until cancelled (Ctrl-C or task cancellation), then stop cleanly."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    def run(self) -> None:
        """Blocking entry point for scripts: serve until interrupted."""
        with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
            self._loop.run_until_complete(self.serve_forever())

    # --- sending ----------------------------------------------------------------------------------
    async def send(self, destination: str, message: Model, *, session: uuid.UUID | None = None) -> MsgStatus:
        """Send a message (in-process when the destination lives here, else signed over HTTP)."""
        session = session or uuid.uuid4()
        digest = schema_digest(type(message))
        body = message.model_dump_json()
        if dispatcher.contains(destination):
            return await dispatch_local_message(self.address, destination, digest, body, session)
        status = await self._send_remote(destination, digest, body, session, sync=False)
        if status.detail.startswith("unresolved"):
            raise DeliveryError("unresolved", f"no endpoint known for {destination}")
        return status

    async def _send_remote(
        self, destination: str, digest: str, body: str, session: uuid.UUID, *, sync: bool
    ) -> MsgStatus:
        address, endpoints = await self._resolver.resolve(destination)
        if not address or not endpoints:
            return MsgStatus(
                status=DeliveryStatus.FAILED,
                detail="unresolved: no endpoint known",
                destination=destination,
                endpoint="",
                session=session,
            )
        envelope = Envelope(version=1, sender=self.address, target=address, session=session, schema_digest=digest)
        envelope.encode_payload(body)
        status, response = await self._sender.post(
            self._sender.seal(envelope, self._settings.envelope_ttl), endpoints, sync=sync
        )
        if sync and len(response) > 2:
            # The reply came back in the HTTP response: it passes the same envelope checks as any other.
            try:
                await self._receive_envelope(response, False)
            except Rejected as err:
                self._logger.warning("reply in HTTP response refused: %s", err)
        return status

    async def request(self, destination: str, message: Model, expect: type[M], *, wait: float = 10.0) -> M:
        """Send `message` and await the peer's reply of type `expect`; raises RemoteError on an ErrorReply."""
        reply = await self.request_any(destination, message, (expect,), wait=wait)
        assert isinstance(reply, expect)
        return reply

    async def request_any(
        self, destination: str, message: Model, expect: Sequence[type[Model]], *, wait: float = 10.0
    ) -> Model:
        """Send `message` and await a reply of any type in `expect` (same session); ErrorReply raises RemoteError."""
        session = uuid.uuid4()
        types = {schema_digest(t): t for t in expect}
        types[_ERROR_DIGEST] = ErrorReply
        await dispatcher.register_pending_response(self.address, destination, session, set(types))
        if dispatcher.contains(destination):
            status = await self.send(destination, message, session=session)
        else:
            status = await self._send_remote(
                destination, schema_digest(type(message)), message.model_dump_json(), session, sync=True
            )
        if status.status != DeliveryStatus.DELIVERED:
            dispatcher.cancel_pending_response(self.address, destination, session)
            code, _, detail = status.detail.partition(": ")
            raise DeliveryError(code, detail or status.detail)
        info: MsgInfo | None = await dispatcher.wait_for_response(self.address, destination, session, wait)
        if info is None:
            raise TimeoutError(f"no reply from {destination[:16]}… within {wait} s")
        self._metrics.replies += 1
        reply = types[info.schema_digest].parse_raw(info.message)
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply)
        return reply

    # --- receiving --------------------------------------------------------------------------------
    async def receive_envelope(self, body: bytes, sync: bool) -> bytes | None:
        """Check and handle one envelope as it arrived over HTTP (what an AgentHost calls for the agents it serves);
        returns the reply to send back in the HTTP response, raises Rejected to refuse it."""
        return await self._receive_envelope(body, sync)

    async def _receive_envelope(self, body: bytes, sync: bool) -> bytes | None:
        if len(body) > self._settings.limits.max_message_bytes:
            self._metrics.rejected[ErrorCode.TOO_LARGE] += 1
            raise Rejected(ErrorCode.TOO_LARGE, f"{len(body)} bytes", status=413)
        try:
            envelope = Envelope.model_validate_json(body)
            payload = envelope.decode_payload()
        except ValueError as err:  # pydantic ValidationError, bad base64 or UTF-8
            self._metrics.rejected[ErrorCode.MALFORMED] += 1
            raise Rejected(ErrorCode.MALFORMED, "not a uAgents envelope") from err
        inbound = Inbound(
            sender=envelope.sender,
            target=envelope.target,
            schema_digest=envelope.schema_digest,
            payload=payload,
            session=envelope.session,
            size=len(body),
            envelope=envelope,
            sync=sync,
        )
        try:
            await self._envelope_chain(inbound, self._mod_context)
        except BaseException as err:
            self._release_waiter(inbound)  # a mod after the defaults may refuse once the slot was taken
            if isinstance(err, Rejected):
                self._metrics.rejected[err.code] += 1
            raise
        if inbound.reply is None:
            return None
        return await self._reply_in_response(inbound)

    def _claim_waiter(self, msg: Inbound) -> None:
        """Open the slot the handler's reply to `msg` fills, if the sender waits for it and a slot is free."""
        key = (msg.sender, msg.session)
        # Only after every envelope check (this runs in the terminal of the envelope chain), so a forged or
        # replayed envelope can neither take a slot nor displace the genuine one; one slot per key, the first
        # wins; and at most max_pending_replies, beyond which replies go out as their own envelopes.
        if key in self._sync_waiters or len(self._sync_waiters) >= self._settings.limits.max_pending_replies:
            return
        msg.reply = asyncio.get_running_loop().create_future()
        self._sync_waiters[key] = msg.reply

    def _release_waiter(self, msg: Inbound) -> None:
        key = (msg.sender, msg.session)
        if msg.reply is not None and self._sync_waiters.get(key) is msg.reply:
            del self._sync_waiters[key]

    async def _reply_in_response(self, msg: Inbound) -> bytes | None:
        """Wait briefly for the handler's reply and return it as a sealed envelope for the HTTP response."""
        assert msg.reply is not None
        try:
            digest, body = await asyncio.wait_for(msg.reply, self._settings.sync_reply_wait)
        except TimeoutError:
            return None  # the reply, if any, goes out as its own envelope later
        finally:
            self._release_waiter(msg)
        envelope = Envelope(
            version=1, sender=self.address, target=msg.sender, session=msg.session, schema_digest=digest
        )
        envelope.encode_payload(body)
        sealed: str = self._sender.seal(envelope, self._settings.envelope_ttl).model_dump_json()
        return sealed.encode()

    async def _accept_envelope(self, msg: Inbound, _ctx: ModContext) -> None:
        if dispatcher.dispatch_pending_response(msg.sender, msg.target, msg.session, msg.schema_digest, msg.payload):
            return  # a reply to one of our own requests: no handler runs, nothing to answer in the HTTP response
        if msg.sync:
            self._claim_waiter(msg)
        if self._handle_messages_concurrently:
            # Handlers run as their own tasks anyway: skip the hop through uAgents' ordered message queue.
            await self._process_single_message(msg.schema_digest, msg.sender, msg.payload, msg.session)
            return
        await dispatcher.dispatch_msg(msg.sender, msg.target, msg.schema_digest, msg.payload, msg.session)

    def _handler_context(self, msg: Inbound) -> ExternalContext:
        return _AgoraContext(
            self,
            agent=AgentRepresentation(
                address=self.address, name=self._name, identity=self._identity, prefix=self._prefix
            ),
            storage=self._storage,
            ledger=self._ledger,
            resolver=self._resolver,
            dispenser=self._dispenser,
            logger=self._logger,
            queries=self._queries,
            session=msg.session,
            replies=self._replies,
            message_received=MsgInfo(message=msg.payload, sender=msg.sender, schema_digest=msg.schema_digest),
            protocol=self.get_message_protocol(msg.schema_digest),
            message_history=None,
            events_dispatcher=None,
        )

    async def _process_single_message(self, schema_digest: str, sender: str, message: str, session: uuid.UUID) -> None:
        """Run the handler mods and the handler; refusals and crashes become ErrorReply messages."""
        inbound = Inbound(sender, self.address, schema_digest, message, session, size=len(message))
        context = self._handler_context(inbound)

        async def call_handler(msg: Inbound, _ctx: ModContext) -> None:
            handler = self._unsigned_message_handlers.get(msg.schema_digest) or self._signed_message_handlers.get(
                msg.schema_digest
            )
            if handler is None or msg.message is None:
                raise Rejected(ErrorCode.UNKNOWN_SCHEMA, "no handler for this message")
            await handler(context, msg.sender, msg.message)
            context.validate_replies(type(msg.message))

        chain = compose(self._mods, call_handler)
        if self._handle_messages_concurrently:
            task = asyncio.create_task(self._run_guarded(chain, inbound, context))
            self._message_tasks.add(task)
            task.add_done_callback(self._message_tasks.discard)
        else:
            await self._run_guarded(chain, inbound, context)

    async def _run_guarded(self, chain: Any, inbound: Inbound, context: ExternalContext) -> None:
        try:
            await chain(inbound, self._mod_context)
        except Rejected as err:
            if inbound.schema_digest != _ERROR_DIGEST:  # never answer an error with an error (no ping-pong)
                await context.send(inbound.sender, ErrorReply(code=err.code, detail=err.detail))
        except Exception:  # nothing a handler does may crash the agent
            self._logger.exception("handler failed")
            self._metrics.rejected[ErrorCode.INTERNAL] += 1
            await context.send(inbound.sender, ErrorReply(code=ErrorCode.INTERNAL, detail="handler failed"))


async def _log_error_reply(ctx: Context, sender: str, msg: ErrorReply) -> None:
    ctx.logger.warning("error from %s: %s %s", sender[:16], msg.code, msg.detail)


@contextlib.asynccontextmanager
async def running(*agents: AgoraAgent) -> AsyncIterator[tuple[AgoraAgent, ...]]:
    """Start several agents in this process (they talk in-process) and stop them all on exit."""
    started: list[AgoraAgent] = []
    try:
        for agent in agents:
            await agent.start()
            started.append(agent)
        yield agents
    finally:
        for agent in reversed(agents):
            await agent.stop()


def peer_directory(*agents: AgoraAgent) -> dict[str, list[str]]:
    """The {address: [endpoint]} map of started agents, for a StaticResolver in another process."""
    return {agent.address: [agent.endpoint] for agent in agents}


logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
