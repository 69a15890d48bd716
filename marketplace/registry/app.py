"""The registry service: aiohttp app factory, signed-write checks, search, resolver endpoint, feed and dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from web3 import AsyncHTTPProvider, AsyncWeb3

from marketplace.chain.manifest import Deployment
from marketplace.registry.events import ChainWatcher, EventFeed, contract_sources
from marketplace.registry.live import EconomyView
from marketplace.registry.models import EventList, Health, Reputation, SearchQuery
from marketplace.registry.openapi import openapi_document
from marketplace.registry.reputation import ChainReputation, ReputationSource, StaticReputation
from marketplace.registry.storage import RegistryStore, StoredAgent, WriteRefused
from protocols.cards import REGISTRY_ID_PATTERN, AgentCard, SignedWrite, WriteAction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistrySettings:
    """How a registry runs; every field has a sensible local default."""

    database_url: str | None = None
    """SQLAlchemy async URL; None is the SQLite file in agora's state dir."""
    ttl: float = 120.0
    """Seconds an entry stays listed after its last register/update/heartbeat."""
    max_clock_skew: float = 60.0
    """How far a write's timestamp may be from the registry's clock (either way)."""
    max_body_bytes: int = 64 * 1024
    purge_interval: float = 30.0
    reputation_interval: float = 30.0
    rpc_url: str | None = None
    deployment: Deployment | None = None
    """With rpc_url: read economy events (and reputation, when AgentRegistry is deployed) from this chain."""
    event_poll_interval: float = 0.5
    registry_id: str | None = None
    """The id signed writes must name (e.g. this registry's public URL); None: a random one kept in the database."""
    max_event_subscribers: int = 64
    """Live /v1/events/stream connections at once; more are answered 503."""


