"""The HTTP transport: replies ride in the HTTP response when quick, fall back to their own envelope when slow,
and a reply in a response passes the same envelope checks as any other message."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from uagents import Context
from uagents_core.identity import Identity

from agents.base import AgentDeps, AgoraAgent, RemoteError
from agents.crypto import sign_envelope
from agents.process import spawn_agent
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from agents.testing.doubles import forge_envelope
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import Reject

Factory = Callable[..., AgoraAgent]
REQUEST = InferenceRequest(job_id="t1", model_id="m", inputs=[[1.0]], price=1)


@pytest.fixture
async def requester(make_agent: Factory) -> AsyncIterator[tuple[AgoraAgent, StaticResolver]]:
    resolver = StaticResolver()
    agent = make_agent("requester", AgentDeps(resolver=resolver))
    async with agent:
        yield agent, resolver


async def test_request_slowHandler_replyArrivesAsOwnEnvelope(
    requester: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, resolver = requester
    settings = AgentSettings(name="slow", seed="slow seed", data_dir=tmp_path / "slow", sync_reply_wait=0.05)
    child = await spawn_agent("tests.agents.test_transport:slow_responder", settings, {agent.address: [agent.endpoint]})
    resolver.add(child.address, child.endpoint)
    try:
        reply = await agent.request(child.address, REQUEST, InferenceResult, wait=5.0)
    finally:
        await child.stop()
    assert reply.job_id == "t1"


def slow_responder(settings: AgentSettings, deps: AgentDeps, options: dict[str, object]) -> AgoraAgent:
    """Replies after 0.3 s: longer than sync_reply_wait, so the reply goes out as its own envelope."""
    agent = AgoraAgent(settings, deps)

    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        await asyncio.sleep(0.3)
        await ctx.send(
            sender, InferenceResult(job_id=msg.job_id, model_id="m", outputs=[[0.0]], output_commitment="0x")
        )

    agent.on_message(InferenceRequest, replies=InferenceResult)(handle)
    return agent


async def test_request_forgedReplyInHttpResponse_refused(requester: tuple[AgoraAgent, StaticResolver]) -> None:
    agent, resolver = requester
    victim = Identity.generate()  # the peer the requester thinks it talks to
    mallory = Identity.generate()
    forged = forge_envelope(
        mallory,
        agent.address,
        InferenceResult(job_id="t1", model_id="m", outputs=[[6.66]], output_commitment="0x"),
        sender=victim.address,
    )

    async def lie(request: web.Request) -> web.Response:
        body = await request.json()
        forged.session = uuid.UUID(body["session"])  # the right session, signed by the wrong key
        sign_envelope(forged, mallory)
        return web.Response(body=forged.model_dump_json().encode(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/submit", lie)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    resolver.add(victim.address, f"http://127.0.0.1:{port}/submit")
    try:
        with pytest.raises(TimeoutError):
            await agent.request(victim.address, REQUEST, InferenceResult, wait=0.3)
    finally:
        await runner.cleanup()
    assert agent.metrics.rejected["bad_signature"] == 1


async def test_childProcess_outboundConnectionRefused(tmp_path: Path) -> None:
    settings = AgentSettings(name="prober", seed="prober seed", data_dir=tmp_path / "prober")
    child = await spawn_agent("tests.agents.test_transport:outbound_prober", settings)
    await asyncio.sleep(0.2)
    await child.stop()
    assert any("AGORA_LOOPBACK_ONLY" in line and "refused" in line for line in child.output), list(child.output)


def outbound_prober(settings: AgentSettings, deps: AgentDeps, options: dict[str, object]) -> AgoraAgent:
    """Tries to reach a public address at start-up and prints what happened."""
    import socket

    try:
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)  # TEST-NET-1: never routable anyway
        print("connected", flush=True)
    except OSError as err:
        print(f"outbound {err}", flush=True)
    return AgoraAgent(settings, deps)


async def test_request_remoteRefusal_arrivesAsRemoteError(
    requester: tuple[AgoraAgent, StaticResolver], tmp_path: Path
) -> None:
    agent, resolver = requester
    settings = AgentSettings(name="echo", seed="echo seed", data_dir=tmp_path / "echo", concurrent_handlers=True)
    child = await spawn_agent("agents.testing.factories:echo_responder", settings, {agent.address: [agent.endpoint]})
    resolver.add(child.address, child.endpoint)
    try:
        ok = await agent.request(child.address, REQUEST, InferenceResult)
        with pytest.raises(RemoteError) as refused:
            await agent.request(child.address, Reject(negotiation_id="n", reason="not spoken here"), InferenceResult)
    finally:
        await child.stop()
    assert ok.outputs == REQUEST.inputs
    assert refused.value.code == ErrorCode.UNKNOWN_SCHEMA


async def test_readCapped_chunkedResponseOverLimit_refusedMidStream() -> None:
    """The https path (aiohttp) stops reading a chunked response as soon as it passes the cap."""
    from agents.http import ResponseTooLarge
    from agents.transport import _read_capped

    async def flood(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 16 * 1024)
        return response

    app = web.Application()
    app.router.add_get("/", flood)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                with pytest.raises(ResponseTooLarge):
                    await _read_capped(resp.content, 100 * 1024)
            async with session.get(f"http://127.0.0.1:{port}/") as resp:
                assert len(await _read_capped(resp.content, 1024 * 1024)) == 64 * 16 * 1024
    finally:
        await runner.cleanup()


async def test_checkedResolver_namesResolvingToRefusedAddresses_refused() -> None:
    """Host names on the https path are checked on the addresses aiohttp then connects to."""
    from agents.mods import Limits
    from agents.transport import EndpointPolicy, EndpointRefused, _CheckedResolver

    local = _CheckedResolver(EndpointPolicy.for_agent(Limits(), "127.0.0.1"))
    public = _CheckedResolver(EndpointPolicy.for_agent(Limits(), "agent.example.org"))
    try:
        assert {r["host"] for r in await local.resolve("localhost", 443)} <= {"127.0.0.1", "::1"}
        with pytest.raises(EndpointRefused):
            await public.resolve("localhost", 443)
    finally:
        await local.close()
        await public.close()


async def test_send_localhostEndpoint_triesEachCheckedAddress(requester: tuple[AgoraAgent, StaticResolver]) -> None:
    """`localhost` may resolve to ::1 first while the peer listens on 127.0.0.1 only: the next address is tried."""
    agent, resolver = requester
    received: list[bytes] = []

    async def accept(request: web.Request) -> web.Response:
        received.append(await request.read())
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/submit", accept)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    peer = Identity.generate()
    resolver.add(peer.address, f"http://localhost:{port}/submit")
    try:
        status = await agent.send(peer.address, REQUEST)
    finally:
        await runner.cleanup()
    assert status.detail == "delivered"
    assert len(received) == 1
