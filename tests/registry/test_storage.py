"""Registry storage: restart keeps every entry, concurrent writers, migrations run once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from marketplace.registry import RegistrySettings, RegistryStore, create_app
from marketplace.registry.schema import MIGRATIONS
from protocols.cards import sign_write
from tests.registry.conftest import FakeClock, identity, make_card, registry_id_of


async def _serve(url: str, clock: FakeClock) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(RegistrySettings(database_url=url), clock=clock)))
    await client.start_server()
    return client


async def test_restart_keepsEveryEntryAndNonce(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}"
    clock = FakeClock()
    agents = [identity(f"r{i}") for i in range(25)]
    client = await _serve(url, clock)
    registry = registry_id_of(client)
    beat = sign_write(agents[0], "heartbeat", timestamp=int(clock()), registry=registry)
    try:
        for who in agents:
            card = make_card(who, name=who.address[-5:])
            write = sign_write(who, "register", card, timestamp=int(clock()), registry=registry)
            assert (await client.post("/v1/agents", data=write.model_dump_json())).status == 201
        assert (
            await client.post(f"/v1/agents/{agents[0].address}/heartbeat", data=beat.model_dump_json())
        ).status == 200
        before = await (await client.get("/v1/search", params={"limit": "100"})).json()
    finally:
        await client.close()  # the app closes the store it opened

    client = await _serve(url, clock)  # a new app (and engine) on the same file
    try:
        assert registry_id_of(client) == registry  # the id lives in the database: writes stay valid
        after = await (await client.get("/v1/search", params={"limit": "100"})).json()
        assert after == before
        assert len(after["results"]) == 25
        for who in agents:
            assert (await client.get(f"/v1/resolve/{who.address}")).status == 200
        replay = await client.post(f"/v1/agents/{agents[0].address}/heartbeat", data=beat.model_dump_json())
        assert replay.status == 403  # nonces survive the restart too
    finally:
        await client.close()


async def test_concurrentWriters_twoStoresOneFile_allLand(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}"
    first, second = await RegistryStore.open(url), await RegistryStore.open(url)
    try:
        now = FakeClock()()
        agents = [identity(f"c{i}") for i in range(40)]
        writes = [sign_write(who, "register", make_card(who), timestamp=int(now), registry="r") for who in agents]
        await asyncio.gather(*((first if i % 2 else second).apply(w, now, 60) for i, w in enumerate(writes)))
        beats = [sign_write(who, "heartbeat", timestamp=int(now), registry="r") for who in agents]
        await asyncio.gather(*((second if i % 2 else first).apply(b, now + 1, 60) for i, b in enumerate(beats)))
        assert await first.count(now) == 40
        assert await second.nonce_count() == 80
        entry = await first.get(agents[7].address, now)
        assert entry is not None
        assert entry.last_seen == now + 1
    finally:
        await first.close()
        await second.close()


async def test_migrations_applyOnceAndRecordVersion(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}"
    store = await RegistryStore.open(url)
    try:
        assert await store.schema_version() == MIGRATIONS[-1][0]
        assert await store.migrate() == MIGRATIONS[-1][0]  # idempotent: nothing to do the second time
    finally:
        await store.close()
    store = await RegistryStore.open(url)
    await store.close()
