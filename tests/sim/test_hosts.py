"""The default economy with its agents dealt over agent-host processes on distinct loopback addresses, talking real
HTTP: the same report as in one process, and a host that crashes mid-run comes back from its agents' stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agents.markets.plugin import Phase
from agents.process import LOOPBACK_ONLY_ENV
from marketplace.chain import local_chain
from marketplace.sim.economy import CLOCK_START, Economy
from marketplace.sim.hosts import deal
from marketplace.sim.report import EconomyReport
from marketplace.sim.scenario import load_scenario
from tests.sim.conftest import DefaultRun

pytestmark = pytest.mark.slow

ADDRESSES = ("127.0.0.2", "127.0.0.3")
RUNNER = "127.0.0.4"
"""Where the run's chain, registry and operator listen: none of the three on the hosts' addresses or 127.0.0.1."""


@pytest.fixture
def in_process(default_run: DefaultRun) -> EconomyReport:
    """The default scenario's report from one process (tests/sim/conftest.py)."""
    return default_run.report


def test_deal_spreadsRolesRoundRobin() -> None:
    assert deal(["a", "b", "c", "d", "e"], 2) == [["a", "c", "e"], ["b", "d"]]
    assert deal(["a"], 3) == [["a"]]
    with pytest.raises(ValueError, match="at least 1"):
        deal(["a"], 0)


def _run(cls: type[Economy], tmp_path: Path) -> tuple[Economy, EconomyReport]:
    with local_chain(accounts=2, genesis_time=int(CLOCK_START), host=RUNNER) as chain:
        economy = cls(load_scenario(), chain, tmp_path, hosts=2, host_addresses=ADDRESSES, runner_address=RUNNER)
        return economy, asyncio.run(economy.run())


class CrashingEconomy(Economy):
    """Kills host 1 with SIGKILL just before `crash_before` runs, and starts it again."""

    crash_before = "training"
    crashed = False

    async def _run_phase(self, phase: Phase) -> None:
        if phase.name == self.crash_before and not self.crashed:
            await self.restart_host(1)
            self.crashed = True
        await super()._run_phase(phase)


def test_economy_hostCrashesAndRestarts_nothingLost(in_process: EconomyReport, tmp_path: Path) -> None:
    """Two hosts on distinct loopback addresses, the chain, registry and runner on a third, one host killed before
    training and started again: the same report as the run in one process (balances, calls, claims, disputes,
    royalties, gas), every token accounted for."""
    economy, report = _run(CrashingEconomy, tmp_path)
    assert isinstance(economy, CrashingEconomy)
    assert economy.crashed
    assert report.conservation_ok
    assert report.deterministic_view() == in_process.deterministic_view()
    # Every participant was served by one of the two hosts, none from the runner's own process.
    hosts = {name: member.host.url for name, member in economy.members.items() if member.host is not None}
    assert set(hosts) == set(economy.members)
    assert {url.split("//")[1].split(":")[0] for url in hosts.values()} == set(ADDRESSES)
    assert economy.chain.rpc_url.startswith(f"http://{RUNNER}:")
    assert economy.operator_endpoint.startswith(f"http://{RUNNER}:")


def _agora(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGORA_HOME": str(home), LOOPBACK_ONLY_ENV: "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "marketplace.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_demoCommand_withHosts_runsAndReports(tmp_path: Path) -> None:
    """The CLI deals the agents over two host processes (Ray placement: tests/sim/test_ray_hosts.py)."""
    out = tmp_path / "report"
    args = ["demo", "assistant", "--hosts", "2", "--host-address", "127.0.0.2", "--out", str(out)]
    result = _agora(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((out / "report.json").read_text())["conservation_ok"] is True


def test_demoCommand_hostAddressWithoutHosts_oneLine(tmp_path: Path) -> None:
    result = _agora(["demo", "--host-address", "127.0.0.2"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --host-address and --engine place agent hosts: use them with --hosts N"


def test_demoCommand_addressWithoutRay_oneLine(tmp_path: Path) -> None:
    result = _agora(["demo", "--hosts", "2", "--address", "10.0.0.1:6379"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: --address names a Ray cluster: use it with --engine ray"
