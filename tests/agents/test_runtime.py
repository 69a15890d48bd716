"""The offline-safe runtime: start-up time, in-process request/reply, typed errors, mods, no stray files."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from uagents import Context, Model

from agents.base import AgentDeps, AgoraAgent, RemoteError, running
from agents.clock import SimulatedClock
from agents.mods import Inbound, ModContext, Next, Rejected
from agents.resolver import StaticResolver
from agents.state import Record, Repository
from agents.testing.doubles import Probe, forge_envelope, post_envelope
from agents.wallet import Wallet
from protocols.errors import ErrorCode, ErrorReply
from protocols.jobs import InferenceRequest, InferenceResult

Factory = Callable[..., AgoraAgent]


def _request(job_id: str = "j1") -> InferenceRequest:
    return InferenceRequest(job_id=job_id, model_id="m", inputs=[[1.0, 2.0]], price=5)


def _echo_seller(agent: AgoraAgent, calls: list[str]) -> None:
    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        calls.append(msg.job_id)
        if msg.job_id == "crash":
            raise RuntimeError("boom")
        result = InferenceResult(job_id=msg.job_id, model_id=msg.model_id, outputs=msg.inputs, output_commitment="0x")
        await ctx.send(sender, result)

    agent.on_message(InferenceRequest, replies=InferenceResult)(handle)


async def test_start_firstHandledMessageUnderOneSecond(make_agent: Factory) -> None:
    started = time.perf_counter()
    seller, buyer = make_agent("seller"), make_agent("buyer")
    calls: list[str] = []
    _echo_seller(seller, calls)
    async with running(seller, buyer):
        reply = await buyer.request(seller.address, _request(), InferenceResult)
    assert reply.outputs == [[1.0, 2.0]]
    assert time.perf_counter() - started < 1.0


async def test_start_writesNothingInWorkingDirectory(make_agent: Factory, tmp_path: Path) -> None:
    before = set(os.listdir("."))
    agent = make_agent("quiet")
    async with running(agent):
        assert agent.endpoint.startswith("http://127.0.0.1:")
    assert set(os.listdir(".")) == before
    assert (tmp_path / "quiet" / "state.sqlite3").exists()


async def test_handler_crash_answersInternalErrorAndAgentSurvives(make_agent: Factory) -> None:
    seller, buyer = make_agent("seller"), make_agent("buyer")
    calls: list[str] = []
    _echo_seller(seller, calls)
    async with running(seller, buyer):
        with pytest.raises(RemoteError) as err:
            await buyer.request(seller.address, _request("crash"), InferenceResult)
        assert err.value.code == ErrorCode.INTERNAL
        assert (await buyer.request(seller.address, _request("ok"), InferenceResult)).job_id == "ok"


async def test_malformedPayload_answeredWithErrorReplyNoSideEffect(make_agent: Factory, tmp_path: Path) -> None:
    seller = make_agent("seller")
    calls: list[str] = []
    _echo_seller(seller, calls)
    probe = Probe.create(tmp_path / "probe")
    async with running(seller, probe):
        digest = Model.build_schema_digest(InferenceRequest)
        reply = await probe.ask_raw(seller.address, digest, '{"job_id": 3}')
        unknown = await probe.ask_raw(seller.address, "model:" + "0" * 64, "{}")
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.MALFORMED
    assert unknown.code == ErrorCode.UNKNOWN_SCHEMA
    assert calls == []
    assert seller.metrics.rejected[ErrorCode.MALFORMED] == 1


async def test_use_userModRejectsBeforeHandler(make_agent: Factory) -> None:
    seller, buyer = make_agent("seller"), make_agent("buyer")
    calls: list[str] = []
    _echo_seller(seller, calls)

    async def budget_guard(msg: Inbound, ctx: ModContext, nxt: Next) -> None:
        if isinstance(msg.message, InferenceRequest) and msg.message.price < 10:
            raise Rejected(ErrorCode.REJECTED, "price below 10")
        await nxt(msg, ctx)

    seller.use(budget_guard)
    async with running(seller, buyer):
        with pytest.raises(RemoteError, match="price below 10"):
            await buyer.request(seller.address, _request(), InferenceResult)
    assert calls == []


async def test_store_survivesRestart(make_agent: Factory) -> None:
    first = make_agent("keeper")
    first.store.put_job("j1", "inference", "done", {"price": 2**200}, now=1.0)
    Repository(first.store, "vouchers", _Voucher).put("ch-1", _Voucher(nonce=3, amount=2**255))
    await first.stop()
    again = make_agent("keeper")
    assert again.store.get_job("j1") == {
        "job_id": "j1",
        "kind": "inference",
        "state": "done",
        "data": {"price": 2**200},
    }
    assert Repository(again.store, "vouchers", _Voucher).get("ch-1") == _Voucher(nonce=3, amount=2**255)


class _Voucher(Record):
    """A record with a uint256-sized amount (beyond SQLite's int64)."""

    nonce: int
    amount: int


async def test_wallet_neverShowsKeyMaterial(make_agent: Factory) -> None:
    agent = make_agent("secretive")
    key_hex = agent.keys.account.key.hex()
    for text in (repr(agent.keys), str(agent.keys), repr(agent.settings), repr(agent.keys.identity)):
        assert key_hex not in text
        assert "seed-secretive" not in text


async def test_resolver_unknownDestination_raisesDeliveryError(make_agent: Factory) -> None:
    agent = make_agent("lonely", AgentDeps(resolver=StaticResolver()))
    async with running(agent):
        with pytest.raises(Exception, match="unresolved"):
            await agent.send("agent1qunknown", _request())


async def test_wallet_keystoreRoundTrip_sameAddresses(tmp_path: Path) -> None:
    wallet = Wallet.from_seed("keystore test seed")
    wallet.write_keystore(tmp_path / "key.json", "pw", pbkdf2_iterations=1000)
    assert (tmp_path / "key.json").stat().st_mode & 0o777 == 0o600
    loaded = Wallet.from_keystore(tmp_path / "key.json", "pw")
    assert loaded.eth_address == wallet.eth_address
    # The keystore carries one key; the messaging identity is derived from it (same key, same address each load).
    assert Wallet.from_keystore(tmp_path / "key.json", "pw").agent_address == loaded.agent_address


async def test_start_firstHttpMessageHandledUnderOneSecond(make_agent: Factory, tmp_path: Path) -> None:
    started = time.perf_counter()
    handled = asyncio.Event()
    seller = make_agent("http-seller")
    seller.on_message(InferenceRequest)(lambda ctx, sender, msg: handled.set())
    async with running(seller):
        sender = Wallet.from_seed("http sender").identity
        status, _ = await post_envelope(seller.endpoint, forge_envelope(sender, seller.address, _request()))
        await asyncio.wait_for(handled.wait(), 1.0)
    assert status == 200
    assert time.perf_counter() - started < 1.0


async def test_simulatedClock_doesNotWidenEnvelopeExpiry(make_agent: Factory) -> None:
    clock = SimulatedClock(start=time.time() - 3600)  # business time an hour behind
    seller = make_agent("sim-seller", AgentDeps(clock=clock))
    seller.on_message(InferenceRequest)(lambda ctx, sender, msg: None)
    async with running(seller):
        stale = forge_envelope(
            Wallet.from_seed("x").identity, seller.address, _request(), expires=int(time.time()) - 60
        )
        status, body = await post_envelope(seller.endpoint, stale)
    assert (status, body["code"]) == (400, ErrorCode.EXPIRED)
