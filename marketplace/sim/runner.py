"""`agora demo`: load a scenario, run the economy with Rich progress, write and summarise the report."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from marketplace.chain.ape_env import configure_ape_environment
from marketplace.sim.economy import run_economy
from marketplace.sim.report import EconomyReport, print_summary, write_report
from marketplace.sim.scenario import load_scenario

PHASE_LABELS = {"chain": "anvil + contracts deployed with Ape"}


def _quiet_libraries() -> None:
    # Agents and Ape log every step at INFO; the progress bars tell the story instead.
    configure_ape_environment()
    from ape.logging import logger as ape_logger  # Ape sets its own level when imported: set it after

    ape_logger.set_level("WARNING")
    for name in ("uagents", "web3", "aiohttp", "agora"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)


def run_demo(
    scenario_path: Path | None, out_dir: Path, console: Console, processes: frozenset[str] = frozenset()
) -> EconomyReport:
    """Run one scenario end to end and write its report into out_dir."""
    scenario = load_scenario(scenario_path)
    _quiet_libraries()
    console.print(f"scenario [bold]{scenario.name}[/]: {scenario.agent_count} agents, seed {scenario.seed}")
    workdir = Path(tempfile.mkdtemp(prefix="agora-demo-"))
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as bars:  # fmt: skip
            tasks: dict[str, TaskID] = {}
            labels = dict(PHASE_LABELS)
            for plugin in scenario.plugins.values():
                labels.update(plugin.labels())

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bars.add_task(labels.get(phase, phase), total=total)
                bars.update(tasks[phase], completed=done)

            report = run_economy(scenario, workdir, progress, processes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    write_report(report, out_dir)
    print_summary(report, console, out_dir)
    return report
