"""Scenario files: the README's minimal scenario runs, plugin sections are validated before anything starts."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from marketplace.sim.markets import MarketNotFound
from marketplace.sim.runner import run_demo
from marketplace.sim.scenario import Scenario, ScenarioError, embedded_scenarios, load_scenario

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_scenario() -> str:
    text = README.read_text()
    found = re.search(r"A scenario names its markets.*?```yaml\n(.*?)```", text, re.S)
    assert found, "README lost its scenario example"
    return found.group(1)


def test_defaultScenario_mergesSellersNamedByTwoMarkets() -> None:
    scenario = load_scenario()
    people = {p.name: p for p in scenario.participants()}
    assert len(people) == 28
    assert people["seller-a"].options["training_price"] > 0  # from the training market
    assert people["seller-a"].options["claim_threshold"] > 0  # from the inference market
    assert people["seller-a"].stake == people["validator-1"].stake > 0


def test_scenario_unknownMarket_refusedWithInstalledOnes() -> None:
    with pytest.raises(MarketNotFound, match="installed: ads, assistants, federated, inference, training"):
        Scenario.model_validate({"name": "x", "markets": {"auctions": {}}})


def test_scenario_badSection_refusedBeforeStart() -> None:
    section = yaml.safe_load(_readme_scenario())["markets"]
    section["inference"]["users"] = 0
    with pytest.raises(ValueError, match="users"):
        Scenario.model_validate({"name": "x", "markets": section})


@pytest.mark.chain
@pytest.mark.slow
def test_readmeScenario_runsWithConservation(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(_readme_scenario())
    report = run_demo(path, tmp_path / "out", Console(file=io.StringIO()))
    assert report.conservation_ok
    assert report.inference_calls["paid"] >= 4
    assert sum(1 for b in report.balances.values() if b.role == "user") == 4


def test_minimalFile_usesDefaultsAndSetsEveryMarketsUsers(tmp_path: Path) -> None:
    path = tmp_path / "fifty.yaml"
    path.write_text("users: 50\n")
    scenario = load_scenario(path)
    assert scenario.name == "fifty"
    assert scenario.markets["inference"].users == scenario.markets["federated"].users == 50
    assert len([p for p in scenario.participants() if p.role == "user"]) == 50


def test_badFile_oneLinePerProblemWithItsYamlPath(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "markets:\n  inference:\n    users: 50000\n    sellers:\n      - name: s\n"
        "        models: [{id: a, kind: recommender, price_per_call: -1, reserve_price: 1}]\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.problems == [
        "markets.inference.sellers[0].models[0].price_per_call: input should be greater than 0 (got -1)",
        "markets.inference.users: input should be less than or equal to 10000 (got 50000)",
    ]
    assert str(caught.value).startswith(f"{path}: 2 problems\n  markets.inference")


def test_embeddedScenarios_loadByName() -> None:
    assert {"default", "federated"} <= set(embedded_scenarios())
    assert load_scenario(Path("federated")).markets["federated"].neighbours == 10
