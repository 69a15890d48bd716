"""Event-loop lag of an agent process while it trains a model: training on the loop vs through offload().

A heartbeat coroutine sleeps 10 ms at a time and records how late it wakes up (its lag); an agent's message
handling, replies and deadlines wait exactly that long. Meanwhile the process does a seller's training work
at the demo's size on the two-tower recommender: `train_base_model` (16,000 interactions, 5 epochs), a
2-epoch `fine_tune` on an advertiser catalogue, and `evaluate` on the catalogue's held-out part. Modes, in
alternation within each round so load from other processes hits them alike: idle (no training: the floor
of this machine), training on the event loop (baseline), training through offload() on a process pool
(workers warmed up first) and, for comparison, on a thread pool. Goal: p99 lag <= 50 ms while training.

    .venv/bin/python bench/loop_lag.py [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from agents.offload import Offloader, configure_offload, offload, shutdown_offload, warm_up
from marketplace.ml import (
    InteractionDataset,
    RecommenderSpec,
    catalogue_items,
    ensure_deterministic,
    evaluate,
    fine_tune,
    make_interactions,
    split,
    train_base_model,
)

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION_START, SECTION_END = "<!-- loop-lag:start -->", "<!-- loop-lag:end -->"
TICK = 0.010
GOAL_P99_MS = 50.0
SPEC = RecommenderSpec()  # what the demo's sellers train
SEED = 7

Run = Callable[..., Awaitable[Any]]


@dataclass
class Heartbeat:
    """Ticks every TICK seconds; keeps (sleep started, woke up) for every tick."""

    ticks: list[tuple[float, float]] = field(default_factory=list)
    _stop: bool = False

    async def beat(self) -> None:
        """Tick until stopped."""
        while not self._stop:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            self.ticks.append((started, time.perf_counter()))

    def stop(self) -> None:
        """End after the current tick."""
        self._stop = True

    def lags(self, start: float, end: float) -> list[float]:
        """Lags (seconds) of the ticks that overlapped [start, end]: a tick stalled by blocking work wakes up
        only after that work, so it is attributed by overlap, not by when it woke."""
        return [woke - started - TICK for started, woke in self.ticks if woke > start and started < end]


async def seller_training(run: Run, catalogue: tuple[InteractionDataset, InteractionDataset]) -> None:
    """A seller's training work, each step through `run` (as the roles do it)."""
    train, heldout = catalogue
    base, _ = await run(train_base_model, SPEC, SEED)
    tuned, _ = await run(fine_tune, base, train, epochs=2, lr=0.01, seed=SEED)
    await run(evaluate, tuned, heldout)


async def idle(_: Run, __: tuple[InteractionDataset, InteractionDataset]) -> None:
    """No training: the lag this machine and event loop show anyway."""
    await asyncio.sleep(1.0)


@dataclass
class Mode:
    """One measured configuration: its label, what it runs, and the figures gathered over the rounds."""

    label: str
    run: Run
    work: Callable[[Run, tuple[InteractionDataset, InteractionDataset]], Awaitable[None]] = seller_training
    lags: list[float] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def figures(mode: Mode) -> dict[str, float]:
    """Lag percentiles (ms), heartbeats seen and median wall time of the work (s)."""
    return {
        "wall_s": statistics.median(mode.walls),
        "beats": len(mode.lags),
        "p50_ms": percentile(mode.lags, 50) * 1e3,
        "p99_ms": percentile(mode.lags, 99) * 1e3,
        "max_ms": max(mode.lags) * 1e3,
    }


