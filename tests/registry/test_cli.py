"""`agora registry ls|serve` from the command line."""

from __future__ import annotations

from pathlib import Path

import requests
from typer.testing import CliRunner

from marketplace.cli import app
from marketplace.registry import RegistrySettings
from protocols.cards import Offering, sign_write
from tests.registry.conftest import identity, make_card
from tests.registry.served import served_registry

runner = CliRunner()


def test_registryLs_listsLiveAgentsByRole(tmp_path: Path) -> None:
    with served_registry(RegistrySettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")) as url:
        seller, validator = identity("cli-seller"), identity("cli-validator")
        offers = [Offering(model_id="two-tower-v1", job_kind="inference", price_per_unit=25 * 10**16)]
        for who, card in (
            (seller, make_card(seller, name="cli-seller", offerings=offers)),
            (validator, make_card(validator, role="validator", name="cli-validator", offerings=[])),
        ):
            body = sign_write(who, "register", card).model_dump_json()
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
