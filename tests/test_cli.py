"""The `agora` command as a user runs it from a shell."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from marketplace import cli
from marketplace.chain.node import DEFAULT_CHAIN_PORT, free_port, preferred_chain_port
from marketplace.sim.scenario import load_scenario

AGORA = [sys.executable, "-m", "marketplace.cli"]
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGORA_HOME": str(home), "COLUMNS": "200", **env}
    return subprocess.run([*AGORA, *args], capture_output=True, text=True, env=environment, timeout=120, check=False)


@pytest.fixture(scope="module")
def chain_on_preferred_port(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, subprocess.CompletedProcess[str]]]:
    """`agora chain up` with AGORA_CHAIN_PORT naming a free port; stopped after the module's tests."""
    home = tmp_path_factory.mktemp("preferred")
    port = free_port()
    up = run(["chain", "up"], home, AGORA_CHAIN_PORT=str(port))
    try:
        yield port, up
    finally:
        run(["chain", "down"], home)


@pytest.mark.chain
def test_chain_upStatusDown_fromShell(tmp_path: Path) -> None:
    # A preferred port of its own, so this test neither takes the machine's 8545 nor collides with other tests.
    up = run(["chain", "up"], tmp_path, AGORA_CHAIN_PORT=str(free_port()))
    try:
        assert up.returncode == 0, up.stderr
        assert "AgoraToken" in up.stdout
        assert (tmp_path / "deployments" / "1337.json").exists()
        status = run(["chain", "status"], tmp_path)
        assert status.returncode == 0
        assert "head block" in status.stdout
        assert "AgoraToken" in status.stdout
        again = run(["chain", "up"], tmp_path)
        assert again.returncode == 1
        assert "already running" in again.stderr
        assert "Traceback" not in again.stderr
    finally:
        down = run(["chain", "down"], tmp_path)
    assert down.returncode == 0
    assert "stopped anvil" in down.stdout
    assert not (tmp_path / "chain.json").exists()
    assert run(["chain", "status"], tmp_path).returncode == 1


