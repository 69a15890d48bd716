"""The custom-seller example passes agora's SellerConformance suite, runs as a script, and stays short."""

from __future__ import annotations

import ast
import io
import runpy
import tokenize
from pathlib import Path

import pytest

from agents import AgentDeps, AgentSettings, AgoraAgent
from agents.testing.conformance import SellerConformance
from protocols.negotiation import JobSpec

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


def _code_lines(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            docstrings.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
    lines = {
        tok.start[0]
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    }
    return len(lines - docstrings)


def test_example_underFortyLinesOfCode() -> None:
    assert _code_lines(EXAMPLE) < 40


def test_example_runsAsScript(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    assert "outputs [[2.0, 1.0], [4.0, 3.0]]" in capsys.readouterr().out
