"""The economy report: JSON for machines, HTML + PNG plots for people, a summary table for the terminal."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from agents.markets.plugin import Market, Refund, ValidationTally
from marketplace.sim.markets import installed_markets
from marketplace.sim.measure import MemoryFigure, PhaseThroughput

AGT = 10**18

MEASURED_FIELDS = ("timing", "throughput", "memory")
"""Top-level report keys that hold wall-clock and resource figures; everything else is a function of the seed."""


class AgentBalance(BaseModel):
    """One participant's AGT balance at the start and the end of a run."""

    model_config = ConfigDict(extra="forbid")

    address: str
    role: str
    before: int
    after: int
    stake_after: int | None = None
    """Stake left in ValidatorStaking at the end (validators and sellers bond the same amount at start)."""


class GasFigure(BaseModel):
    """Gas spent on one kind of operation."""

    model_config = ConfigDict(extra="forbid")

    count: int
    total: int

    @property
    def mean(self) -> float:
        """Average gas per operation (display only)."""
        return self.total / self.count if self.count else 0.0


class EconomyReport(BaseModel):
    """Everything `agora demo` measured about one run; amounts are AGT base units."""

    model_config = ConfigDict(extra="forbid")

    scenario: str
    seed: int
    token_supply_before: int
    token_supply_after: int
    balances: dict[str, AgentBalance]
    jobs: dict[str, dict[str, int]]
    inference_calls: dict[str, int]
    channel_claims: list[dict[str, Any]]
    gas_used: dict[str, GasFigure]
    royalties: dict[str, int]
    validations: ValidationTally
    refunds: list[Refund]
    conservation_ok: bool
    balance_timeline: list[dict[str, int]] = Field(default_factory=list)
    """Balances per agent after each phase, in phase order (for the plot)."""
    phases: list[str] = Field(default_factory=list)
    flows: dict[str, int] = Field(default_factory=dict)
    """Money moved between roles, keyed "payer_role->payee_role"."""
    markets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Sections contributed by market plugins."""
    timing: dict[str, float] = Field(default_factory=dict)
    throughput: list[PhaseThroughput] = Field(default_factory=list)
    """Per phase: seconds, messages agents handled, paid calls and transactions, in run order."""
    memory: MemoryFigure | None = None

    def deterministic_view(self) -> dict[str, Any]:
        """The report without wall-clock fields and what markets declare varying by design: equal for equal seeds."""
        view = self.model_dump(mode="json", exclude=set(MEASURED_FIELDS))
        for name, market in _markets(self).items():
            for key in market.varying:
                view["markets"][name].pop(key, None)
            for operation in market.varying_gas:
                view["gas_used"].pop(operation, None)
        return view


def write_report(report: EconomyReport, out_dir: Path) -> dict[str, Path]:
    """Write report.json, the PNG plots and report.html into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json"}
    paths["json"].write_text(json.dumps(report.model_dump(mode="json"), indent=2, sort_keys=True))
    paths.update(_write_plots(report, out_dir))
    for name, market in _markets(report).items():
        for i, path in enumerate(market.plot(report.markets[name], out_dir)):
            paths[f"{name}_{i}_png"] = path
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(_render_html(report, {k: v.name for k, v in paths.items() if v.suffix == ".png"}))
    return paths


def _write_plots(report: EconomyReport, out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(9, 4.5))
    roles = sorted({b.role for b in report.balances.values() if b.role != "treasury"})
    for role in roles:
        members = [n for n, b in report.balances.items() if b.role == role]
        series = [sum(point.get(n, 0) for n in members) / AGT for point in report.balance_timeline]
        ax.plot(range(len(series)), series, marker="o", linewidth=1.6, label=f"{role}s ({len(members)})")
    ax.set_xticks(range(len(report.phases)), report.phases)
    ax.set_ylabel("AGT held (sum over the role)")
    ax.set_title("Balances over the run, by role")
    ax.legend()
    fig.tight_layout()
    paths["balances_png"] = out_dir / "balances.png"
    fig.savefig(paths["balances_png"], dpi=110)
    plt.close(fig)

    for key, amounts, title, color in (
        ("flows", report.flows, "Money flows between roles", "#3b7dd8"),
        ("royalties", report.royalties, "Royalties along model lineage", "#d8893b"),
    ):
        fig, ax = plt.subplots(figsize=(7, 4))
        bars = sorted(amounts.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in bars], [v / AGT for _, v in bars], color=color)
        ax.set_xlabel("AGT")
        ax.set_title(title)
        fig.tight_layout()
        paths[f"{key}_png"] = out_dir / f"{key}.png"
        fig.savefig(paths[f"{key}_png"], dpi=110)
        plt.close(fig)
    return paths


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _stake(balance: AgentBalance) -> str:
    return "" if balance.stake_after is None else _agt(balance.stake_after)


def _agt(amount: int) -> str:
    return f"{amount / AGT:,.4f}"


