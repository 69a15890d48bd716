"""The embedded `assistant` scenario: a scripted LLM buyer shops through tools and stays inside its mandate."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.sim.economy import run_economy
from marketplace.sim.scenario import load_scenario

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_assistantScenario_buysWithinItsMandateAndIsRefusedBeyondIt(tmp_path: Path) -> None:
    scenario = load_scenario(Path("assistant"))
    report = run_economy(scenario, tmp_path)
    assert report.conservation_ok
    run = report.markets["assistants"]["assistant-1"]
    tools = [(call["tool"], call["ok"]) for call in run["calls"]]
    assert tools == [
        ("search_sellers", True),
        ("buy_inference", True),
        ("buy_inference", False),
        ("check_balance", True),
    ]
    assert "mandate_exceeded" in run["calls"][2]["result"]
    assert 0 < run["spent"] <= run["budget"] == scenario.markets["assistants"].budget
    assert run["answer"].startswith("Bought 4")
    assert report.balances["assistant-1"].before - report.balances["assistant-1"].after == run["spent"]
