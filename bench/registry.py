"""Registry search throughput and tail latency with 10,000 cards, and signed heartbeats from 1,000 agents, on
SQLite or PostgreSQL (server and load on 2 cores).

Run: .venv/bin/python bench/registry.py [--cards 10000] [--agents 1000] [--seconds 5] [--concurrency 8] [--db URL]
The registry runs as `agora registry serve` in its own process; this process is the load generator.
Baseline measured in the same run: GET /v1/agents/{address} (a single-row primary-key lookup). Heartbeats: each
of `--agents` agents registers its card with a signed write, then heartbeats (signed, nonce- and replay-checked,
one row updated each); the writes are signed before the clock starts, so the figure is the registry's.
`--db` takes a PostgreSQL server URL (its registry tables are dropped first: a throwaway database only); the
default is a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import bech32

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uagents_core.identity import Identity  # noqa: E402

from marketplace.registry.models import Reputation  # noqa: E402
from marketplace.registry.storage import RegistryStore  # noqa: E402
from protocols.cards import AgentCard, Offering, SignedWrite, sign_write  # noqa: E402

MODELS = [f"model-{i}" for i in range(50)]
KINDS = ["inference", "training", "validation"]
ROLES = ["seller", "seller", "seller", "validator", "user", "advertiser"]


def fake_address(rng: random.Random) -> str:
    """A well-formed agent1… address (bech32 of 33 random bytes); keys are not needed to fill the table."""
    data = bech32.convertbits(bytes([2]) + rng.randbytes(32), 8, 5)
    return str(bech32.bech32_encode("agent", data))


async def populate(url: str, cards: int, seed: int) -> list[str]:
    """Bulk-load cards through the store (signature checks are what the API tests cover)."""
    rng = random.Random(seed)
    store = await RegistryStore.open(url)
    now = time.time()
    batch: list[AgentCard] = []
    try:
        for i in range(cards):
            offers = [
                Offering(
                    model_id=rng.choice(MODELS),
                    job_kind=rng.choice(KINDS),
                    price_per_unit=rng.randrange(10**15, 10**19),
                    capacity=rng.randrange(1, 16),
                )
                for _ in range(rng.randrange(0, 4))
            ]
            batch.append(
                AgentCard(
                    address=fake_address(rng),
                    role=rng.choice(ROLES),  # type: ignore[arg-type]
                    name=f"agent-{i}",
                    endpoints=[f"http://10.0.{i // 250}.{i % 250}:8000/submit"],
                    offerings=offers,
                    owner="0x" + rng.randbytes(20).hex(),
                )
            )
        await store.import_cards(batch, now, 24 * 3600)
        owners = (await store.owners())[: cards // 3]
        await store.set_reputations(
            {o: Reputation(count=rng.randrange(1, 50), volume=10**18, score=rng.randrange(10_001)) for o in owners}
        )
    finally:
        await store.close()
    return [card.address for card in batch]


async def drop_tables(url: str) -> None:
    """Start a PostgreSQL registry afresh (SQLite files here are new anyway)."""
    if not url.startswith("postgresql"):
        return
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        for table in ("offerings", "agents", "write_nonces", "registry_meta", "schema_migrations"):
            await conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    await engine.dispose()


async def heartbeats(base: str, agents: int, rounds: int, concurrency: int) -> tuple[float, list[float], int]:
    """`agents` agents register signed cards, then each sends `rounds` signed heartbeats; (per second, latencies,
    errors) of the heartbeats, `concurrency` at a time."""
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/v1/health") as response:
            registry = (await response.json())["registry_id"]
        who = [Identity.from_seed(f"bench-heartbeat-{i}", 0) for i in range(agents)]

        async def post_all(writes: list[tuple[str, SignedWrite]]) -> tuple[float, list[float], int]:
            latencies: list[float] = []
            errors = 0
            queue = iter(writes)

            async def worker() -> None:
                nonlocal errors
                for path, write in queue:
                    t0 = time.perf_counter()
                    async with session.post(base + path, data=write.model_dump_json()) as response:
                        await response.read()
                        errors += response.status not in (200, 201)
                    latencies.append(time.perf_counter() - t0)

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return len(writes) / (time.perf_counter() - started), latencies, errors

        registered = []
        for n, agent in enumerate(who):
            endpoint = f"http://10.1.{n // 250}.{n % 250}:8000"
            card = AgentCard(address=agent.address, role="user", name=f"hb-{n}", endpoints=[endpoint], offerings=[],
                             owner="0x" + f"{n:040x}")  # fmt: skip
            registered.append(("/v1/agents", sign_write(agent, "register", card, registry=registry)))
        _, _, failed = await post_all(registered)
        if failed:
            raise RuntimeError(f"{failed} of {agents} registrations refused")
        beats = [(f"/v1/agents/{i.address}/heartbeat", sign_write(i, "heartbeat", registry=registry))
                 for _ in range(rounds) for i in who]  # fmt: skip
        return await post_all(beats)


def search_paths(rng: random.Random, n: int) -> list[str]:
    """A mix of realistic searches."""
    paths = []
    for _ in range(n):
        kind = rng.randrange(5)
        if kind == 0:
            paths.append(f"/v1/search?job_kind={rng.choice(KINDS)}&max_price={rng.randrange(10**17, 10**19)}")
        elif kind == 1:
            paths.append(f"/v1/search?model_id={rng.choice(MODELS)}&job_kind=inference")
        elif kind == 2:
            paths.append(f"/v1/search?role=seller&min_reputation={rng.randrange(0, 9000)}")
        elif kind == 3:
            paths.append("/v1/search?role=validator&seen_within=3600")
        else:
            paths.append(f"/v1/search?job_kind=training&offset={rng.randrange(0, 100)}")
    return paths


async def load(base: str, paths: list[str], seconds: float, concurrency: int) -> tuple[float, list[float], int]:
    """Closed-loop load: `concurrency` clients issue requests back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop:
                path = paths[i % len(paths)]
                i += concurrency
                started = time.perf_counter()
                async with session.get(base + path) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc): a figure other load on the machine does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=1_000, help="agents sending signed heartbeats")
    parser.add_argument("--rounds", type=int, default=3, help="heartbeats per agent")
    parser.add_argument("--db", default=None, help="PostgreSQL server URL (default: SQLite in a temporary folder)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite+aiosqlite:///{tmp}/bench.db"
        await drop_tables(url)
        t0 = time.perf_counter()
        addresses = await populate(url, args.cards, args.seed)
        fill = time.perf_counter() - t0
        port = free_port()
        server = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
            [str(ROOT / ".venv/bin/agora"), "registry", "serve", "--db", url, "--port", str(port), "--ttl", "86400"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(200):
                    try:
                        async with session.get(base + "/v1/health") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
            rng = random.Random(args.seed)
            lookups = [f"/v1/agents/{a}" for a in rng.sample(addresses, min(2000, len(addresses)))]
            searches = search_paths(rng, 2000)
            await load(base, searches[:200], 1.0, args.concurrency)  # warm-up: caches, pools, JIT-free Python
            cpu0 = cpu_seconds(server.pid)
            base_rps, base_lat, base_err = await load(base, lookups, args.seconds, args.concurrency)
            cpu1 = cpu_seconds(server.pid)
            rps, lat, err = await load(base, searches, args.seconds, args.concurrency)
            cpu2 = cpu_seconds(server.pid)
            beat_rps, beat_lat, beat_err = await heartbeats(base, args.agents, args.rounds, args.concurrency)
            cpu3 = cpu_seconds(server.pid)
            beat_cpu = (cpu3 - cpu2) / max(1, len(beat_lat)) * 1000 if beat_lat else 0.0
            base_cpu = (cpu1 - cpu0) / max(1, len(base_lat)) * 1000
            search_cpu = (cpu2 - cpu1) / max(1, len(lat)) * 1000
        finally:
            server.terminate()
            server.wait(10)

    rows = [
        ("baseline: GET /v1/agents/{address}", base_rps, pct(base_lat, 0.5), pct(base_lat, 0.99), base_cpu, base_err),
        ("search: mixed filters, ranked, 20/page", rps, pct(lat, 0.5), pct(lat, 0.99), search_cpu, err),
        (f"heartbeat: signed, {args.agents:,} agents × {args.rounds}", beat_rps, pct(beat_lat, 0.5),
         pct(beat_lat, 0.99), beat_cpu, beat_err),
    ]  # fmt: skip
    database = "PostgreSQL" if args.db else "SQLite"
    cmd = (
        f"python bench/registry.py --cards {args.cards} --agents {args.agents} --rounds {args.rounds} "
        f"--seconds {args.seconds:g} --concurrency {args.concurrency}"
        + (" --db $AGORA_POSTGRES_URL" if args.db else "")
    )
    lines = [
        f"{args.cards} cards on {database} (filled in {fill:.1f} s), {os.cpu_count()} cores, "
        f"{args.concurrency} concurrent clients, {args.seconds:g} s per workload, Python {platform.python_version()}; "
        f"load average before the run {load_before:.1f} (other processes share these cores).",
        "",
        "| workload | requests/s | p50 ms | p99 ms | server CPU ms/request | errors |",
        "|---|---:|---:|---:|---:|---:|",
        *[f"| {name} | {r:,.0f} | {p50:.1f} | {p99:.1f} | {c:.2f} | {e} |" for name, r, p50, p99, c, e in rows],
        "",
        f"Goal: ≥ 500 searches/s and p99 ≤ 50 ms → {'met' if rps >= 500 and pct(lat, 0.99) <= 50 else 'NOT met'}. "
        f"Search costs {search_cpu / base_cpu:.2f}× a primary-key lookup in server CPU; one core serves at most "
        f"~{1000 / search_cpu:,.0f} searches/s. Heartbeats from {args.agents:,} agents (signature, nonce and clock "
        f"checks, one row written each): {beat_rps:,.0f}/s, so {args.agents:,} agents heartbeating once a minute "
        f"use {args.agents / 60 / beat_rps:.1%} of the registry's capacity.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_results("\n".join([f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')})", "", *lines]))


def write_results(body: str) -> None:
    """Replace this benchmark's section of bench/RESULTS.md (creating the file if needed)."""
    path = ROOT / "bench" / "RESULTS.md"
    text = (
        path.read_text()
        if path.exists()
        else "# Benchmark results\n\nFigures from `make bench`; each section is written by its script.\n"
    )
    section = (
        f"<!-- registry:start -->\n## Registry search and heartbeats (bench/registry.py)\n\n{body}\n"
        "<!-- registry:end -->"
    )
    pattern = re.compile(r"<!-- registry:start -->.*?<!-- registry:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
