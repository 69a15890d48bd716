"""The `agora` command as a user runs it from a shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

AGORA = [sys.executable, "-m", "marketplace.cli"]


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGORA_HOME": str(home), "COLUMNS": "200", **env}
    return subprocess.run([*AGORA, *args], capture_output=True, text=True, env=environment, timeout=120, check=False)


@pytest.mark.chain
def test_chain_upStatusDown_fromShell(tmp_path: Path) -> None:
    up = run(["chain", "up"], tmp_path)
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
