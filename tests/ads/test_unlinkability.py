"""Unlinkability of the ads market: nothing an advertiser or the merchant can see links a claim to a user or to a
purchase.

The run recorded every message and reply the advertisers and the merchant received and every transaction on chain
(sender, calldata, logs), which both can read. A claim's own identifiers (nullifier, payee, proof words) must not
appear in anything they received; claims must be sent by the relay, which is neither of them nor a user; no
user account, commitment, secret or purchase transaction may appear in a claim's transaction; and every payee
must be fresh: no participant's account, distinct per claim, never seen on chain before its claim, never a sender.
"""

from __future__ import annotations

import pytest

from agents.markets.ads import RELAY, SHOP
from marketplace.zk import ConversionSecret
from tests.ads.conftest import SECTION, WATCHED, Observed

pytestmark = [pytest.mark.chain, pytest.mark.slow]


def _word(value: int) -> str:
    """A field element as it appears in calldata and logs: 32 bytes of lower-case hex."""
    return f"{value:064x}"


def _secrets(run: Observed) -> list[tuple[str, ConversionSecret, str]]:
    """(user, conversion secret, payee) of every conversion the users hold."""
    found = []
    for name, conversions in run.conversions.items():
        for c in conversions:
            found.append((name, ConversionSecret(c.campaign_id, int(c.secret), int(c.salt)), c.payee.lower()))
    return found


def _claim_txs(run: Observed) -> list[int]:
    """Indexes of the transactions that paid a conversion (a log names one of the users' nullifiers)."""
    nullifiers = {_word(s.nullifier) for _, s, _ in _secrets(run)}
    return [i for i, tx in enumerate(run.txs) if any(t.removeprefix("0x") in nullifiers for log in tx.logs
                                                        for t in log["topics"])]  # fmt: skip


def _tx_text(tx: object) -> str:
    return repr(tx).lower()


def test_claimsIdentifiersNeverReachTheAdvertiserOrMerchant(ads_run: Observed) -> None:
    assert len(_secrets(ads_run)) == SECTION.users * SECTION.purchases_per_user
    for name in WATCHED:
        view = ads_run.views[name]
        assert view, f"nothing recorded for {name}"
        for _, secret, payee in _secrets(ads_run):
            assert str(secret.nullifier) not in view
            assert _word(secret.nullifier) not in view
            assert payee.removeprefix("0x") not in view
            assert str(secret.secret) not in view
            assert str(secret.salt) not in view


def test_advertiserLearnsNoPurchase(ads_run: Observed) -> None:
    purchases = [c for conversions in ads_run.conversions.values() for c in conversions]
    for name in ("advertiser-1", "advertiser-2"):
        view = ads_run.views[name]
        for c in purchases:
            secret = ConversionSecret(c.campaign_id, int(c.secret), int(c.salt))
            assert str(secret.commitment) not in view
            assert c.payment_tx.lower() not in view
    # The merchant did see the purchases (it sold them): the recording would catch a leak.
    assert all(c.payment_tx.lower() in ads_run.views[SHOP] for c in purchases)


def test_claimsAreSentByTheRelayAndCarryNothingOfUsersOrPurchases(ads_run: Observed) -> None:
    claims = _claim_txs(ads_run)
    assert claims, "no claim transaction found"
    relay = ads_run.accounts[RELAY]
    assert relay not in {ads_run.accounts[n] for n in ads_run.accounts if n != RELAY}
    users = [n for n in ads_run.accounts if n.startswith("user-")]
    for index in claims:
        tx = ads_run.txs[index]
        assert tx.sender == relay
        text = _tx_text(tx)
        for name in users:
            assert ads_run.accounts[name].removeprefix("0x") not in text
        for _, secret, _ in _secrets(ads_run):
            assert _word(secret.commitment) not in text
            assert _word(secret.secret) not in text
        for conversions in ads_run.conversions.values():
            for c in conversions:
                assert c.payment_tx.lower().removeprefix("0x") not in text


def test_claimsGoToFreshDistinctPayees(ads_run: Observed) -> None:
    payees = [payee for _, _, payee in _secrets(ads_run)]
    assert len(set(payees)) == len(payees) == len(ads_run.section["payees"])
    assert {p.lower() for p in ads_run.section["payees"]} == set(payees)
    assert not set(payees) & set(ads_run.accounts.values())
    first_claim = min(_claim_txs(ads_run))
    for payee in payees:
        bare = payee.removeprefix("0x")
        assert all(bare not in _tx_text(tx) for tx in ads_run.txs[:first_claim]), "payee seen before its claim"
        assert all(tx.sender != payee for tx in ads_run.txs)
        assert ads_run.payee_nonces[payee] == 0  # never sent a transaction


def test_everyClaimHidesInARootOfSeveralPurchases(ads_run: Observed) -> None:
    """A claim names only a root; every root covers at least `min_leaves` purchases, so the merchant cannot tell
    which of them a claim is."""
    roots = {int(r["root"]): r["leaves"] for r in ads_run.section["roots"]}
    for conversions in ads_run.conversions.values():
        for c in conversions:
            assert roots[int(c.root)] >= SECTION.min_leaves >= 2
