"""examples/llm_buyer.py, run as the README shows it: the scripted model buys within its mandate, is refused
beyond it, and every token stays accounted for."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chain, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_readmeLlmBuyer_buysWithinItsMandateOffline() -> None:
    section = (ROOT / "README.md").read_text().split("### LLM agents within a mandate\n", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README lost the llm_buyer example"
    command = block.group(1).splitlines()[0]
    assert command == ".venv/bin/python examples/llm_buyer.py"
    done = subprocess.run(
        [sys.executable, "examples/llm_buyer.py"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith(("ok ", "refused ", "spent "))]
    assert lines[0].startswith("ok      search_sellers")
    assert lines[1].startswith("ok      buy_inference: bought 3 of 3")
    assert lines[2].startswith("refused buy_inference: error[mandate_exceeded]")
    assert lines[-1].endswith("conservation_ok=True")