async def measure(rounds: int) -> tuple[list[Mode], float, int]:
    """Run every mode `rounds` times in alternation; return the modes, the warm-up seconds and the workers."""
    ensure_deterministic()
    catalogue = split(make_interactions(SPEC, 3_000, seed=SEED, items=catalogue_items(SPEC, 0)), 0.25, seed=SEED)
    processes = configure_offload("process")
    started = time.perf_counter()
    await warm_up()
    warm_seconds = time.perf_counter() - started
    threads = Offloader("thread")
    modes = [
        Mode("idle: no training (floor)", offload, idle),
        Mode("training on the event loop (baseline)", Offloader("inline").run),
        Mode(f"training through offload(), process pool ({processes.max_workers} workers)", offload),
        Mode(f"training on a thread pool ({threads.max_workers} threads)", threads.run),
    ]
    # One untimed pass per mode: first calls allocate and import lazily (in this process and the workers).
    for mode in modes:
        await mode.work(mode.run, catalogue)
    heartbeat = Heartbeat()
    beating = asyncio.create_task(heartbeat.beat())
    try:
        for _ in range(rounds):
            for mode in modes:
                await asyncio.sleep(5 * TICK)  # let the previous mode's last stalled tick land
                start = time.perf_counter()
                await mode.work(mode.run, catalogue)
                end = time.perf_counter()
                await asyncio.sleep(2 * TICK)
                mode.walls.append(end - start)
                mode.lags.extend(heartbeat.lags(start, end))
    finally:
        heartbeat.stop()
        await beating
        threads.close()
        shutdown_offload()
    return modes, warm_seconds, processes.max_workers


def table(modes: list[Mode]) -> list[str]:
    """The results as markdown rows, with the baseline/offloaded ratio."""
    rows = [
        "| mode | work wall s (median) | heartbeats | p50 lag ms | p99 lag ms | max lag ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        f = figures(mode)
        rows.append(
            f"| {mode.label} | {f['wall_s']:.2f} | {f['beats']:,.0f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} "
            f"| {f['max_ms']:.1f} |"
        )
    baseline, offloaded = figures(modes[1]), figures(modes[2])
    ratios = {key: baseline[key] / offloaded[key] for key in ("wall_s", "p50_ms", "p99_ms", "max_ms")}
    rows.append(
        f"| **ratio** baseline / offload() | {ratios['wall_s']:.2f}× | | **{ratios['p50_ms']:,.0f}×** "
        f"| **{ratios['p99_ms']:,.0f}×** | **{ratios['max_ms']:,.0f}×** |"
    )
    return rows


def verdict(modes: list[Mode]) -> str:
    """Whether offload() met the goal."""
    p99 = figures(modes[2])["p99_ms"]
    met = "met" if p99 <= GOAL_P99_MS else "NOT met"
    return f"Goal: p99 lag <= {GOAL_P99_MS:.0f} ms while training through offload() → {met} ({p99:.1f} ms)."


def write_results(rows: list[str], note: str, command: str, load: float) -> None:
    """Replace (or add) this benchmark's section of bench/RESULTS.md; other sections are left alone."""
    section = "\n".join(
        [
            SECTION_START,
            "## Event-loop lag while an agent process trains a model (bench/loop_lag.py)",
            "",
            f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
            f"Python {sys.version.split()[0]}, load average {load:.1f} at start"
            + ("; the cores were shared with other work)." if load >= 0.5 else ", otherwise idle)."),
            "A heartbeat coroutine sleeps 10 ms and records how late it wakes (uvloop). The work, per round:",
            "`train_base_model` on the demo's two-tower recommender (16,000 interactions, 5 epochs), a 2-epoch",
            "`fine_tune` on a 2,250-interaction catalogue and `evaluate` on its held-out 750, each step run as",
            "the mode says. Modes alternate within each round; lags of all rounds are pooled. Work wall time",
            "through offload() includes pickling the model and data both ways. The thread pool keeps the loop",
            "responsive as well: torch's kernels release the GIL, and Python code in a thread hands the GIL to",
            "the loop every 5 ms (sys.getswitchinterval), though the two then share one core's worth of Python.",
            "",
            *rows,
            "",
            note,
            SECTION_END,
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nEach benchmark owns one section.\n"
    if SECTION_START in text:
        text = re.sub(re.escape(SECTION_START) + ".*?" + re.escape(SECTION_END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


async def main() -> None:
    """Measure and print the table; write it to bench/RESULTS.md unless --no-write."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    modes, warm_seconds, workers = await measure(args.rounds)
    rows = table(modes)
    note = (
        f"{verdict(modes)} Starting the {workers} spawned workers (`await warm_up()`: interpreter, torch, "
        f"deterministic kernels) took {warm_seconds:.1f} s, before the measurement."
    )
    print("\n".join(rows))
    print(note)
    if not args.no_write:
        write_results(rows, note, " ".join([".venv/bin/python bench/loop_lag.py", *sys.argv[1:]]), load)


if __name__ == "__main__":
    uvloop.run(main())  # the event loop agents run on
