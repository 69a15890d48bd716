"""Blob transfer between two agent processes over HTTP with every check on, against plain aiohttp file serving.

The owner is an agora agent in a child process (agents.process); the reader is an agent in this process. Each
agora fetch is a reader-signed request under an owner-signed grant (signature, expiry, replay, per-peer cap
checked by the owner), streamed into a partial file while counted and hashed, then moved into the reader's
store (`Blobs.fetch_to_store`: the verified file on disk). The baseline serves the very same file from a plain
aiohttp static route in another child process and downloads it to a file, in the same run. A 280 KB fetch
(one federated update of a 70k-parameter model) gives the latency of a small transfer.

Run: .venv/bin/python bench/blobs.py [--megabytes 50] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web
from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.blobs import BlobLimits
from agents.capabilities.control import Command, Control, call
from agents.capabilities.kit import compose
from agents.process import spawn_agent
from agents.resolver import StaticResolver
from agents.settings import AgentSettings
from protocols.blobs import BlobRef

UPDATE_BYTES = 280 * 1024
LIMITS = BlobLimits(max_blob_bytes=256 * 1024 * 1024)


class Offer(BaseModel):
    """Make a blob of `size` seeded bytes and grant it to `peer`."""

    size: int
    seed: int
    peer: str


class Offered(BaseModel):
    """The reference to send the peer, and where the owner keeps the file."""

    ref: dict[str, Any]
    path: str


OFFER = Command("offer", Offer, Offered)


def owner(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """The owner agent: answers OFFER from its operator by storing a blob and granting it."""
    agent = AgoraAgent(settings, deps)
    control = Control(agent, options["operators"])

    async def offer(args: Offer) -> Offered:
        blob = agent.blobs.put(np.random.default_rng(args.seed).bytes(args.size))
        ref = agent.blobs.grant(blob, args.peer)
        return Offered(ref=json.loads(ref.json()), path=str(agent.blobs.root / blob.removeprefix("0x")))

    control.handle(OFFER, offer)
    return compose(agent, control)


async def offered(reader: AgoraAgent, owner_address: str, size: int, seed: int) -> tuple[BlobRef, Path]:
    """Have the owner make and grant a fresh blob (fresh, so the reader never has it already)."""
    result: Offered = await call(reader, owner_address, OFFER, Offer(size=size, seed=seed, peer=reader.address))
    return BlobRef.parse_obj(result.ref), Path(result.path)


async def plain_download(session: aiohttp.ClientSession, url: str, target: Path) -> int:
    """The baseline client: stream a static file into a local file."""
    received = 0
    async with session.get(url) as response:
        response.raise_for_status()
        with target.open("wb") as handle:
            async for chunk in response.content.iter_chunked(LIMITS.chunk_bytes):
                handle.write(chunk)
                received += len(chunk)
    return received


def announce(port_file: str, port: int) -> None:
    """Tell the parent which port the baseline server bound."""
    Path(port_file).write_text(str(port))


async def serve_plain(folder: str, port_file: str) -> None:
    """Child process of the baseline: plain aiohttp static file serving of `folder`."""
    app = web.Application()
    app.router.add_static("/files/", folder)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    announce(port_file, runner.addresses[0][1])
    await asyncio.Event().wait()


async def run(megabytes: int, rounds: int, updates: int, workdir: Path) -> dict[str, float]:
    """Measure agora and plain throughput for `rounds` transfers each, and the small-update latency."""
    size = megabytes * 1024 * 1024
    directory = StaticResolver()
    reader = AgoraAgent(
        AgentSettings(name="reader", seed="bench:reader", data_dir=workdir / "reader", blob_limits=LIMITS),
        AgentDeps(resolver=directory),
    )
    await reader.start()
    owner_settings = AgentSettings(name="owner", seed="bench:owner", data_dir=workdir / "owner", blob_limits=LIMITS)
    child = await spawn_agent(
        "bench.blobs:owner", owner_settings, {reader.address: [reader.endpoint]}, {"operators": [reader.address]}
    )
    directory.add(child.address, child.endpoint)
    port_file = workdir / "plain.port"
    plain = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-plain", str(workdir / "owner" / "blobs"), str(port_file)
    )
    figures: dict[str, float] = {}
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            await asyncio.sleep(0.1)
        base = f"http://127.0.0.1:{port_file.read_text()}/files/"
        agora_s, plain_s = [], []
        async with aiohttp.ClientSession() as session:
            for i in range(rounds):  # alternate, so both see the same machine load
                ref, path = await offered(reader, child.address, size, seed=i)
                started = time.perf_counter()
                assert (await reader.blobs.fetch_to_store(ref)).stat().st_size == size
                agora_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                assert await plain_download(session, base + path.name, workdir / "plain.bin") == size
                plain_s.append(time.perf_counter() - started)
                (reader.blobs.root / path.name).unlink()
        latencies = []
        for i in range(updates):
            ref, path = await offered(reader, child.address, UPDATE_BYTES, seed=1_000 + i)
            started = time.perf_counter()
            await reader.blobs.fetch_to_store(ref)
            latencies.append(time.perf_counter() - started)
        figures["agora_mb_s"] = megabytes / min(agora_s)
        figures["plain_mb_s"] = megabytes / min(plain_s)
        figures["ratio"] = figures["agora_mb_s"] / figures["plain_mb_s"]
        figures["update_p50_ms"] = statistics.median(latencies) * 1000
        figures["update_p90_ms"] = sorted(latencies)[int(0.9 * (len(latencies) - 1))] * 1000
    finally:
        plain.terminate()
        await plain.wait()
        await child.stop()
        await reader.stop()
    return figures


def write_results(table: str, command: str, load: float) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    from _results import write_section  # bench/ is on sys.path when a benchmark runs as a script

    write_section(
        "blobs",
        [
            "## Blob transfer between two agent processes (bench/blobs.py)",
            "",
            f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
            "agora: reader-signed fetch under an owner-signed grant (signature, expiry, replay and per-peer",
            "checks on the owner), streamed to a partial file, sha256-checked, moved into the reader's store.",
            "Baseline: plain aiohttp static file serving of the same file, downloaded to a file, same run;",
            "best of the rounds shown.",
            "",
            table,
        ],
    )


def main() -> None:
    """Parse arguments, run, print and record."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=30, help="280 KB fetches timed for the latency figure")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--serve-plain", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_plain:
        asyncio.run(serve_plain(*args.serve_plain))
        return
    logging.basicConfig(level=logging.WARNING)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="agora-bench-blobs-") as folder:
        figures = asyncio.run(run(args.megabytes, args.rounds, args.updates, Path(folder)))
    goal = "met" if figures["ratio"] >= 0.5 else "NOT met"
    table = "\n".join(
        [
            "| transfer | figure |",
            "|---|---:|",
            f"| agora, {args.megabytes} MB, all checks on | {figures['agora_mb_s']:,.0f} MB/s |",
            f"| plain aiohttp static file (baseline) | {figures['plain_mb_s']:,.0f} MB/s |",
            f"| **ratio** | **{figures['ratio']:.2f}×** (goal ≥ 0.5×: {goal}) |",
            f"| 280 KB update fetch, p50 / p90 | {figures['update_p50_ms']:.1f} / {figures['update_p90_ms']:.1f} ms |",
        ]
    )
    print(table)
    if not args.no_write:
        write_results(table, "python bench/blobs.py " + " ".join(sys.argv[1:]), load)


if __name__ == "__main__":
    main()
