"""`agora agent run` as an operator runs it on another machine: a role from plain flags, listed in the registry,
the same agent again after a restart, and one readable line for a mistake."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.process import LOOPBACK_ONLY_ENV
from marketplace.agent_cli import parse_options
from marketplace.chain import LocalChain
from marketplace.registry import RegistrySettings
from marketplace.registry.client import RegistryClient
from tests.registry.served import served_registry

AGORA = [sys.executable, "-m", "marketplace.cli"]
ADDRESS = re.compile(r"\((\w+)\) (agent1\w+)\n  endpoint (\S+)")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with served_registry(RegistrySettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")) as url:
        yield url


def _args(chain: LocalChain, registry: str, manifest: Path, *extra: str) -> list[str]:
    return [*AGORA, "agent", "run", "--registry", registry, "--rpc-url", chain.rpc_url, "--manifest", str(manifest),
            *extra]  # fmt: skip


def _start(args: list[str], home: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "AGORA_HOME": str(home), LOOPBACK_ONLY_ENV: "1", "COLUMNS": "200"}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "listed in the registry" in line:
            return process, "".join(lines)
    process.wait(30)
    raise AssertionError("agent exited before it was listed:\n" + "".join(lines))


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return out


@pytest.mark.chain
def test_agentRun_listsTheAgentAndComesBackAsItselfAfterARestart(
    chain: LocalChain, registry: str, tmp_path: Path
) -> None:
    manifest = chain.deployment.save(tmp_path / "deployment.json")
    args = _args(chain, registry, manifest, "--role", "validator", "--name", "val-x")
    process, printed = _start(args, tmp_path)
    try:
        match = ADDRESS.search(printed)
        assert match is not None, printed
        role, address, endpoint = match.groups()
        assert role == "validator"

        async def listed() -> list[str]:
            async with RegistryClient(registry) as client:
                entry = await client.get(address)
                assert entry is not None
                return list(entry.card.endpoints)

        assert asyncio.run(listed()) == [endpoint]
    finally:
        assert "val-x stopped" in _stop(process)
    seed = tmp_path / "agents" / "val-x" / "seed"
    assert seed.stat().st_mode & 0o777 == 0o600
    again, printed = _start(args, tmp_path)
    try:
        assert f") {address}\n" in printed
    finally:
        _stop(again)


@pytest.mark.chain
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--role", "wizard", "--name", "w"], "unknown role 'wizard'; roles: user, seller"),
        (["--role", "validator", "--name", "v", "--option", "nokey"], "--option takes KEY=VALUE"),
    ],
)
def test_agentRun_mistakes_oneLineAndExit1(
    chain: LocalChain, registry: str, tmp_path: Path, extra: list[str], message: str
) -> None:
    manifest = chain.deployment.save(tmp_path / "deployment.json")
    env = {**os.environ, "AGORA_HOME": str(tmp_path), "COLUMNS": "200"}
    result = subprocess.run(_args(chain, registry, manifest, *extra), capture_output=True, text=True, env=env,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


def test_parseOptions_jsonValuesElseText() -> None:
    assert parse_options(["models=[1, 2]", "name=plain", "rate=0.5"]) == {
        "models": [1, 2],
        "name": "plain",
        "rate": 0.5,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["=x"])
