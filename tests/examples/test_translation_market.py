"""The translation market: a plugin from outside agora, found through `agora.markets` and run by the demo runner."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pytest
from rich.console import Console

from marketplace.sim.markets import installed_markets
from marketplace.sim.runner import run_demo
from marketplace.sim.scenario import load_scenario

pytestmark = [pytest.mark.chain, pytest.mark.slow]

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "translation"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the package importable and its entry point visible, as `pip install` would, without installing it."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    entry_points = "".join(f"{name} = {value}\n" for name, value in project["entry-points"]["agora.markets"].items())
    site = tmp_path / "site"
    dist_info = site / "agora_translation-0.0.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: 0.0.0\n")
    (dist_info / "entry_points.txt").write_text(f"[agora.markets]\n{entry_points}")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(PACKAGE))


@pytest.mark.usefixtures("plugin")
def test_plugin_isFoundThroughTheEntryPointGroup() -> None:
    markets = installed_markets()
    assert {"inference", "training", "translation"} <= set(markets)
    assert type(markets["translation"]).__module__ == "agora_translation.market"
    scenario = load_scenario(PACKAGE / "scenario.yaml")
    assert list(scenario.plugins) == ["translation"]
    assert {p.role for p in scenario.participants()} == {"translator", "client"}


@pytest.mark.usefixtures("plugin")
def test_scenario_paysTranslatorsAndAccountsForEveryToken(tmp_path: Path) -> None:
    out = tmp_path / "report"
    report = run_demo(PACKAGE / "scenario.yaml", out, Console(file=io.StringIO()))
    assert report.conservation_ok
    section = report.markets["translation"]
    assert section["requests"] == section["paid"] == 12
    assert section["wrong"] == 0
    assert report.jobs["translation"] == {"paid": 12, "refused": 0}
    # What clients spent was claimed by translators and is the market's flow; the rest of each deposit came back.
    assert report.flows["clients→translators (translation)"] == section["spent"] == section["claimed"] > 0
    assert sum(claim["amount"] for claim in report.channel_claims) == section["claimed"]
    clients = {n: b for n, b in report.balances.items() if b.role == "client"}
    assert section["refunded"] == sum(r.amount for r in report.refunds) == sum(b.after for b in clients.values())
    assert sum(b.before - b.after for b in clients.values()) == section["spent"]
    translators = [b for b in report.balances.values() if b.role == "translator"]
    assert sum(b.after - b.before for b in translators) == section["claimed"]
    chosen = {c["translator"] for c in section["clients"].values()}
    assert chosen <= {"translator-a", "translator-b"}
    assert all(c["price_per_call"] > 0 for c in section["clients"].values())
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["markets"]["translation"]["paid"] == 12
    assert on_disk["conservation_ok"] is True
