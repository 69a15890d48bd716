"""How an economy grows: the `scale` scenario cut to N agents, dealt over agent-host processes talking real HTTP,
against the same economy of the baseline size in one process (same run).

Each size N keeps the scale scenario's 8 sellers and 4 advertisers, gives it one validator per 20 agents and
makes the rest users; every run starts a fresh anvil and registry. Figures per run come from the run's own
report: wall time, set-up time, peak resident memory of the runner and its hosts (anvil apart), memory per
agent, and over the trade phases (inference, training) messages/s, paid calls/s and transactions/s.

Run: .venv/bin/python bench/scale.py [--sizes 100 300 1000] [--baseline 100] [--hosts 4] [--registry-db URL]
     [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from marketplace.sim.economy import run_economy
from marketplace.sim.hosts import Placement
from marketplace.sim.report import EconomyReport
from marketplace.sim.runner import quiet_libraries
from marketplace.sim.scenario import scale_scenario

TRADE = ("inference", "training")
"""The phases whose rates the table shows (set-up and settlement are reported apart)."""


@dataclass
class Figure:
    agents: int
    hosts: int
    wall: float
    setup: float
    memory: int
    anvil: int
    messages: int
    paid_calls: int
    transactions: int
    trade_seconds: float
    conserved: bool

    @classmethod
    def of(cls, report: EconomyReport, hosts: int) -> Figure:
        trade = [f for f in report.throughput if f.phase in TRADE]
        assert report.memory is not None
        return cls(
            agents=report.memory.agents,
            hosts=hosts,
            wall=report.timing["wall_seconds"],
            setup=report.timing["setup_seconds"],
            memory=report.memory.peak_bytes,
            anvil=report.memory.anvil_bytes,
            messages=sum(f.messages for f in trade),
            paid_calls=sum(f.paid_calls for f in trade),
            transactions=sum(f.transactions for f in trade),
            trade_seconds=max(sum(f.seconds for f in trade), 1e-9),
            conserved=report.conservation_ok,
        )


def measure(agents: int, hosts: int, registry_database: str | None) -> Figure:
    """One run of `agents` agents on `hosts` host processes (0: in this process)."""
    plan = scale_scenario(agents)
    with tempfile.TemporaryDirectory(prefix="agora-scale-") as workdir:
        report = run_economy(plan, Path(workdir), placement=Placement(hosts=hosts), registry_database=registry_database)
    return Figure.of(report, hosts)


def _row(figure: Figure, baseline: Figure | None) -> str:
    where = f"{figure.hosts} hosts" if figure.hosts else "1 process"
    ratio = f"{figure.wall / baseline.wall:.2f}×" if baseline is not None else "baseline"
    return (
        f"| {figure.agents} | {where} | {figure.wall:.1f} s | {figure.setup:.1f} s | {ratio} "
        f"| {figure.memory / 2**20:,.0f} MB | {figure.memory / figure.agents / 2**20:.1f} MB "
        f"| {figure.messages / figure.trade_seconds:,.0f} | {figure.paid_calls / figure.trade_seconds:.1f} "
        f"| {figure.transactions / figure.trade_seconds:.1f} | {figure.anvil / 2**20:.0f} MB "
        f"| {'yes' if figure.conserved else 'NO'} |"
    )


def _marginal(figures: list[Figure]) -> list[str]:
    """Memory and time each further agent costs on hosts: slopes between the two largest runs (the hosts' own
    interpreters, torch and web3, counted once, drop out)."""
    if len(figures) < 2:
        return []
    small, large = sorted(figures, key=lambda f: f.agents)[-2:]
    more = max(large.agents - small.agents, 1)
    memory = (large.memory - small.memory) / more / 2**20
    seconds = (large.wall - small.wall) / more
    return [f"Each further agent costs {memory:.2f} MB and {seconds * 1000:.0f} ms of wall time (slopes between "
            "the two largest runs).", ""]  # fmt: skip


def plot(figures: list[Figure], baseline: Figure, path: Path) -> None:
    """Wall time, memory and message rate against agents, the one-process baseline marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    agents = [f.agents for f in figures]
    series: tuple[tuple[str, Callable[[Figure], float]], ...] = (
        ("wall time (s)", lambda f: f.wall),
        ("peak resident memory (MB)", lambda f: f.memory / 2**20),
        ("messages/s (trade phases)", lambda f: f.messages / f.trade_seconds),
    )
    for ax, (label, value) in zip(axes, series, strict=True):
        ax.plot(agents, [value(f) for f in figures], "o-", label="agent hosts")
        ax.plot([baseline.agents], [value(baseline)], "s", label="one process (baseline)")
        ax.set_xlabel("agents")
        ax.set_ylabel(label)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000], help="agents per run")
    parser.add_argument("--baseline", type=int, default=100, help="agents of the one-process baseline run")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument(
        "--registry-db",
        default=os.environ.get("AGORA_POSTGRES_URL"),
        help="PostgreSQL server for the registries (default: $AGORA_POSTGRES_URL, else SQLite)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    quiet_libraries()
    logging.getLogger().setLevel(logging.ERROR)
    load = os.getloadavg()[0]
    baseline = measure(args.baseline, 0, args.registry_db)
    print(_row(baseline, None), flush=True)
    figures = []
    for agents in args.sizes:
        figures.append(measure(agents, args.hosts, args.registry_db))
        print(_row(figures[-1], baseline), flush=True)
    command = "python bench/scale.py " + " ".join(sys.argv[1:])
    registry = "PostgreSQL" if args.registry_db else "SQLite"
    lines = [
        "## Scale: the `scale` economy at growing sizes on agent hosts (bench/scale.py)",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
        "Each run: the `scale` scenario (8 sellers, 4 advertisers buying fine-tunes, one validator per 20 agents,",
        "the rest users buying 2 audited calls each; `concurrency: 24`) cut to N agents, on a fresh anvil with a",
        f"{registry} registry; agents on {args.hosts} host processes talking HTTP; baseline: {args.baseline} agents in",
        "one process, same run. Memory: peak resident set of the runner and its hosts (anvil apart). Rates over the",
        "trade phases (inference and training); messages are those agents took in (requests and replies).",
        "",
        "| agents | where | wall | set-up | vs baseline | memory | per agent | messages/s | paid calls/s | tx/s "
        "| anvil | conserved |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        _row(baseline, None),
        *(_row(figure, baseline) for figure in figures),
        "",
        *_marginal(figures),
        "![scale](scale.png)",
    ]
    if not args.no_write:
        from _results import RESULTS, write_section  # bench/ is on sys.path when a benchmark runs as a script

        plot(figures, baseline, RESULTS.parent / "scale.png")
        write_section("scale", lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
