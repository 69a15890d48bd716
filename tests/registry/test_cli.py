"""`agora registry ls|serve` from the command line."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from marketplace.chain.manifest import Deployment
from marketplace.cli import app
from marketplace.registry import RegistrySettings
from marketplace.registry.cli import chain_source, database_url
from protocols.cards import Offering, sign_write
from tests.registry.conftest import identity, make_card
from tests.registry.served import free_port, served_registry

runner = CliRunner()
AGORA = [sys.executable, "-m", "marketplace.cli"]


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "AGORA_HOME": str(home), "COLUMNS": "250", **extra}


@dataclass
class Served:
    """A `registry serve` process: its URL while it runs, and what it printed once stopped."""

    url: str
    stdout: str = ""
    stderr: str = ""
    lines: list[str] = field(default_factory=list)


@contextmanager
def registry_serve(args: list[str], home: Path, cwd: Path | None = None) -> Iterator[Served]:
    """Run `agora registry serve` as a user would, wait until /v1/health answers, and stop it on exit."""
    port = free_port()
    served = Served(f"http://127.0.0.1:{port}")
    command = [*AGORA, "registry", "serve", "--port", str(port), *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home), cwd=cwd
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"registry serve exited with {process.returncode}: {process.communicate()}")
            with contextlib.suppress(requests.ConnectionError):  # not listening yet
                if requests.get(f"{served.url}/v1/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("registry serve did not answer /v1/health within 60 s")
            time.sleep(0.1)
        yield served
    finally:
        process.terminate()
        served.stdout, served.stderr = process.communicate(timeout=30)
        served.lines = served.stdout.splitlines()


def test_registryLs_listsLiveAgentsByRole(tmp_path: Path) -> None:
    settings = RegistrySettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", registry_id="cli-test")
    with served_registry(settings) as url:
        seller, validator = identity("cli-seller"), identity("cli-validator")
        offers = [Offering(model_id="two-tower-v1", job_kind="inference", price_per_unit=25 * 10**16)]
        for who, card in (
            (seller, make_card(seller, name="cli-seller", offerings=offers)),
            (validator, make_card(validator, role="validator", name="cli-validator", offerings=[])),
        ):
            body = sign_write(who, "register", card, registry="cli-test").model_dump_json()
            assert requests.post(f"{url}/v1/agents", data=body, timeout=10).status_code == 201
        everyone = runner.invoke(app, ["registry", "ls", "--registry", url], env={"COLUMNS": "250"})
        assert everyone.exit_code == 0, everyone.output
        assert "cli-seller" in everyone.output
        assert "two-tower-v1/inference@0.25" in everyone.output
        assert "cli-validator" in everyone.output
        validators = runner.invoke(app, ["registry", "ls", "--registry", url, "--role", "validator"])
        assert validators.exit_code == 0
        assert "cli-seller" not in validators.output


def test_registryLs_unreachableRegistry_failsCleanly() -> None:
    result = runner.invoke(app, ["registry", "ls", "--registry", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot reach the registry" in result.output


def test_registryServe_help() -> None:
    result = runner.invoke(app, ["registry", "serve", "--help"])
    assert result.exit_code == 0
    for option in ("--db", "--port", "--rpc-url", "--manifest"):
        assert option in result.output


def test_databaseUrl_syncUrls_getTheirAsyncDriver(tmp_path: Path) -> None:
    sqlite, shown = database_url(f"sqlite:///{tmp_path / 'r.db'}")
    assert (sqlite, shown) == (f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", f"SQLite at {tmp_path / 'r.db'}")
    relative, shown = database_url("sqlite:///r.db")  # relative to the working directory, as SQLite opens it
    assert (relative, shown) == ("sqlite+aiosqlite:///r.db", f"SQLite at {Path.cwd() / 'r.db'}")
    for given in ("postgresql://agora:secret@db.example/reg", "postgres://agora:secret@db.example/reg"):
        url, shown = database_url(given)
        assert url == "postgresql+asyncpg://agora:secret@db.example/reg"
        assert shown == "postgresql+asyncpg://agora:***@db.example/reg"
    assert database_url("sqlite+aiosqlite:///x.db")[0] == "sqlite+aiosqlite:///x.db"


def test_databaseUrl_default_isTheFileUnderAgoraHome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    assert database_url(None) == (
        f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        f"SQLite at {tmp_path / 'registry.db'}",
    )


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("mysql://u@h/reg", "error: --db: unsupported database 'mysql' (use sqlite:///PATH or postgresql://...)"),
        ("registry.db", "error: --db 'registry.db' is not a database URL (use sqlite:///PATH or postgresql://...)"),
    ],
)
def test_registryServe_unusableDbUrl_isOneLineError(tmp_path: Path, db: str, message: str) -> None:
    result = runner.invoke(app, ["registry", "serve", "--db", db], env={"AGORA_HOME": str(tmp_path), "COLUMNS": "250"})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]


def test_registryServe_sqliteUrl_servesThatFileAndNamesIt(tmp_path: Path) -> None:
    with registry_serve(["--db", "sqlite:///file.db"], tmp_path / "home", cwd=tmp_path) as served:
        health = requests.get(f"{served.url}/v1/health", timeout=10).json()
        assert health["status"] == "ok"
    assert (tmp_path / "file.db").exists()
    assert not (tmp_path / "home" / "registry.db").exists()
    assert f"agora registry on {served.url}/ (database: SQLite at {tmp_path / 'file.db'})" in served.lines
    assert "Traceback" not in served.stderr


def test_registryServe_noLocalChain_servesWithoutChainAndSaysSo(tmp_path: Path) -> None:
    with registry_serve([], tmp_path) as served:
        health = requests.get(f"{served.url}/v1/health", timeout=10).json()
    assert health["chain_events"] is False
    assert served.lines[0] == (
        "no local chain is running (start one with `agora chain up`): "
        "serving without chain events or on-chain reputation"
    )
    assert served.lines[1] == f"agora registry on {served.url}/ (database: SQLite at {tmp_path / 'registry.db'})"


def _manifest(path: Path, rpc_url: str) -> Path:
    deployment = Deployment(
        chain_id=1337,
        network="ethereum:local:node",
        rpc_url=rpc_url,
        deployer="0x" + "11" * 20,
        treasury="0x" + "11" * 20,
        block=1,
        contracts={},
        abis={},
    )
    return deployment.save(path)


def test_chainSource_manifestOnly_usesItsRpcUrl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path / "home"))
    manifest = _manifest(tmp_path / "elsewhere.json", "http://127.0.0.1:9545")
    source = chain_source(None, manifest)
    assert source.rpc_url == "http://127.0.0.1:9545"
    assert source.deployment is not None
    assert source.note == f"chain: http://127.0.0.1:9545 (manifest {manifest})"


def test_chainSource_localChainWithoutManifest_servesWithoutChain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    # A daemon record naming a live process (this one), as `agora chain up` leaves it before the deploy finishes.
    info = {"rpc_url": "http://127.0.0.1:9545", "chain_id": 1337, "pid": os.getpid(), "port": 9545}
    (tmp_path / "chain.json").write_text(json.dumps(info))
    source = chain_source(None, None)
    assert (source.rpc_url, source.deployment) == (None, None)
    assert source.note == (
        f"the local chain at http://127.0.0.1:9545 has no manifest {tmp_path / 'deployments' / '1337.json'}: "
        "serving without chain events or on-chain reputation"
    )


@pytest.mark.chain
def test_registryServe_localChainUp_usesItsRpcAndManifest(tmp_path: Path) -> None:
    chain_port = free_port()
    up = subprocess.run(
        [*AGORA, "chain", "up"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, AGORA_CHAIN_PORT=str(chain_port)),
        timeout=120,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        rpc_url, manifest = f"http://127.0.0.1:{chain_port}", tmp_path / "deployments" / "1337.json"
        with registry_serve([], tmp_path) as served:
            health = requests.get(f"{served.url}/v1/health", timeout=10).json()
            events: list[dict[str, Any]] = []
            deadline = time.monotonic() + 20
            while not events and time.monotonic() < deadline:  # the watcher reads from the deployment block on
                events = requests.get(f"{served.url}/v1/events", timeout=10).json()["events"]
                time.sleep(0.1)
        assert health["chain_events"] is True
        assert served.lines[0] == f"chain: the local chain at {rpc_url} (manifest {manifest})"
        assert any(event["contract"] == "AgoraToken" for event in events), events
    finally:
        subprocess.run([*AGORA, "chain", "down"], env=_env(tmp_path), capture_output=True, timeout=60, check=False)
