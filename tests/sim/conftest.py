"""One run of the default scenario in one process, shared by the tests that inspect it or compare against it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from marketplace.sim.economy import run_economy
from marketplace.sim.report import EconomyReport, print_summary, write_report
from marketplace.sim.runner import quiet_libraries
from marketplace.sim.scenario import load_scenario


@dataclass(frozen=True)
class DefaultRun:
    """The default scenario's report, where it was written, the terminal summary, and the agents' folders."""

    report: EconomyReport
    out: Path
    terminal: str
    workdir: Path


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> DefaultRun:
    """The default scenario run once in this process; its report written and summarised as `agora demo` does."""
    quiet_libraries()
    workdir, out = tmp_path_factory.mktemp("default-run"), tmp_path_factory.mktemp("default-report")
    report = run_economy(load_scenario(), workdir)
    write_report(report, out)
    terminal = io.StringIO()
    print_summary(report, Console(file=terminal, width=140), out)
    return DefaultRun(report, out, terminal.getvalue(), workdir)