def test_chain_up_unknownNetworkIsOneLineError(tmp_path: Path) -> None:
    result = run(["chain", "up", "--network", "does:not:exist"], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown network 'does:not:exist'" in lines[0]


def test_chain_up_remoteNetworkWithoutAccountIsRefused(tmp_path: Path) -> None:
    result = run(["chain", "up", "--network", "ethereum:sepolia:node"], tmp_path)
    assert result.returncode == 1
    assert "--account" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_chain_up_missingNodeModulesIsActionable(tmp_path: Path) -> None:
    bare = tmp_path / "checkout"
    bare.mkdir()
    for name in ("ape-config.yaml", "contracts"):
        src = Path(__file__).resolve().parent.parent / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, bare / name)
    result = run(["chain", "up"], tmp_path / "home", AGORA_PROJECT_ROOT=str(bare))
    assert result.returncode == 1
    assert "anvil not found" in result.stderr
    assert "npm ci" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_preferredChainPort_withoutEnv_is8545(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGORA_CHAIN_PORT", raising=False)
    assert preferred_chain_port() == DEFAULT_CHAIN_PORT == 8545
    monkeypatch.setenv("AGORA_CHAIN_PORT", "18545")
    assert preferred_chain_port() == 18545


def test_chainUp_invalidPortEnv_isOneLineError(tmp_path: Path) -> None:
    result = run(["chain", "up"], tmp_path, AGORA_CHAIN_PORT="eighty")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: AGORA_CHAIN_PORT must be a TCP port (1-65535), not 'eighty'"


@pytest.mark.chain
def test_chainUp_preferredPortFree_listensOnIt(
    chain_on_preferred_port: tuple[int, subprocess.CompletedProcess[str]],
) -> None:
    port, up = chain_on_preferred_port
    assert up.returncode == 0, up.stderr
    assert f"anvil running at http://127.0.0.1:{port} " in up.stdout
    assert f"RPC      http://127.0.0.1:{port}" in up.stdout
    assert "busy" not in up.stdout


@pytest.mark.chain
def test_chainUp_preferredPortBusy_saysSoAndUsesAnother(
    chain_on_preferred_port: tuple[int, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    port, first = chain_on_preferred_port
    assert first.returncode == 0, first.stderr
    up = run(["chain", "up"], tmp_path, AGORA_CHAIN_PORT=str(port))  # the first chain holds the port
    try:
        assert up.returncode == 0, up.stderr
        busy = [line for line in up.stdout.splitlines() if "busy" in line]
        assert len(busy) == 1, up.stdout
        chosen = int(busy[0].rsplit("free port ", 1)[1].split()[0])
        assert busy[0] == f"port {port} is busy: anvil uses free port {chosen} instead"
        assert chosen != port
        assert f"anvil running at http://127.0.0.1:{chosen} " in up.stdout
    finally:
        assert run(["chain", "down"], tmp_path).returncode == 0


def test_chainUp_explicitPortBusy_isOneLineError(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run(["chain", "up", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: port {port} is already in use on 127.0.0.1: pick another --port, or omit it"]
    assert not (tmp_path / "chain.json").exists()


def test_version_printsPackageVersion(tmp_path: Path) -> None:
    result = run(["--version"], tmp_path)
    assert result.returncode == 0, result.stderr
    expected = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert result.stdout == f"agora {expected}\n"


def test_agoraVersion_notInstalled_fallsBackToPyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    monkeypatch.setattr(cli, "project_root", lambda: PYPROJECT.parent)
    assert cli.agora_version() == tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    monkeypatch.setattr(cli, "project_root", lambda: PYPROJECT.parent / "nowhere")
    assert cli.agora_version() == "unknown"


def test_demoList_andScenarioNew_writeARunnableTemplate(tmp_path: Path) -> None:
    listed = run(["demo", "--list"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^default\s+The default economy", listed.stdout, re.M)
    target = tmp_path / "mine.yaml"
    made = run(["scenario", "new", str(target)], tmp_path)
    assert made.returncode == 0, made.stderr
    assert load_scenario(target).name == "default"
    again = run(["scenario", "new", str(target)], tmp_path)
    assert again.returncode == 1
    assert again.stderr.strip().startswith("error:")
    assert "exists" in again.stderr


def test_demo_portWithoutServe_isOneLineError(tmp_path: Path) -> None:
    result = run(["demo", "--port", "8799"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: --port is the dashboard's port: use it with --serve"]
    assert result.stdout == ""  # nothing started: no scenario line, no chain


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--registry-db", "sqlite:///x.db"], "error: --registry-db must be a postgresql+asyncpg:// URL, not sqlite:…"),
        (
            ["--serve", "--registry-db", "postgresql+asyncpg://u@127.0.0.1:1/db"],
            "error: --registry-db is for the run's own registry; --serve keeps its registry in SQLite",
        ),
    ],
)
def test_demo_badRegistryDb_isOneLineErrorBeforeAnyChain(tmp_path: Path, flags: list[str], message: str) -> None:
    result = run(["demo", *flags], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [message]
    assert result.stdout == ""


def test_demoServe_explicitPortBusy_isOneLineErrorBeforeAnyChain(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run(["demo", "--serve", "--port", str(port)], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"error: port {port} is busy: choose another --port, or omit it for a free one"]
    assert result.stdout == ""  # no dashboard URL was promised, no chain was started
    assert not list(tmp_path.glob("anvil-*.log"))


def test_demoServe_portOutOfRange_isAUsageError(tmp_path: Path) -> None:
    result = run(["demo", "--serve", "--port", "70000"], tmp_path)
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr
    assert "Traceback" not in result.stderr


def test_demoServe_badScenario_oneLinePerProblemAndNoDashboard(tmp_path: Path) -> None:
    scenario = tmp_path / "typo.yaml"
    scenario.write_text("users: 50000\n")
    result = run(["demo", str(scenario), "--serve"], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    # One line per market whose user count is out of range (inference and federated at least).
    assert lines[0] == f"error: {scenario}: {len(lines) - 1} problems"
    paths = [line.split(":")[0].strip() for line in lines[1:]]
    assert {"markets.inference.users", "markets.federated.users"} <= set(paths)
    assert all(line.endswith("(got 50000)") for line in lines[1:]), lines
    assert "dashboard:" not in result.stdout
    assert "Traceback" not in result.stderr


def test_dashboardPort_defaultFree_isUsedSilently(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.sim import runner

    port = free_port()
    monkeypatch.setattr(runner, "DASHBOARD_PORT", port)
    assert runner.dashboard_port(runner.ServeOptions()) == (port, "")


def test_dashboardPort_defaultBusy_takesAFreeOneAndSaysSo(monkeypatch: pytest.MonkeyPatch) -> None:
    from marketplace.sim import runner

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        monkeypatch.setattr(runner, "DASHBOARD_PORT", busy)
        port, note = runner.dashboard_port(runner.ServeOptions())
    assert port != busy
    assert note == f"port {busy} is busy: the dashboard uses free port {port} instead"
