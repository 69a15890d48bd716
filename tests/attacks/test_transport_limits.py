"""Attacks on the transport and the registry's limits: a replay table that only grows, replies too large to read,
cards that point an agent at internal services, forged envelopes taking reply slots, event-stream floods and
signed registry writes replayed to another registry.

Agents and registries run for real on loopback; outbound connections to any other address are intercepted
before a socket is opened.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from uagents import Context, Model
from uagents.dispatch import dispatcher
from uagents_core.identity import Identity

import agents.http
from agents.base import AgentDeps, AgoraAgent
from agents.crypto import sign_envelope
from agents.mods import Limits
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from agents.testing.doubles import forge_envelope
from agents.transport import DeliveryError
from marketplace.registry import RegistryClient, RegistrySettings, RegistryStore, create_app
from protocols.jobs import InferenceRequest, InferenceResult
from tests.registry.conftest import Registry, clock, identity, make_card, registry

__all__ = ["clock", "registry"]  # the registry suite's fixtures, used here too

REQUEST = InferenceRequest(job_id="t1", model_id="m", inputs=[[1.0]], price=1)
SYNC = {"content-type": "application/json", "x-uagents-connection": "sync"}


class Ping(Model):
    """A message the victim agents accept and do nothing with."""

    n: int


@pytest.fixture
async def make_agent(tmp_path: Path) -> AsyncIterator[Callable[..., AgoraAgent]]:
    """AgoraAgents with private data dirs, stopped and out of uAgents' dispatcher after the test."""
    built: list[AgoraAgent] = []

    def build(name: str, deps: AgentDeps | None = None, **settings: Any) -> AgoraAgent:
        agent = AgoraAgent(AgentSettings(name=name, seed=f"seed-{name}", data_dir=tmp_path / name, **settings), deps)
        built.append(agent)
        return agent

    yield build
    for agent in reversed(built):
        await agent.stop()
        dispatcher.sinks.pop(agent.address, None)


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection the plain-http transport opens to a non-loopback host, refused before any socket."""
    opened: list[tuple[str, int]] = []
    real = asyncio.open_connection

    async def intercept(host: str, port: int, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost"):
            opened.append((host, port))
            raise ConnectionRefusedError(f"test: no connection to {host}:{port}")
        return await real(host, port, **kw)

    monkeypatch.setattr(agents.http.asyncio, "open_connection", intercept)
    return opened


def _seen_rows(agent: AgoraAgent) -> list[tuple[str, float]]:
    with sqlite3.connect(agent.store.path) as db:
        return [(str(r[0]), float(r[1])) for r in db.execute("SELECT message_id, expires FROM seen_messages")]


async def _ignore(_ctx: Context, _sender: str, _msg: Ping) -> None:
    """Accept and drop."""


# --- 1. the replay ledger ---------------------------------------------------------------------------
async def test_replayLedger_prunedWhileRunning(make_agent: Callable[..., AgoraAgent]) -> None:
    """A long-running agent receives a stream of envelopes; ids of envelopes that expired must not pile up.

    Before: expired ids were dropped only at start, so the table grew with every message until a restart.
    Now: expired ids go every 1024 new ids (or 60 s), in the same transaction as the new ones.
    """
    victim = make_agent("victim", limits=Limits(clock_skew=0.0))
    victim.on_message(Ping)(_ignore)
    alice = Identity.from_seed("ledger alice", 0)
    async with victim:
        expiry = int(time.time()) + 2
        short = forge_envelope(alice, victim.address, Ping(n=0), expires=expiry, nonce=1)
        await victim._receive_envelope(short.model_dump_json().encode(), False)
        assert len(_seen_rows(victim)) == 1
        await asyncio.sleep(expiry - time.time() + 0.5)
        fresh = [forge_envelope(alice, victim.address, Ping(n=i), nonce=i + 2) for i in range(1200)]
        for start in range(0, len(fresh), 100):  # batches of 100 ids, each batch one ledger transaction
            batch = fresh[start : start + 100]
            await asyncio.gather(*(victim._receive_envelope(e.model_dump_json().encode(), False) for e in batch))
        rows = _seen_rows(victim)
    assert all(expires > expiry for _, expires in rows), "an expired id is still in the replay table"
    assert len(rows) == 1200  # only the expired id went; every live one still closes its replay


# --- 2. replies too large to read -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("declared", "sent"),
    [(10**9, 64 * 1024), (1024 * 1024, 1024 * 1024)],
    ids=["declaresAGigabyteAndStalls", "sendsAMebibyte"],
)
async def test_syncReply_oversizeResponse_isDeliveryFailure(
    make_agent: Callable[..., AgoraAgent], declared: int, sent: int
) -> None:
    """A peer answers a request with a response body far over the agent's message limit.

    Before: the body was read whole (a gigabyte declared meant waiting for it, holding what came); the
    request hung until its timeout. Now the declared length alone fails the delivery, nothing of it read.
    """

    finished = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\n\r\n".encode() + b"x" * sent)
            await writer.drain()
            await finished.wait()  # and never the rest
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the agent hung up: what a well-behaved client of this peer should do
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    peer = Identity.from_seed("oversize peer", 0)
    agent = make_agent("requester", AgentDeps(resolver=StaticResolver({peer.address: [f"http://127.0.0.1:{port}/"]})))
    try:
        async with agent, asyncio.timeout(5):
            with pytest.raises(DeliveryError) as failed:
                await agent.request(peer.address, REQUEST, InferenceResult, wait=3)
    finally:
        finished.set()
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)
    assert failed.value.code == "response_too_large"


# --- 3. cards pointing at internal services ---------------------------------------------------------
INTERNAL_ENDPOINTS = [
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://10.0.0.1:8080/submit",  # a private network service
    "http://192.168.1.1/submit",
    "http://[::ffff:169.254.169.254]/submit",  # the same, spelled as IPv6
]


async def test_endpointPolicy_cardPointsLoopbackAgentAtInternalServices_neverConnected(
    make_agent: Callable[..., AgoraAgent], connections: list[tuple[str, int]]
) -> None:
    """A peer's card lists internal addresses as its endpoints; the agent would POST to them on its behalf.

    Before: every http(s) URL was tried. Now an agent on loopback reaches loopback peers and public ones,
    and refuses private, link-local and non-http endpoints before opening a connection.
    """
    mallory = Identity.from_seed("ssrf mallory", 0)
    endpoints = [*INTERNAL_ENDPOINTS, "file:///etc/passwd"]
    agent = make_agent("victim", AgentDeps(resolver=StaticResolver({mallory.address: endpoints})))
    async with agent:
        status = await agent.send(mallory.address, Ping(n=1))
    assert connections == []
    assert status.detail.count("endpoint_refused") == len(endpoints), status.detail


async def test_endpointPolicy_publicAgentRefusesLoopback(make_agent: Callable[..., AgoraAgent], tmp_path: Path) -> None:
    """An agent published at a public URL is pointed at a service on its own host's loopback.

    Before: it posted there. Now an agent that advertises a public address reaches public addresses only
    (unless its Limits allow more), so a loopback-only admin service stays out of reach.
    """
    hits: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/admin", internal)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    mallory = Identity.from_seed("ssrf mallory", 0)
    resolver = StaticResolver({mallory.address: [f"http://127.0.0.1:{port}/admin"]})
    agent = make_agent("public", AgentDeps(resolver=resolver), public_url="https://agent.example.org")
    try:
        async with agent:
            status = await agent.send(mallory.address, Ping(n=1))
    finally:
        await runner.cleanup()
    assert hits == []
    assert "endpoint_refused" in status.detail


def test_endpointPolicy_rules() -> None:
    """The address rules behind for_agent: what each kind of agent may reach."""
    from agents.transport import EndpointPolicy, EndpointRefused

    loopback = EndpointPolicy.for_agent(Limits(), "127.0.0.1")
    loopback.check("peer", ["127.0.0.1", "::1", "93.184.216.34"])
    for internal in ("169.254.169.254", "10.0.0.1", "fd00::1", "2002:a9fe:a9fe::1", "64:ff9b::a9fe:a9fe", "0.0.0.0"):  # noqa: S104
        with pytest.raises(EndpointRefused):
            loopback.check("peer", [internal])
    with pytest.raises(EndpointRefused):  # a name is only as good as every address it resolves to
        loopback.check("rebind.example", ["93.184.216.34", "169.254.169.254"])
    lan = EndpointPolicy.for_agent(Limits(), "192.168.1.5")
    lan.check("peer", ["192.168.1.7", "10.1.2.3"])
    with pytest.raises(EndpointRefused):
        lan.check("peer", ["127.0.0.1"])
    public = EndpointPolicy.for_agent(Limits(), "agent.example.org")
    with pytest.raises(EndpointRefused):
        public.check("peer", ["127.0.0.1"])
    EndpointPolicy.for_agent(Limits(allow_private_endpoints=True), "agent.example.org").check("p", ["10.0.0.1"])
    with pytest.raises(EndpointRefused):
        EndpointPolicy.for_agent(Limits(allow_private_endpoints=False), "127.0.0.1").check("p", ["127.0.0.1"])
    only = EndpointPolicy.for_agent(Limits(allowed_endpoint_hosts=frozenset({"10.0.0.0/24", "Peer.LAN"})), "::1")
    only.check("x", ["10.0.0.9"])
    only.check("peer.lan", ["172.16.0.1"])
    with pytest.raises(EndpointRefused):
        only.check("x", ["93.184.216.34"])
    with pytest.raises(EndpointRefused):
        only.check_url("ftp://10.0.0.9/")


# --- 4. reply slots ---------------------------------------------------------------------------------
def _slow_seller(agent: AgoraAgent, delay: float) -> None:
    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        await asyncio.sleep(delay)
        result = InferenceResult(job_id=msg.job_id, model_id="m", outputs=[[2.0]], output_commitment="0x")
        await ctx.send(sender, result)

    agent.on_message(InferenceRequest, replies=InferenceResult)(handle)


async def _post_sync(endpoint: str, body: bytes) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.post(endpoint, data=body, headers=SYNC) as resp:
        return resp.status, await resp.read()


async def test_syncWaiter_forgedEnvelopeCannotTakeTheReplySlot(make_agent: Callable[..., AgoraAgent]) -> None:
    """While Alice waits for a reply in her HTTP response, Mallory posts an envelope that claims to be from
    Alice in the same session (signed with Mallory's key).

    Before: the reply slot was opened before the envelope's checks, so the forgery replaced Alice's slot and
    dropped it on refusal; Alice's response came back empty. Now only an envelope that passed every check
    opens a slot, and an open slot is never replaced.
    """
    seller = make_agent("seller", sync_reply_wait=1.5)
    _slow_seller(seller, 0.3)
    alice, mallory = Identity.from_seed("slot alice", 0), Identity.from_seed("slot mallory", 0)
    async with seller:
        genuine = forge_envelope(alice, seller.address, REQUEST, nonce=1)
        forged = forge_envelope(mallory, seller.address, REQUEST, sender=alice.address, nonce=2)
        forged.session = genuine.session
        sign_envelope(forged, mallory)
        waiting = asyncio.create_task(_post_sync(seller.endpoint, genuine.model_dump_json().encode()))
        await asyncio.sleep(0.1)
        forged_status, _ = await _post_sync(seller.endpoint, forged.model_dump_json().encode())
        status, body = await waiting
    assert forged_status == 401
    assert status == 200
    assert b'"payload"' in body, "Alice's reply did not come back in her HTTP response"


async def test_syncWaiters_floodOfWaitingRequests_capped(make_agent: Callable[..., AgoraAgent]) -> None:
    """A peer sends a flood of valid requests whose replies it waits for in the HTTP response, none answered.

    Before: every one held a reply slot. Now at most Limits.max_pending_replies wait; the rest are accepted
    and their replies, if any, go out as envelopes of their own.
    """
    release = asyncio.Event()
    seller = make_agent("seller", sync_reply_wait=5.0)

    async def stall(_ctx: Context, _sender: str, _msg: InferenceRequest) -> None:
        await release.wait()

    seller.on_message(InferenceRequest, replies=InferenceResult)(stall)
    flooder = Identity.from_seed("slot flooder", 0)
    bodies = [forge_envelope(flooder, seller.address, REQUEST, nonce=i).model_dump_json().encode() for i in range(1100)]
    async with seller:
        tasks = [asyncio.create_task(seller._receive_envelope(body, True)) for body in bodies]
        for _ in range(600):  # until every envelope is past its checks (30 s at most)
            if len(_seen_rows(seller)) == len(bodies):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        pending = len(seller._sync_waiters)
        answered = [task.result() for task in tasks if task.done() and not task.cancelled()]
        release.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert pending <= 1024
    assert len(answered) >= len(bodies) - 1024  # the others were accepted at once, their replies not awaited
    assert set(answered) == {None}


# --- 5. event-stream floods -------------------------------------------------------------------------
async def test_eventStream_subscriberFlood_answered503(registry: Registry) -> None:
    """A client opens event streams until the registry runs out of memory or file descriptors.

    Before: every stream was accepted. Now the 65th concurrent one gets 503 and a one-line JSON error.
    """
    streams = [await registry.client.get("/v1/events/stream") for _ in range(64)]
    try:
        assert {s.status for s in streams} == {200}
        streams.append(await registry.client.get("/v1/events/stream"))
        refused = streams[-1]
        assert refused.status == 503  # checked before reading: an accepted stream never ends
        body = await refused.read()
        assert body.count(b"\n") == 0
        assert (await refused.json())["code"] == "too_many_subscribers"
        assert refused.headers["Retry-After"]
    finally:
        for stream in streams:
            stream.close()


# --- 6. registry writes replayed to another registry ------------------------------------------------
async def test_signedWrite_replayedToAnotherRegistry_refused(registry: Registry, tmp_path: Path) -> None:
    """Registry A (or anyone on the path to it) replays the card an agent published there to registry B.

    Before: the signed digest named no registry, so B accepted the write and listed the agent with A's copy
    of its card (and, with an old update, could roll it back). Now the digest names the registry's id.
    """
    alice = identity("alice")
    sent: list[bytes] = []

    async def record(_session: Any, _ctx: Any, params: aiohttp.TraceRequestChunkSentParams) -> None:
        sent.append(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(record)
    url_a = str(registry.client.make_url("/")).rstrip("/")
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        client = RegistryClient(url_a, alice, session=session, clock=registry.clock)
        await client.publish(make_card(alice))
    register_body = next(chunk for chunk in sent if b'"register"' in chunk)

    store_b = await RegistryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    registry_b: TestClient[Any, Any] = TestClient(TestServer(create_app(RegistrySettings(), store=store_b)))
    await registry_b.start_server()
    try:
        replayed = await registry_b.post("/v1/agents", data=register_body)
        answer = await replayed.json()
        listed = await registry_b.get(f"/v1/agents/{alice.address}")
    finally:
        await registry_b.close()
        await store_b.close()
    assert (replayed.status, answer.get("code")) == (403, "wrong_registry")
    assert listed.status == 404


async def test_registryClient_learnsTheRegistryId_andFollowsANewOne(registry: Registry) -> None:
    """The client signs for the id the registry reports, and learns it again when the registry changes it."""
    alice = identity("alice")
    async with RegistryClient(str(registry.client.make_url("/")), alice, clock=registry.clock) as client:
        await client.publish(make_card(alice))
        assert await client.registry_id() == registry.service.registry_id
        registry.service.registry_id = "https://registry.example.org"
        await client.heartbeat()
        assert await client.registry_id() == "https://registry.example.org"
    pinned = RegistryClient(str(registry.client.make_url("/")), alice, clock=registry.clock, registry_id="other")
    async with pinned:
        with pytest.raises(Exception, match="wrong_registry"):
            await pinned.heartbeat()
