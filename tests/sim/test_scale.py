"""The `scale` scenario cut to 120 agents on two agent hosts: users driven 24 at a time, sellers and validators
handling messages concurrently, the registry on PostgreSQL when the run has a server (AGORA_TEST_POSTGRES_URL)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from marketplace.sim.economy import fresh_database, run_economy
from marketplace.sim.hosts import Placement
from marketplace.sim.scenario import load_scenario, scale_scenario

pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.e2e]

POSTGRES_URL = os.environ.get("AGORA_TEST_POSTGRES_URL") or None


def test_embedded_scale_scenario_has_a_thousand_agents_of_every_role() -> None:
    scenario = load_scenario(Path("scale"))
    roles = {p.role for p in scenario.participants()}
    assert scenario.agent_count >= 1_000
    assert {"seller", "validator", "user", "advertiser"} <= roles
    assert scenario.concurrency > 1


def test_scale_cut_to_120_agents_on_two_hosts_conserves_and_reports_throughput(tmp_path: Path) -> None:
    plan = scale_scenario(120)
    report = run_economy(plan, tmp_path, placement=Placement(hosts=2), registry_database=POSTGRES_URL)
    users = plan.markets["inference"].users
    assert report.conservation_ok
    assert report.inference_calls["paid"] == 2 * users
    assert report.jobs["training"] == {"completed": 4}
    inference = next(f for f in report.throughput if f.phase == "inference")
    assert inference.paid_calls == 2 * users
    assert inference.messages >= 4 * inference.paid_calls
    assert inference.transactions >= 2 * users  # each user approves and opens a channel
    assert report.memory is not None
    assert report.memory.agents == 120
    assert report.memory.per_agent_bytes < 32 * 2**20


@pytest.mark.skipif(POSTGRES_URL is None, reason="AGORA_TEST_POSTGRES_URL is not set: no PostgreSQL server to use")
def test_fresh_database_is_created_for_the_run_and_dropped_after() -> None:
    async def databases() -> set[str]:
        assert POSTGRES_URL is not None
        engine = create_async_engine(POSTGRES_URL)
        try:
            async with engine.connect() as conn:
                rows = await conn.exec_driver_sql("SELECT datname FROM pg_database")
                return {str(row[0]) for row in rows}
        finally:
            await engine.dispose()

    async def scenario() -> tuple[set[str], str]:
        assert POSTGRES_URL is not None
        async with fresh_database(POSTGRES_URL) as url:
            return await databases(), url

    before = asyncio.run(databases())
    during, url = asyncio.run(scenario())
    name = url.rsplit("/", 1)[1]
    assert name not in before
    assert name in during
    assert name not in asyncio.run(databases())


def test_fresh_database_refuses_a_server_that_is_not_postgres() -> None:
    async def attempt() -> None:
        async with fresh_database("sqlite+aiosqlite:///registry.sqlite3"):
            raise AssertionError("a database was made on a server that is not PostgreSQL")

    with pytest.raises(ValueError, match="PostgreSQL"):
        asyncio.run(attempt())