class ApiError(Exception):
    """An error answer: HTTP status plus the JSON {code, message} body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    """A JSON error answer."""
    return web.json_response({"code": code, "message": message}, status=status)


_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Turn every failure into a JSON {code, message} answer; unexpected ones are logged and become 500."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, _HTTP_CODES.get(exc.status, f"http_{exc.status}"), exc.reason)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (logged by the registry)")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def entry_json(entry: StoredAgent) -> str:
    """JSON of an AgentEntry."""
    return entry.to_json()


def _json_text(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="application/json")


class RegistryService:
    """The registry's behaviour behind the HTTP handlers; tests and the CLI drive it directly too."""

    def __init__(
        self,
        settings: RegistrySettings,
        store: RegistryStore,
        reputation: ReputationSource,
        feed: EventFeed,
        clock: Callable[[], float] = time.time,
        economy: EconomyView | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.reputation = reputation
        self.feed = feed
        self.clock = clock
        self.economy = economy or EconomyView()
        self.watcher: ChainWatcher | None = None
        self.registry_id = settings.registry_id or ""
        """Set when the app starts: the configured id, else the database's."""
        self._pending: set[asyncio.Task[None]] = set()

    async def write(self, raw: bytes, action: WriteAction, path_address: str | None) -> tuple[SignedWrite, float]:
        """Check and apply a signed write; returns it with the entry's new expiry. Raises ApiError."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_body", "body must be a JSON object (a SignedWrite)")
        if not body.get("signature"):
            raise ApiError(401, "unsigned", "write is not signed (see protocols.cards.sign_write)")
        try:
            write = SignedWrite.model_validate(body)
        except ValidationError as exc:
            raise ApiError(422, "invalid_body", _validation_message(exc)) from None
        if write.action != action:
            raise ApiError(400, "wrong_action", f"this endpoint takes action {action!r}, not {write.action!r}")
        if write.registry != self.registry_id:
            # Signed for another registry (the id is in the signed digest): a replay from there, or a stale id.
            raise ApiError(
                403, "wrong_registry", f"write is for registry {write.registry!r}, this is {self.registry_id!r}"
            )
        if (path_address is not None and write.address != path_address) or not write.card_matches():
            # Not the signer's own entry: refused as forbidden whatever the signature says.
            raise ApiError(403, "address_mismatch", "the write's address differs from the URL's or the card's")
        now = self.clock()
        if abs(write.timestamp - now) > self.settings.max_clock_skew:
            raise ApiError(401, "stale", f"timestamp is more than {self.settings.max_clock_skew:.0f} s from now")
        if not write.signature_valid():
            raise ApiError(401, "bad_signature", "signature does not verify against the agent address")
        try:
            await self.store.apply(write, now, self.settings.ttl)
        except WriteRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        self.feed.notify("agents", json.dumps({"action": write.action, "address": write.address}))
        if write.card is not None:
            self._spawn(self.refresh_reputation([write.card.owner]))
            self._spawn(self.label_owner(write.card))
        return write, now + self.settings.ttl

    async def label_owner(self, card: AgentCard) -> None:
        """Count the card owner's tokens under the card's role in the economy view, only if the owner vouches for
        this agent on chain: the owner field alone is a claim anyone can write (about anyone's account)."""
        try:
            vouched = await self.reputation.vouched_agent(card.owner)
        except Exception as exc:  # the chain may be unreachable; the account stays unlabelled
            log.warning("vouching of %s unavailable: %s", card.owner, exc)
            return
        if vouched == card.address:
            self.economy.label_vouched(card.owner, card.name or card.address, card.role)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def refresh_reputation(self, owners: list[str] | None = None) -> int:
        """Re-read reputation for owners (default: every stored owner); returns how many were read."""
        owners = owners if owners is not None else await self.store.owners()
        done = 0
        for owner in owners:
            try:
                reputation = await self.reputation.reputation(owner)
                vouched = await self.reputation.vouched_agent(owner)
            except Exception as exc:  # the chain may be unreachable; keep the last known figures
                log.warning("reputation of %s unavailable: %s", owner, exc)
                continue
            await self.store.set_reputation(owner, reputation, vouched)
            done += 1
        return done

    async def sweep(self) -> tuple[int, int]:
        """Drop expired entries and nonces too old to be replayed (older writes are refused as stale anyway)."""
        now = self.clock()
        return await self.store.purge(now, now - 2 * self.settings.max_clock_skew - 1)

    async def _every(self, interval: float, job: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry background job failed")

    async def start_background(self) -> list[asyncio.Task[None]]:
        """Sweeper, reputation refresher and (with a chain) the event watcher."""
        loop = asyncio.get_running_loop()
        tasks = [
            loop.create_task(self._every(self.settings.purge_interval, self.sweep)),
            loop.create_task(self._every(self.settings.reputation_interval, self.refresh_reputation)),
        ]
        if self.watcher is not None:
            self.watcher.start()
        return tasks

    async def stop_pending(self) -> None:
        """Wait for fire-and-forget reputation reads to finish."""
        for task in list(self._pending):
            task.cancel()
        for task in list(self._pending):
            with contextlib.suppress(asyncio.CancelledError):
                await task


SERVICE = web.AppKey("service", RegistryService)
ECONOMY = web.AppKey("economy", EconomyView)
"""The app's economy view; the in-process `agora demo --serve` runner publishes its run figures into it."""

# --- handlers ----------------------------------------------------------------------------------


async def register(request: web.Request) -> web.Response:
    """POST /v1/agents."""
    service = request.app[SERVICE]
    write, _ = await service.write(await request.read(), "register", None)
    entry = await service.store.get(write.address, service.clock())
    assert entry is not None
    return _json_text(entry_json(entry), status=201)


async def update(request: web.Request) -> web.Response:
    """PUT /v1/agents/{address}."""
    service = request.app[SERVICE]
    write, _ = await service.write(await request.read(), "update", request.match_info["address"])
    entry = await service.store.get(write.address, service.clock())
    assert entry is not None
    return _json_text(entry_json(entry))


async def heartbeat(request: web.Request) -> web.Response:
    """POST /v1/agents/{address}/heartbeat."""
    service = request.app[SERVICE]
    write, expires_at = await service.write(await request.read(), "heartbeat", request.match_info["address"])
    return web.json_response({"address": write.address, "action": "heartbeat", "expires_at": expires_at})


async def deregister(request: web.Request) -> web.Response:
    """POST /v1/agents/{address}/deregister."""
    service = request.app[SERVICE]
    write, _ = await service.write(await request.read(), "deregister", request.match_info["address"])
    return web.json_response({"address": write.address, "action": "deregister", "expires_at": None})


async def get_agent(request: web.Request) -> web.Response:
    """GET /v1/agents/{address}."""
    service = request.app[SERVICE]
    entry = await service.store.get(request.match_info["address"], service.clock())
    if entry is None:
        raise ApiError(404, "not_found", "no live entry for this address")
    return _json_text(entry_json(entry))


def _query_params(request: web.Request) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key in params:
            raise ApiError(400, "duplicate_parameter", f"query parameter {key!r} given more than once")
        params[key] = value
    return params


async def search(request: web.Request) -> web.Response:
    """GET /v1/search."""
    service = request.app[SERVICE]
    try:
        query = SearchQuery.model_validate(_query_params(request))
    except ValidationError as exc:
        raise ApiError(422, "invalid_query", _validation_message(exc)) from None
    entries, more = await service.store.search(query, service.clock())
    next_offset = query.offset + query.limit if more else None
    head = json.dumps({"offset": query.offset, "limit": query.limit, "next_offset": next_offset})
    return _json_text('{"results":[' + ",".join(entry_json(e) for e in entries) + "]," + head[1:])


async def resolve(request: web.Request) -> web.Response:
    """GET /v1/resolve/{address}."""
    service = request.app[SERVICE]
    address = request.match_info["address"]
    endpoints = await service.store.endpoints(address, service.clock())
    if endpoints is None:
        raise ApiError(404, "not_found", "no live entry for this address")
    return web.json_response({"address": address, "endpoints": endpoints})


async def recent_events(request: web.Request) -> web.Response:
    """GET /v1/events."""
    service = request.app[SERVICE]
    params = _query_params(request)
    unknown = set(params) - {"limit"}
    if unknown:
        raise ApiError(422, "invalid_query", f"unknown query parameter(s): {', '.join(sorted(unknown))}")
    try:
        limit = int(params.get("limit", "50"))
    except ValueError:
        raise ApiError(422, "invalid_query", "limit must be an integer") from None
    if not 1 <= limit <= 200:
        raise ApiError(422, "invalid_query", "limit must be between 1 and 200")
    return _json_text(EventList(events=service.feed.recent(limit)).model_dump_json())


async def event_stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/events/stream: server-sent events until the client leaves or the registry stops."""
    service = request.app[SERVICE]
    if service.feed.subscriber_count >= service.settings.max_event_subscribers:
        answer = error_response(503, "too_many_subscribers", "too many live event streams; try again later")
        answer.headers["Retry-After"] = "15"
        return answer
    queue = service.feed.subscribe()  # taken before the first await, so concurrent streams cannot overshoot
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        await response.write(b": connected\n\n")
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")  # keeps proxies from closing an idle stream
                continue
            if item is None:
                break
            kind, payload = item
            await response.write(f"event: {kind}\ndata: {payload}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        service.feed.unsubscribe(queue)
    return response


async def economy(request: web.Request) -> web.Response:
    """GET /v1/economy: balances by role over time, channels, escrow jobs, disputes, lineage, the run's panels."""
    if request.query:
        raise ApiError(422, "invalid_query", "this endpoint takes no query parameters")
    return web.json_response(request.app[ECONOMY].snapshot(), headers={"Cache-Control": "no-store"})


async def health(request: web.Request) -> web.Response:
    """GET /v1/health."""
    service = request.app[SERVICE]
    body = Health(
        status="ok",
        agents=await service.store.count(service.clock()),
        schema_version=await service.store.schema_version(),
        chain_events=service.watcher is not None,
        registry_id=service.registry_id,
    )
    return _json_text(body.model_dump_json())


async def openapi(request: web.Request) -> web.Response:
    """GET /openapi.json."""
    return web.json_response(openapi_document())


def _static(name: str) -> str:
    return resources.files("marketplace.registry").joinpath("static", name).read_text()


_CONTENT_TYPES = {
    "dashboard.css": "text/css",
    "dashboard.js": "application/javascript",
    "economy.js": "application/javascript",
}


async def dashboard(request: web.Request) -> web.Response:
    """GET /: the dashboard page."""
    return web.Response(text=_static("dashboard.html"), content_type="text/html")


async def static_file(request: web.Request) -> web.Response:
    """GET /static/{name}: the dashboard's script and style."""
    name = request.match_info["name"]
    if name not in _CONTENT_TYPES:
        raise ApiError(404, "not_found", "no such file")
    return web.Response(text=_static(name), content_type=_CONTENT_TYPES[name])


# --- app factory -------------------------------------------------------------------------------


def create_app(
    settings: RegistrySettings | None = None,
    *,
    store: RegistryStore | None = None,
    reputation: ReputationSource | None = None,
    feed: EventFeed | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the registry app; a store passed in is the caller's to close, otherwise one is opened from settings."""
    settings = settings or RegistrySettings()
    if settings.registry_id is not None and not re.fullmatch(REGISTRY_ID_PATTERN, settings.registry_id):
        raise ValueError(f"registry_id {settings.registry_id!r} must match {REGISTRY_ID_PATTERN}")
    app = web.Application(middlewares=[json_errors], client_max_size=settings.max_body_bytes)
    feed = feed or EventFeed()
    view = EconomyView()
    feed.observe(view.fold)
    if settings.deployment is not None:
        view.label_contracts({name: c.address for name, c in settings.deployment.contracts.items()})
    app[ECONOMY] = view

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own_store = store is None
        opened = store or await RegistryStore.open(settings.database_url)
        source: ReputationSource = reputation or StaticReputation()
        w3: AsyncWeb3[AsyncHTTPProvider] | None = None
        if settings.rpc_url and settings.deployment is not None:
            w3 = AsyncWeb3(AsyncHTTPProvider(settings.rpc_url, request_kwargs={"timeout": 10}))
            if reputation is None and "AgentRegistry" in settings.deployment.contracts:
                source = ChainReputation.for_deployment(w3, settings.deployment)
        service = RegistryService(settings, opened, source, feed, clock, view)
        service.registry_id = settings.registry_id or await opened.registry_id()
        if w3 is not None and settings.deployment is not None:
            service.watcher = ChainWatcher(
                w3,
                contract_sources(w3, settings.deployment),
                feed,
                # From the first deployment block, so the feed starts with the economy's genesis (mint, wiring).
                start_block=min((c.block for c in settings.deployment.contracts.values()), default=0),
                interval=settings.event_poll_interval,
                clock=clock,
            )
        app[SERVICE] = service
        tasks = await service.start_background()
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.stop_pending()
        if service.watcher is not None:
            await service.watcher.stop()
        if own_store:
            await opened.close()

    async def on_shutdown(app: web.Application) -> None:
        feed.close()  # lets open SSE streams end so shutdown does not wait on them

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    app.router.add_post("/v1/agents", register)
    app.router.add_get("/v1/agents/{address}", get_agent)
    app.router.add_put("/v1/agents/{address}", update)
    app.router.add_post("/v1/agents/{address}/heartbeat", heartbeat)
    app.router.add_post("/v1/agents/{address}/deregister", deregister)
    app.router.add_get("/v1/search", search)
    app.router.add_get("/v1/resolve/{address}", resolve)
    app.router.add_get("/v1/events", recent_events)
    app.router.add_get("/v1/events/stream", event_stream)
    app.router.add_get("/v1/economy", economy)
    app.router.add_get("/v1/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/", dashboard)
    app.router.add_get("/static/{name}", static_file)
    return app


__all__ = ["ECONOMY", "SERVICE", "RegistryService", "RegistrySettings", "Reputation", "create_app"]