def _render_html(report: EconomyReport, plots: Mapping[str, str]) -> str:
    balances = _table(
        [
            (
                n,
                b.role,
                _agt(b.before),
                _agt(b.after),
                _agt(b.after - b.before),
                "" if b.stake_after is None else _agt(b.stake_after),
            )
            for n, b in report.balances.items()
        ],
        ("agent", "role", "before", "after", "change", "stake left"),
    )
    gas = _table(
        [(op, str(g.count), f"{g.total:,}", f"{g.mean:,.0f}") for op, g in sorted(report.gas_used.items())],
        ("operation", "count", "total gas", "mean gas"),
    )
    jobs = _table(
        [(kind, state, str(n)) for kind, states in report.jobs.items() for state, n in states.items()],
        ("job kind", "final state", "count"),
    )
    throughput = _table(
        [
            (f.phase, f"{f.seconds:.1f}", str(f.messages), f"{f.messages_per_second:,.0f}",
             str(f.paid_calls), f"{f.calls_per_second:.1f}", str(f.transactions), f"{f.transactions_per_second:.1f}")
            for f in report.throughput
        ],
        ("phase", "seconds", "messages", "messages/s", "paid calls", "calls/s", "transactions", "tx/s"),
    )  # fmt: skip
    memory = ""
    if report.memory is not None:
        memory = (
            f"<p>Peak resident memory {report.memory.peak_bytes / 2**20:,.0f} MB for {report.memory.agents} agents "
            f"({report.memory.per_agent_bytes / 2**20:.1f} MB per agent; anvil "
            f"{report.memory.anvil_bytes / 2**20:,.0f} MB apart).</p>"
        )
    refunds = _table(
        [(r.kind, r.payer, _agt(r.amount), r.reason) for r in report.refunds], ("kind", "payer", "AGT", "why")
    )
    ok = "ok" if report.conservation_ok else "VIOLATED"
    images = "".join(
        f'<figure><img src="{html.escape(src)}" alt="{html.escape(k)}"></figure>' for k, src in plots.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agora economy report — {html.escape(report.scenario)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2330; }}
h1 {{ font-size: 1.5rem; }} h2 {{ font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #dde; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
td, th {{ padding: .25rem .7rem; border-bottom: 1px solid #eef; text-align: left; }}
th {{ background: #f4f6fb; }} .ok {{ color: #17803d; font-weight: 600; }} .bad {{ color: #b42318; font-weight: 600; }}
figure {{ display: inline-block; margin: .5rem; }} img {{ max-width: 520px; border: 1px solid #eef; }}
</style></head><body>
<h1>agora economy report — {html.escape(report.scenario)} (seed {report.seed})</h1>
<p>Token supply {_agt(report.token_supply_before)} → {_agt(report.token_supply_after)} AGT;
conservation <span class="{"ok" if report.conservation_ok else "bad"}">{ok}</span>.
Paid inference calls: {report.inference_calls.get("paid", 0)};
validator attestations: {report.validations.attestations}.</p>
{images}
<h2>Balances</h2>{balances}
<h2>Jobs</h2>{jobs}
<h2>Refunds</h2>{refunds}
<h2>Gas</h2>{gas}
<h2>Throughput</h2>{throughput}{memory}
</body></html>
"""


def _markets(report: EconomyReport) -> dict[str, Market]:
    """The installed markets that recorded a section in this report."""
    return {name: market for name, market in installed_markets().items() if name in report.markets}


def print_summary(report: EconomyReport, console: Console, report_dir: Path | None = None) -> None:
    """A short terminal summary of a run."""
    table = Table(title=f"agora economy — {report.scenario} (seed {report.seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("agents", str(sum(1 for b in report.balances.values() if b.role != "treasury")))
    table.add_row("paid inference calls", str(report.inference_calls.get("paid", 0)))
    for kind, states in report.jobs.items():
        table.add_row(f"{kind} jobs", ", ".join(f"{s}: {n}" for s, n in states.items()))
    table.add_row("channel claims", str(len(report.channel_claims)))
    table.add_row("royalties paid (AGT)", _agt(sum(report.royalties.values())))
    table.add_row(
        "attestations / disputes / slashed",
        f"{report.validations.attestations} / {report.validations.disputed} / {report.validations.slashed}",
    )
    table.add_row("refunds", str(len(report.refunds)))
    for name, market in _markets(report).items():
        for measure, value in market.summary(report.markets[name]):
            table.add_row(measure, value)
    table.add_row("token supply unchanged", str(report.token_supply_before == report.token_supply_after))
    table.add_row("conservation_ok", str(report.conservation_ok))
    if "wall_seconds" in report.timing:
        table.add_row("wall time (s)", f"{report.timing['wall_seconds']:.1f}")
    if report.memory is not None:
        table.add_row(
            "peak memory (MB) / per agent",
            f"{report.memory.peak_bytes / 2**20:,.0f} / {report.memory.per_agent_bytes / 2**20:.1f}",
        )
    busiest = max(report.throughput, key=lambda f: f.seconds, default=None)
    if busiest is not None:
        table.add_row(
            f"longest phase: {busiest.phase} (s)",
            f"{busiest.seconds:.1f}: {busiest.messages_per_second:,.0f} msg/s, "
            f"{busiest.calls_per_second:.1f} calls/s, {busiest.transactions_per_second:.1f} tx/s",
        )
    console.print(table)
    if report_dir is not None:
        console.print(f"report: {report_dir / 'report.html'} (and report.json)")
