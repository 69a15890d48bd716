"""The registry on Postgres (asyncpg): runs when AGORA_TEST_POSTGRES_URL names a throwaway database."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from marketplace.registry import RegistrySettings, RegistryStore, create_app
from protocols.cards import Offering, sign_write
from tests.registry.conftest import FakeClock, identity, make_card, registry_id_of

POSTGRES_URL = os.environ.get("AGORA_TEST_POSTGRES_URL", "")
SKIP_REASON = (
    "AGORA_TEST_POSTGRES_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/agora_test); "
    "the Postgres path of the registry was not tested in this run"
)

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason=SKIP_REASON)


@pytest.fixture
async def clean_postgres() -> AsyncIterator[str]:
    """The test database with the registry's tables dropped before and after (it must be a throwaway one)."""

    async def drop() -> None:
        engine = create_async_engine(POSTGRES_URL)
        async with engine.begin() as conn:
            for table in ("offerings", "agents", "write_nonces", "registry_meta", "schema_migrations"):
                await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        await engine.dispose()

    await drop()
    yield POSTGRES_URL
    await drop()


async def _serve(url: str, clock: FakeClock) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(RegistrySettings(database_url=url), clock=clock)))
    await client.start_server()
    return client


async def test_postgres_apiRoundTrip_refusals_restart(clean_postgres: str) -> None:
    clock = FakeClock()
    alice, bob = identity("pg-alice"), identity("pg-bob")
    huge = 2**255
    client = await _serve(clean_postgres, clock)
    registry = registry_id_of(client)
    try:
        for who, price in ((alice, 5), (bob, huge)):
            card = make_card(who, offerings=[Offering(model_id="m", job_kind="inference", price_per_unit=price)])
            write = sign_write(who, "register", card, timestamp=int(clock()), registry=registry)
            assert (await client.post("/v1/agents", data=write.model_dump_json())).status == 201
        beat = sign_write(alice, "heartbeat", timestamp=int(clock()), registry=registry)
        assert (await client.post(f"/v1/agents/{alice.address}/heartbeat", data=beat.model_dump_json())).status == 200
        replay = await client.post(f"/v1/agents/{alice.address}/heartbeat", data=beat.model_dump_json())
        assert (replay.status, (await replay.json())["code"]) == (403, "replayed")
        page = await (await client.get("/v1/search", params={"job_kind": "inference"})).json()
        assert [r["best_price"] for r in page["results"]] == [5, huge]
        page = await (await client.get("/v1/search", params={"max_price": str(huge - 1)})).json()
        assert [r["card"]["address"] for r in page["results"]] == [alice.address]
        before = await (await client.get("/v1/search")).json()
    finally:
        await client.close()
    client = await _serve(clean_postgres, clock)
    try:
        assert await (await client.get("/v1/search")).json() == before
        health = await (await client.get("/v1/health")).json()
        assert (health["agents"], health["schema_version"], health["registry_id"]) == (2, 2, registry)
    finally:
        await client.close()


async def test_postgres_concurrentWriters_allLand(clean_postgres: str) -> None:
    first, second = await asyncio.gather(RegistryStore.open(clean_postgres), RegistryStore.open(clean_postgres))
    try:
        now = FakeClock()()
        agents = [identity(f"pg-c{i}") for i in range(30)]
        writes = [sign_write(who, "register", make_card(who), timestamp=int(now), registry="r") for who in agents]
        await asyncio.gather(*((first if i % 2 else second).apply(w, now, 60) for i, w in enumerate(writes)))
        assert await second.count(now) == 30
        assert await first.nonce_count() == 30
    finally:
        await first.close()
        await second.close()
