"""README examples are executed so they never rot: the "Write your own agent" code block runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _section_code(title: str) -> str:
    text = README.read_text()
    section = text.split(f"{title}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, f"no python block under '{title}'"
    return match.group(1)


def test_readme_writeYourOwnAgent_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    code = _section_code("## Write your own agent")
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102  # the README is ours
    assert "[[2.0, 4.0]] True" in capsys.readouterr().out


def test_readme_dataBetweenAgents_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AGORA_HOME", str(tmp_path))
    code = _section_code("### Data between agents")
    exec(compile(code, str(README), "exec"), {"__name__": "__main__"})  # noqa: S102  # the README is ours
    assert "True True" in capsys.readouterr().out
