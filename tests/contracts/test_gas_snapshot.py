"""Gas of the hot paths against the committed contracts/gas-snapshot.json.

A figure that grows more than 5% fails the test until the snapshot is regenerated on purpose:
    AGORA_UPDATE_GAS_SNAPSHOT=1 .venv/bin/pytest tests/contracts/test_gas_snapshot.py
"""

from __future__ import annotations

import json
import os

import pytest

from marketplace.chain import ChainConnection, LocalChain
from marketplace.chain.gas import amortized_per_call, hot_paths, prepare
from marketplace.paths import project_root

pytestmark = pytest.mark.chain

SNAPSHOT = project_root() / "contracts" / "gas-snapshot.json"
TOLERANCE = 0.05


async def test_hotPaths_stayWithinGasSnapshot(chain: LocalChain, conn: ChainConnection) -> None:
    cast = await prepare(conn, chain)
    measured = await hot_paths(cast)
    if os.environ.get("AGORA_UPDATE_GAS_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(measured, indent=2, sort_keys=True) + "\n")
        return
    recorded: dict[str, int] = json.loads(SNAPSHOT.read_text())
    assert sorted(measured) == sorted(recorded), "hot paths changed: regenerate with AGORA_UPDATE_GAS_SNAPSHOT=1"
    grown = {k: (recorded[k], v) for k, v in measured.items() if v > recorded[k] * (1 + TOLERANCE)}
    assert not grown, f"gas grew > 5% (recorded, measured): {grown}; if intended, AGORA_UPDATE_GAS_SNAPSHOT=1"


async def test_channelClaim_amortizesBelow2000GasPerCall(chain: LocalChain, conn: ChainConnection) -> None:
    cast = await prepare(conn, chain)
    figures = await amortized_per_call(cast, calls=100)
    # The settlement itself (one claim for 100 calls, or claimMany over 10 channels with their
    # opens included) stays under 2,000 gas per call; a single channel's open + claim lands just
    # above it at 100 calls (three fresh storage slots) and under it from ~105 calls on.
    assert figures["channel_claim_only_per_call"] <= 2_000
    assert figures["claim_many_10_channels_per_call"] <= 2_000
    assert figures["channel_open_plus_claim_per_call"] <= 2_200
    assert figures["erc20_transfer_per_call"] > 10 * figures["channel_open_plus_claim_per_call"]
