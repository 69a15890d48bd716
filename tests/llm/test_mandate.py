"""Mandates: signed terms verified on load, a guard that refuses spends beyond them and records nothing when it
does, spend that survives a restart, and (on the real chain) a guarded channel payer that signs nothing the
mandate does not allow."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents.capabilities.mandate import InvalidMandate, Mandate, MandateExceeded, MandateGuard
from agents.capabilities.payment import ChannelPayer
from agents.clock import SimulatedClock
from agents.roles import seller as seller_role
from agents.store import AgentStore
from marketplace.chain import TokenClient
from tests.llm.mandates import EXPIRES, guarded_buyer, terms
from tests.roles.world import AGT, PRICE, Buyer, World

SELLER = "0x" + "5e" * 20
OTHER = "0x" + "07" * 20


@pytest.fixture
def user() -> LocalAccount:
    """The user's (and here also the spending agent's) account."""
    account: LocalAccount = Account.from_key("0x" + "11" * 32)
    return account


def _guard(tmp_path: Path, user: LocalAccount, now: float = 1_000.0, **changes: object) -> MandateGuard:
    async def clock() -> float:
        return now

    return MandateGuard(AgentStore(tmp_path / "store.sqlite3"), Mandate.sign(terms(user, **changes), user), clock)


def test_load_roundTripsAndVerifies(user: LocalAccount) -> None:
    mandate = Mandate.sign(terms(user), user)

    assert Mandate.load(mandate.model_dump_json()) == mandate


def test_load_failsIfTermsTampered(user: LocalAccount) -> None:
    raw = Mandate.sign(terms(user), user).model_dump(mode="json")
    raw["terms"]["total_budget"] = 10**30

    with pytest.raises(InvalidMandate, match="not signed by its issuer"):
        Mandate.load(raw)


def test_sign_failsIfSignerIsNotIssuer(user: LocalAccount) -> None:
    other = Account.from_key("0x" + "22" * 32)

    with pytest.raises(InvalidMandate):
        Mandate.sign(terms(user), other)


def test_load_failsOnMalformedInput() -> None:
    with pytest.raises(InvalidMandate, match="malformed"):
        Mandate.load('{"terms": {}, "signature": "0x00"}')


async def test_authorize_allowsWithinLimitsAndRecordAccumulates(tmp_path: Path, user: LocalAccount) -> None:
    guard = _guard(tmp_path, user)

    await guard.authorize(SELLER, "clf-test", "inference", 30)
    guard.record(SELLER, 30)
    await guard.authorize(SELLER, "clf-test", "inference", 30)
    guard.record(SELLER, 30)

    spent = guard.spent()
    assert (spent.total, spent.by_counterparty, spent.payments) == (60, {SELLER: 60}, 2)
    assert guard.remaining() == 40


@pytest.mark.parametrize(
    ("counterparty", "model", "kind", "amount", "reason"),
    [
        (SELLER, "clf-test", "inference", 31, "per-call cap"),
        (SELLER, "clf-test", "inference", 0, "must be positive"),
        (SELLER, "other-model", "inference", 10, "model 'other-model' is not allowed"),
        (SELLER, "clf-test", "training", 10, "job kind 'training' is not allowed"),
    ],
)
async def test_authorize_refusesOutOfScope(
    tmp_path: Path, user: LocalAccount, counterparty: str, model: str, kind: str, amount: int, reason: str
) -> None:
    guard = _guard(tmp_path, user)

    with pytest.raises(MandateExceeded, match=reason):
        await guard.authorize(counterparty, model, kind, amount)
    assert guard.spent().total == 0


async def test_authorize_refusesPastPerCounterpartyAndTotalBudget(tmp_path: Path, user: LocalAccount) -> None:
    guard = _guard(tmp_path, user)
    for _ in range(2):
        guard.record(SELLER, 30)

    with pytest.raises(MandateExceeded, match=f"left for {SELLER}"):
        await guard.authorize(SELLER, "clf-test", "inference", 1)
    guard.record(OTHER, 30)
    with pytest.raises(MandateExceeded, match="left of the total budget"):
        await guard.authorize(OTHER, "clf-test", "inference", 11)
    assert guard.spent().total == 90


async def test_authorize_refusesUnlistedCounterpartyAndExpiredMandate(tmp_path: Path, user: LocalAccount) -> None:
    listed = _guard(tmp_path / "a", user, allowed_counterparties=(SELLER,))
    expired = _guard(tmp_path / "b", user, now=float(EXPIRES))

    with pytest.raises(MandateExceeded, match="not listed"):
        await listed.authorize(OTHER, "clf-test", "inference", 1)
    with pytest.raises(MandateExceeded, match="expired"):
        await expired.authorize(SELLER, "clf-test", "inference", 1)
    await listed.authorize(SELLER.upper().replace("0X", "0x"), "clf-test", "inference", 1)


async def test_authorizeDeposit_refusesLockingMoreThanCanBeSpent(tmp_path: Path, user: LocalAccount) -> None:
    guard = _guard(tmp_path, user)

    await guard.authorize_deposit(SELLER, "clf-test", "inference", 60)
    with pytest.raises(MandateExceeded, match="deposit 61"):
        await guard.authorize_deposit(SELLER, "clf-test", "inference", 61)


async def test_spend_survivesRestart(tmp_path: Path, user: LocalAccount) -> None:
    guard = _guard(tmp_path, user)
    guard.record(SELLER, 30)
    guard._spend._store.close()

    again = _guard(tmp_path, user)

    assert again.spent().total == 30
    assert again.remaining() == 70


@pytest.mark.chain
async def test_channelPayer_signsNothingBeyondTheMandate(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    buyer = await guarded_buyer(
        economy, "guarded", total_budget=3 * PRICE, per_call_cap=PRICE, per_counterparty_cap=3 * PRICE
    )
    double = Buyer(buyer.probe, buyer.settlement, buyer.negotiation, buyer.payer)
    token = TokenClient(economy.conn)

    with pytest.raises(MandateExceeded, match="deposit"):
        await double.open_channel(seller, calls=10)  # 10 calls cannot fit a 3-call budget: no transaction sent
    assert await token.balance_of(buyer.settlement.account) == 10 * AGT
    assert len(buyer.payer.channels) == 0

    channel, price = await double.open_channel(seller, calls=2)
    for job in ("call-1", "call-2"):
        await double.paid_call(seller, channel, job, price)
    with pytest.raises(MandateExceeded, match="per-call cap"):
        await buyer.payer.pay(channel, PRICE + 1, "call-3")

    record = buyer.payer.channels.get(str(channel))
    assert record is not None
    assert record.cumulative == 2 * price
    assert buyer.guard.spent().total == 2 * price
    assert buyer.guard.spent().by_counterparty == {seller.keys.eth_address.lower(): 2 * price}


@pytest.mark.chain
async def test_channelPayer_refusesAMandateForAnotherAccount(economy: World, user: LocalAccount) -> None:
    buyer = await guarded_buyer(economy, "guarded")
    foreign = MandateGuard.for_agent(buyer.probe, buyer.settlement, Mandate.sign(terms(user), user))

    with pytest.raises(ValueError, match="another account"):
        ChannelPayer(buyer.probe, buyer.settlement, foreign)


async def test_forAgent_agentClockMandateExpiresOnTheAgentClock(tmp_path: Path, user: LocalAccount) -> None:
    class Agent:
        store = AgentStore(tmp_path / "store.sqlite3")
        clock = SimulatedClock(start=float(EXPIRES - 1))

    mandate = Mandate.sign(terms(user, clock="agent"), user)
    guard = MandateGuard.for_agent(Agent(), None, mandate)  # type: ignore[arg-type]  # no chain needed
    await guard.authorize(SELLER, "clf-test", "inference", 1)

    Agent.clock.advance(1)
    with pytest.raises(MandateExceeded, match="expired"):
        await guard.authorize(SELLER, "clf-test", "inference", 1)
