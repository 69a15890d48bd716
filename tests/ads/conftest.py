"""One run of the ads market on the session chain, shared by this package's tests (proofs are the slow part).

The run records what the advertisers and the merchant received (messages and replies) and everything on chain
from its first block on (transactions with their senders and calldata, every log), then rolls the chain back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes

from agents.capabilities.ads.viewer import Conversion, RelayChoice
from agents.markets.ads import RELAY, SHOP, AdsSection
from agents.roles.user import CLAIM_ADS
from agents.state import Repository
from marketplace.chain import LocalChain, TokenClient
from tests.ads.harness import MarketRun
from tests.roles.world import AGT, world

SECTION = AdsSection(
    advertisers=2, users=4, purchases_per_user=2, budget=3 * AGT, payout=AGT // 4, publisher_bps=1_000,
    price=10**16, duration=86_400, min_leaves=2,
)  # fmt: skip
"""Two campaigns, four users each buying once from both: eight conversions, two roots of four leaves."""
WATCHED = ("advertiser-1", "advertiser-2", SHOP)


@dataclass
class ChainTx:
    """A transaction of the run: sender, recipient, calldata, the logs it emitted."""

    sender: str
    to: str
    data: str
    logs: list[dict[str, Any]]


@dataclass
class Observed:
    """What one run produced and what each party could see."""

    section: dict[str, Any]
    flows: dict[str, int]
    refunds: list[Any]
    before: dict[str, int]
    after: dict[str, int]
    accounts: dict[str, str]
    """Participant name → settlement account."""
    addresses: dict[str, str]
    """Participant name → agent address."""
    views: dict[str, str]
    """Watched participant → everything it received, lower-cased."""
    txs: list[ChainTx]
    conversions: dict[str, list[Conversion]]
    """User name → its stored conversions (secrets included: the test's omniscient view)."""
    payee_nonces: dict[str, int] = field(default_factory=dict)


async def _chain_view(run: MarketRun, first: int) -> list[ChainTx]:
    w3 = run.conn.w3
    found = []
    for number in range(first, await w3.eth.block_number + 1):
        block = await w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            receipt = await w3.eth.get_transaction_receipt(tx["hash"])
            logs = [
                {"address": str(log["address"]).lower(), "topics": [HexBytes(t).hex() for t in log["topics"]],
                 "data": HexBytes(log["data"]).hex()}
                for log in receipt["logs"]
            ]  # fmt: skip
            found.append(
                ChainTx(str(tx["from"]).lower(), str(tx.get("to") or "").lower(), HexBytes(tx["input"]).hex(), logs)
            )
    return found


async def _run(chain: LocalChain, workdir: Path) -> Observed:
    async with chain.connect() as conn, world(chain, conn, workdir) as w:
        run = MarketRun(w, SECTION)
        await run.start(record=WATCHED)
        first = await conn.w3.eth.block_number + 1
        before = await run.holders()
        await run.run()
        after = await run.holders()
        section = run.ledger.sections["ads"]
        users = [n for n in run.agents if n.startswith("user-")]
        for name in users:  # later, each user looks its relayed nullifiers up on chain
            await run.call(name, CLAIM_ADS, RelayChoice(relay=run.address(RELAY)))
        conversions = {n: Repository(run.agents[n].store, "ads.conversion", Conversion).values() for n in users}
        nonces = {
            p.lower(): await conn.w3.eth.get_transaction_count(conn.w3.to_checksum_address(p))
            for p in section["payees"]
        }
        return Observed(
            section=section, flows=dict(run.ledger.flows), refunds=list(run.ledger.refunds), before=before, after=after,
            accounts={n: a.keys.eth_address.lower() for n, a in run.agents.items()},
            addresses={n: str(a.address) for n, a in run.agents.items()},
            views={n: run.recorders[n].text() for n in WATCHED}, txs=await _chain_view(run, first),
            conversions=conversions, payee_nonces=nonces,
        )  # fmt: skip


@pytest.fixture(scope="package")
def ads_run(session_chain: LocalChain, tmp_path_factory: pytest.TempPathFactory) -> Observed:
    """The ads market run once for the package on the session chain (rolled back after)."""
    snapshot = session_chain.snapshot()
    try:
        return asyncio.run(_run(session_chain, tmp_path_factory.mktemp("ads")))
    finally:
        session_chain.revert(snapshot)


__all__ = ["RELAY", "SHOP", "ChainTx", "Observed", "TokenClient", "ads_run"]
