"""Blobs by reference: owners serve their own blobs to the peers they granted them to, readers check everything."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.base import AgentDeps, AgoraAgent
from agents.blobs import BlobLimits, BlobRefused, GrantRefused, TransferBusy, UnknownBlob
from agents.process import settings_from_json, settings_to_json
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from marketplace.blobstore import BlobNotFound
from marketplace.ml.blobs import BlobHashMismatch, BlobTooLarge
from protocols.blobs import BlobRef, fetch_digest

Make = Callable[..., AgoraAgent]


async def trio(make_agent: Make, **kw: object) -> tuple[AgoraAgent, AgoraAgent, AgoraAgent]:
    """An owner and two readers, started, each resolving the others through one shared directory."""
    directory = StaticResolver()
    agents = tuple(make_agent(name, AgentDeps(resolver=directory), **kw) for name in ("owner", "reader", "other"))
    for agent in agents:
        await agent.start()
        directory.add(agent.address, agent.endpoint)
    return agents  # type: ignore[return-value]


async def test_granted_reader_fetches_exact_bytes_into_its_own_store(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent)
    data = os.urandom(300_000)  # a federated update's size, several times one message
    ref = owner.blobs.grant(owner.blobs.put(data), reader.address)
    assert await reader.blobs.fetch(ref) == data
    assert reader.blobs.has(ref.blob_id)
    assert (reader.settings.state_dir() / "blobs" / ref.blob_id.removeprefix("0x")).exists()


async def test_grant_for_one_peer_is_refused_to_another(make_agent: Make) -> None:
    owner, reader, other = await trio(make_agent)
    ref = owner.blobs.grant(owner.blobs.put(b"held-out rows" * 100), reader.address)
    with pytest.raises(GrantRefused, match="another agent"):
        await other.blobs.fetch(ref)  # checked before connecting
    # Forging the peer field breaks the owner's signature; signing it yourself is not the owner's grant.
    forged = BlobRef.parse_obj({**ref.dict(), "grant": {**ref.grant.dict(), "peer": other.address}})
    with pytest.raises(GrantRefused, match="not signed by the blob's owner"):
        await other.blobs.fetch(forged)
    # Even with the check skipped, the owner refuses: the fetch is signed by `other`, the grant names `reader`.
    url = await other.blobs._blob_url(owner.address, ref.blob_id)
    with pytest.raises(GrantRefused, match="another reader"):
        await other.blobs._receive(url, ref, other.blobs.root / "x", 0, hashlib.sha256())
    assert not other.blobs.has(ref.blob_id)


async def test_expired_and_revoked_grants_are_refused(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent)
    blob = owner.blobs.put(b"x" * 5000)
    revoked = owner.blobs.grant(blob, reader.address)
    owner.blobs.revoke(revoked.grant.grant_id)
    with pytest.raises(GrantRefused, match="revoked"):
        await reader.blobs.fetch(revoked)
    expired = owner.blobs.grant(blob, reader.address, ttl=-1)
    with pytest.raises(GrantRefused, match="expired"):
        await reader.blobs.fetch(expired)
    assert not reader.blobs.has(blob)


async def test_unknown_blob_and_oversize_are_refused_with_nothing_stored(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent)
    blob = owner.blobs.put(b"y" * 10_000)
    ref = owner.blobs.grant(blob, reader.address)
    with pytest.raises(BlobTooLarge):
        await reader.blobs.fetch(ref, max_bytes=9_999)
    (owner.blobs.root / blob.removeprefix("0x")).unlink()  # the owner lost it
    with pytest.raises(UnknownBlob):
        await reader.blobs.fetch(ref)
    assert not reader.blobs.has(blob)
    with pytest.raises(BlobNotFound):
        owner.blobs.grant(blob, reader.address)


async def test_tampered_transfer_is_never_used_or_kept(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent)
    data = os.urandom(50_000)
    blob = owner.blobs.put(data)
    ref = owner.blobs.grant(blob, reader.address)
    path = owner.blobs.root / blob.removeprefix("0x")
    path.write_bytes(b"\0" + data[1:])  # same size, other bytes
    with pytest.raises(BlobHashMismatch):
        await reader.blobs.fetch(ref)
    assert not reader.blobs.has(blob)
    assert not any((reader.blobs.root / "partial").iterdir())
    path.write_bytes(data + b"extra")  # longer than announced
    with pytest.raises(BlobRefused, match="another size"):
        await reader.blobs.fetch(ref)
    assert not reader.blobs.has(blob)


async def test_interrupted_transfer_resumes_where_it_stopped(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent, blob_limits=BlobLimits(chunk_bytes=64 * 1024, fetch_attempts=1))
    data = os.urandom(4 * 1024 * 1024)
    ref = owner.blobs.grant(owner.blobs.put(data), reader.address)
    partial = reader.blobs.root / "partial" / ref.blob_id.removeprefix("0x")
    transfer = asyncio.create_task(reader.blobs.fetch(ref))
    for _ in range(10_000):  # until a quarter arrived
        await asyncio.sleep(0.001)
        if partial.exists() and partial.stat().st_size >= len(data) // 4:
            break
    transfer.cancel()  # the connection drops part-way
    with pytest.raises(asyncio.CancelledError):
        await transfer
    held = partial.stat().st_size
    assert 0 < held < len(data)
    assert not reader.blobs.has(ref.blob_id)
    assert await reader.blobs.fetch(ref) == data
    assert owner.blobs.served_from_offset[-1] == held  # the second transfer started where the first stopped


async def test_replayed_fetch_request_and_busy_reader_are_refused(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent, blob_limits=BlobLimits(max_transfers_per_peer=1))
    ref = owner.blobs.grant(owner.blobs.put(os.urandom(48 * 1024 * 1024)), reader.address)
    url = await reader.blobs._blob_url(owner.address, ref.blob_id)
    session = reader.blobs._client()
    headers = {
        "x-agora-peer": reader.address,
        "x-agora-grant": ref.grant.grant_id,
        "x-agora-expires": str(int(reader.clock.now()) + 30),
        "x-agora-nonce": "n1",
    }
    digest = fetch_digest(owner.address, ref.blob_id, ref.grant.grant_id, 0, int(headers["x-agora-expires"]), "n1")
    headers["x-agora-signature"] = reader.keys.identity.sign_digest(digest)
    async with session.get(url, headers=headers) as first:
        assert first.status == 200
        await first.content.readexactly(1000)  # keep this transfer open
        with pytest.raises(TransferBusy):
            await reader.blobs.fetch(ref)
        async with session.get(url, headers=headers) as replay:
            assert replay.status == 409
    assert not reader.blobs.has(ref.blob_id)


async def test_restarted_owner_keeps_blobs_and_grants(make_agent: Make) -> None:
    owner, reader, _ = await trio(make_agent)
    data = os.urandom(20_000)
    ref = owner.blobs.grant(owner.blobs.put(data), reader.address)
    await owner.stop()
    directory = reader.resolver
    again = make_agent("owner", AgentDeps(resolver=directory), port=0)
    await again.start()
    assert isinstance(directory, StaticResolver)
    directory.add(again.address, again.endpoint)
    assert again.address == owner.address
    assert await reader.blobs.fetch(ref) == data


async def test_eviction_spares_pinned_blobs(make_agent: Make) -> None:
    agent = make_agent("small", blob_limits=BlobLimits(capacity_bytes=25_000))
    pinned = agent.blobs.put(os.urandom(10_000), pin="escrow:1")
    old = agent.blobs.put(os.urandom(10_000))
    newest = agent.blobs.put(os.urandom(10_000))
    assert agent.blobs.has(pinned)
    assert agent.blobs.has(newest)
    assert not agent.blobs.has(old)
    assert agent.blobs.usage() <= 25_000
    agent.blobs.unpin(pinned, "escrow:1")
    agent.blobs.put(os.urandom(10_000))
    assert not agent.blobs.has(pinned)


def test_blob_limits_cross_to_child_processes(tmp_path: Path) -> None:
    settings = AgentSettings(name="x", data_dir=tmp_path, blob_limits=BlobLimits(max_blob_bytes=123))
    assert settings_from_json(settings_to_json(settings)).blob_limits == BlobLimits(max_blob_bytes=123)
