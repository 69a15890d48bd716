"""`agora demo` end to end: fresh chain, scripted payment between two new wallets, clean shutdown."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from marketplace.sim.token_demo import AGT, run_token_demo

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def test_token_demo_movesTokensAndKeepsSupply() -> None:
    out = io.StringIO()
    outcome = run_token_demo(Console(file=out, width=120))
    assert outcome.balances_before["alice"] == 100 * AGT
    assert outcome.balances_after["alice"] == 58 * AGT
    assert outcome.balances_after["bob"] == 42 * AGT
    assert outcome.supply_before == outcome.supply_after
    assert "token supply unchanged: True" in out.getvalue()
