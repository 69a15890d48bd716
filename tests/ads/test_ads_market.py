"""The ads market plugin end to end on anvil with real agents: campaigns escrowed and announced, users ranking on
their devices and buying, roots published, conversions proven (real Groth16 proofs) and claimed in batches by the
relay, unspent budget refunded, and every token accounted for, fresh payees included."""

from __future__ import annotations

import pytest

from agents.markets.ads import MARKET
from marketplace.sim.markets import installed_markets
from tests.ads.conftest import SECTION, Observed

pytestmark = [pytest.mark.chain, pytest.mark.slow]

CONVERSIONS = SECTION.users * SECTION.purchases_per_user


def test_market_provesAndPaysEveryConversion(ads_run: Observed) -> None:
    data = ads_run.section
    assert data["announcements_kept"] == SECTION.advertisers * SECTION.users
    assert data["purchases"] == data["commitments"] == CONVERSIONS
    assert sorted(r["leaves"] for r in data["roots"]) == [SECTION.users, SECTION.users]
    assert data["relay"]["paid"] == CONVERSIONS
    assert data["relay"]["dropped"] == 0
    assert sum(r["conversions"] for r in data["roi"]) == CONVERSIONS
    stages = [c.stage for conversions in ads_run.conversions.values() for c in conversions]
    assert stages == ["claimed"] * CONVERSIONS


def test_market_paysFreshPayeesTheUserShare(ads_run: Observed) -> None:
    payees = ads_run.section["payees"]
    assert len(payees) == CONVERSIONS  # one fresh address per claim
    user_share = SECTION.payout - SECTION.payout * SECTION.publisher_bps // 10_000
    assert all(ads_run.after[p] == user_share for p in payees)
    assert ads_run.flows["advertisers→fresh payees (ad conversions)"] == CONVERSIONS * user_share
    assert ads_run.flows["advertisers→relay (publisher share)"] == CONVERSIONS * (SECTION.payout - user_share)


def test_market_conservesEveryToken(ads_run: Observed) -> None:
    assert sum(ads_run.after.values()) == sum(ads_run.before.values())
    outside = MARKET.holders(ads_run.section)
    assert sorted(outside) == sorted(ads_run.section["payees"])
    assert sum(ads_run.after[p] for p in outside) == ads_run.flows["advertisers→fresh payees (ad conversions)"]
    assert ads_run.after["AdCampaigns"] == 0  # everything paid out or refunded


def test_market_refundsUnspentBudgetAfterTheEnd(ads_run: Observed) -> None:
    rows = ads_run.section["roi"]
    refunded = sorted(r.amount for r in ads_run.refunds if r.kind == "ads")
    assert refunded == sorted(r["budget"] - r["spent"] for r in rows)
    assert all(r["refunded"] == r["budget"] - r["spent"] > 0 for r in rows)


def test_roiTable_spendConversionsAndCostOnly(ads_run: Observed) -> None:
    for row in ads_run.section["roi"]:
        assert row["spent"] == row["conversions"] * SECTION.payout
        assert row["cost_per_conversion"] == SECTION.payout
        assert set(row) == {"advertiser", "campaign_id", "headline", "budget", "payout", "spent", "conversions",
                            "refunded", "cost_per_conversion"}  # fmt: skip


def test_panel_showsTheRoiTableWithoutIdentities(ads_run: Observed) -> None:
    panel = installed_markets()["ads"].panel(ads_run.section)
    assert panel is not None
    assert len(panel.rows) == SECTION.advertisers
    assert sum(int(row[4]) for row in panel.rows) == CONVERSIONS
    text = repr(panel).lower()
    assert not any(a.removeprefix("0x") in text for a in ads_run.accounts.values())
    assert not any(a in text for a in ads_run.addresses.values())
