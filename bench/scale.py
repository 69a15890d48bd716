"""How an economy grows: the inference market at several sizes, its agents dealt over agent-host processes talking
real HTTP, against the same economy in one process as the baseline (same run).

Each size N runs a scenario of N users (plus sellers and validators, one validator per 25 users, at least 4)
buying inference on a fresh anvil with the registry; the agents live on `--hosts` host processes (agents/host.py),
except the baseline, which runs them in the runner's process. Figures per run: wall time, set-up time, peak
resident memory of the runner and its hosts (summed, sampled every 0.2 s; anvil counted apart), memory per agent,
paid calls/s and transactions/s over the trade phase. Runs are reproducible (`concurrency: 1`).

Run: .venv/bin/python bench/scale.py [--sizes 30 100 300] [--baseline 100] [--hosts 2] [--calls 2] [--no-write]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from marketplace.sim.economy import run_economy
from marketplace.sim.hosts import Placement
from marketplace.sim.runner import quiet_libraries
from marketplace.sim.scenario import Scenario, parse_scenario, scenario_text

PAGE = os.sysconf("SC_PAGE_SIZE")


def scenario(users: int, calls: int) -> Scenario:
    """The default scenario's inference market with `users` users; validators grow with it."""
    section = yaml.safe_load(scenario_text("default"))["markets"]["inference"]
    section.update(users=users, validators=max(4, users // 25), calls_per_user=calls)
    return parse_scenario({"name": f"scale-{users}", "markets": {"inference": section}}, "bench/scale.py")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as file:
                    parent = int(file.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            tree.setdefault(parent, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as file:
            return int(file.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class MemorySampler:
    """Peak resident memory of this process and its descendants (agora's), and of anvil apart."""

    def __init__(self) -> None:
        self.peak_agora = 0
        self.peak_anvil = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            tree, agora, anvil = _children(), 0, 0
            pending = [os.getpid()]
            while pending:
                pid = pending.pop()
                pending.extend(tree.get(pid, []))
                if "anvil" in _command(pid):
                    anvil += _rss(pid)
                else:
                    agora += _rss(pid)
            self.peak_agora, self.peak_anvil = max(self.peak_agora, agora), max(self.peak_anvil, anvil)


@dataclass
class Figure:
    users: int
    agents: int
    hosts: int
    wall: float
    setup: float
    memory: int
    anvil: int
    paid_calls: int
    transactions: int
    conserved: bool

    @property
    def trade(self) -> float:
        return max(self.wall - self.setup, 1e-9)


def measure(users: int, calls: int, hosts: int) -> Figure:
    """One run at `users` users on `hosts` host processes (0: in this process)."""
    plan = scenario(users, calls)
    with tempfile.TemporaryDirectory(prefix="agora-scale-") as workdir, MemorySampler() as memory:
        report = run_economy(plan, Path(workdir), placement=Placement(hosts=hosts))
    transactions = sum(figure.count for figure in report.gas_used.values())
    return Figure(
        users=users,
        agents=plan.agent_count,
        hosts=hosts,
        wall=report.timing["wall_seconds"],
        setup=report.timing["setup_seconds"],
        memory=memory.peak_agora,
        anvil=memory.peak_anvil,
        paid_calls=report.inference_calls.get("paid", 0),
        transactions=transactions,
        conserved=report.conservation_ok,
    )


def _row(figure: Figure, baseline: Figure | None) -> str:
    where = f"{figure.hosts} hosts" if figure.hosts else "1 process"
    ratio = f"{figure.wall / baseline.wall:.2f}×" if baseline is not None else "baseline"
    return (
        f"| {figure.agents} ({figure.users} users) | {where} | {figure.wall:.1f} s | {figure.setup:.1f} s | {ratio} "
        f"| {figure.memory / 2**20:.0f} MB | {figure.memory / figure.agents / 2**20:.1f} MB "
        f"| {figure.paid_calls / figure.trade:.1f} | {figure.transactions / figure.trade:.1f} "
        f"| {figure.anvil / 2**20:.0f} MB | {'yes' if figure.conserved else 'NO'} |"
    )


def _marginal(figures: list[Figure]) -> list[str]:
    """Memory each further agent costs on hosts: the slope between the two largest runs (the hosts' own
    interpreters, torch and web3 included once, drop out)."""
    if len(figures) < 2:
        return []
    small, large = sorted(figures, key=lambda f: f.agents)[-2:]
    slope = (large.memory - small.memory) / max(large.agents - small.agents, 1) / 2**20
    return [f"Each further agent on the hosts costs {slope:.1f} MB (slope between the two largest runs).", ""]


def plot(figures: list[Figure], baseline: Figure, path: Path) -> None:
    """Wall time and memory against agents, the one-process baseline marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    agents = [f.agents for f in figures]
    left.plot(agents, [f.wall for f in figures], "o-", label="agent hosts")
    left.plot([baseline.agents], [baseline.wall], "s", label="one process (baseline)")
    left.set_xlabel("agents")
    left.set_ylabel("wall time (s)")
    left.legend()
    right.plot(agents, [f.memory / 2**20 for f in figures], "o-", label="agent hosts")
    right.plot([baseline.agents], [baseline.memory / 2**20], "s", label="one process (baseline)")
    right.set_xlabel("agents")
    right.set_ylabel("peak resident memory (MB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[30, 100, 300], help="users per run")
    parser.add_argument("--baseline", type=int, default=100, help="users of the one-process baseline run")
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2, help="paid calls per user")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    quiet_libraries()
    logging.getLogger().setLevel(logging.ERROR)
    load = os.getloadavg()[0]
    baseline = measure(args.baseline, args.calls, 0)
    print(_row(baseline, None), flush=True)
    figures = []
    for users in args.sizes:
        figures.append(measure(users, args.calls, args.hosts))
        print(_row(figures[-1], baseline), flush=True)
    command = "python bench/scale.py " + " ".join(sys.argv[1:])
    lines = [
        "## Scale: the inference market on agent hosts (bench/scale.py)",
        "",
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}, 2 cores, load average {load:.1f} at start).",
        f"Each run: N users × {args.calls} paid calls, 4 sellers, one validator per 25 users (≥ 4), fresh anvil and",
        f"registry; agents on {args.hosts} host processes talking HTTP; baseline: {args.baseline} users in one "
        "process, same run. Memory: peak resident set of the runner and its hosts (anvil apart). Rates over the",
        "trade phase (wall minus set-up). Phases drive users one at a time (`concurrency: 1`).",
        "",
        "| agents | where | wall | set-up | vs baseline | memory | per agent | paid calls/s | tx/s | anvil | conserved"
        " |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
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
