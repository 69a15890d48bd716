"""Hostile HTTP envelopes are refused at the envelope level with no handler side effect, also after a restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from uagents import Context
from uagents_core.identity import Identity, generate_user_address

from agents.base import AgoraAgent, running
from agents.mods import Limits
from agents.testing.doubles import Probe, forge_envelope, post_envelope
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult

Factory = Callable[..., AgoraAgent]
REQUEST = InferenceRequest(job_id="j1", model_id="m", inputs=[[0.5]], price=7)
LIMITS = Limits(max_message_bytes=4096)


def _seller(make_agent: Factory, calls: list[str]) -> AgoraAgent:
    seller = make_agent("seller", limits=LIMITS)

    async def handle(ctx: Context, sender: str, msg: InferenceRequest) -> None:
        calls.append(msg.job_id)
        result = InferenceResult(job_id=msg.job_id, model_id=msg.model_id, outputs=[[1.0]], output_commitment="0x")
        await ctx.send(sender, result)

    seller.on_message(InferenceRequest, replies=InferenceResult)(handle)
    return seller


async def _settle(seller: AgoraAgent) -> None:
    """Let the handler queue drain (handlers run after the HTTP ack)."""
    for _ in range(50):
        if seller._message_queue.empty():
            await asyncio.sleep(0.01)
            return
        await asyncio.sleep(0.01)


async def test_hostileEnvelopes_rejectedBeforeHandler_alsoAfterRestart(make_agent: Factory, tmp_path: Path) -> None:
    calls: list[str] = []
    seller = _seller(make_agent, calls)
    probe = Probe.create(tmp_path / "probe")
    attacker = Identity.generate()
    async with running(seller, probe):
        endpoint = seller.endpoint
        genuine = forge_envelope(probe.keys.identity, seller.address, REQUEST)
        assert (await post_envelope(endpoint, genuine))[0] == 200
        await _settle(seller)
        assert calls == ["j1"]

        hostile = {
            "replayed": (genuine, 409, ErrorCode.REPLAYED),
            "expired": (
                forge_envelope(probe.keys.identity, seller.address, REQUEST, expires=int(time.time()) - 60),
                400,
                ErrorCode.EXPIRED,
            ),
            "forged": (
                forge_envelope(attacker, seller.address, REQUEST, sender=probe.address),
                401,
                ErrorCode.BAD_SIGNATURE,
            ),
            "unsigned_user": (
                forge_envelope(attacker, seller.address, REQUEST, sender=generate_user_address()),
                401,
                ErrorCode.BAD_SENDER,
            ),
            "wrong_target": (forge_envelope(probe.keys.identity, probe.address, REQUEST), 404, ErrorCode.WRONG_TARGET),
        }
        tampered = forge_envelope(probe.keys.identity, seller.address, REQUEST, nonce=5)
        tampered.encode_payload(REQUEST.copy(update={"price": 0}).json())
        hostile["tampered"] = (tampered, 401, ErrorCode.BAD_SIGNATURE)
        oversized = forge_envelope(probe.keys.identity, seller.address, REQUEST.copy(update={"inputs": [[0.0] * 2000]}))
        hostile["oversized"] = (oversized, 413, ErrorCode.TOO_LARGE)

        for name, (envelope, status, code) in hostile.items():
            got_status, body = await post_envelope(endpoint, envelope)
            assert (got_status, body["code"]) == (status, code), name
        got_status, body = await post_envelope(endpoint, b"{not json")
        assert (got_status, body["code"]) == (400, ErrorCode.MALFORMED)

        # A validly signed envelope with a malformed payload passes the transport, then fails typing.
        malformed = forge_envelope(probe.keys.identity, seller.address, REQUEST, nonce=9, payload='{"job_id": []}')
        assert (await post_envelope(endpoint, malformed))[0] == 200
        await _settle(seller)
        assert seller.metrics.rejected[ErrorCode.MALFORMED] == 2  # the non-JSON body and this payload
        assert calls == ["j1"]

    # Restart: a new agent object on the same seed and data dir must still refuse all of them.
    restarted = _seller(make_agent, calls)
    async with running(restarted, probe2 := Probe.create(tmp_path / "probe2")):
        assert probe2.address != probe.address
        for name, (envelope, status, code) in hostile.items():
            got_status, body = await post_envelope(restarted.endpoint, envelope)
            assert (got_status, body["code"]) == (status, code), f"{name} after restart"
        await _settle(restarted)
    assert calls == ["j1"]


async def test_allowedSenders_othersRefused(make_agent: Factory, tmp_path: Path) -> None:
    calls: list[str] = []
    probe = Probe.create(tmp_path / "probe")
    seller = make_agent("picky", limits=Limits(allowed_senders=frozenset({"agent1qsomeoneelse"})))
    seller.on_message(InferenceRequest)(lambda ctx, sender, msg: calls.append(msg.job_id))
    async with running(seller, probe):
        status, body = await post_envelope(
            seller.endpoint, forge_envelope(probe.keys.identity, seller.address, REQUEST)
        )
    assert (status, body["code"]) == (403, ErrorCode.BAD_SENDER)
    assert calls == []


async def test_replay_sameEnvelopeConcurrently_acceptedOnce(make_agent: Factory, tmp_path: Path) -> None:
    calls: list[str] = []
    seller = _seller(make_agent, calls)
    probe = Probe.create(tmp_path / "probe")
    async with running(seller, probe):
        envelope = forge_envelope(probe.keys.identity, seller.address, REQUEST)
        results = await asyncio.gather(*(post_envelope(seller.endpoint, envelope) for _ in range(8)))
        await _settle(seller)
    assert sorted(status for status, _ in results) == [200] + [409] * 7
    assert calls == ["j1"]
