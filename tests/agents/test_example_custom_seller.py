"""The custom-seller example passes agora's SellerConformance suite, runs as a script, and stays short."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from agents import AgentDeps, AgentSettings, AgoraAgent
from agents.testing.conformance import SellerConformance
from protocols.negotiation import JobSpec
from tests.code_size import code_lines

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_seller.py"
# Loaded by path: a third-party distribution installs a top-level `examples` package that shadows ours.
example = runpy.run_path(str(EXAMPLE), run_name="custom_seller_example")
ReverseSeller = example["ReverseSeller"]


class TestReverseSellerConformance(SellerConformance):
    job = JobSpec(kind="inference", model_id="reverse-v1", units=2)
    budget = 30

    def make_seller(self, settings: AgentSettings, deps: AgentDeps) -> AgoraAgent:
        seller: AgoraAgent = ReverseSeller(settings, deps)
        return seller


def test_example_underFortyLinesOfCode() -> None:
    assert code_lines(EXAMPLE) < 40


def test_example_runsAsScript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "outputs [[2.0, 1.0], [4.0, 3.0]]" in capsys.readouterr().out
