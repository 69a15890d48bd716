"""Attacks on reputation: buying a rank with a sybil's dust payment, with volume paid to oneself, with receipts
from a recorder the deployer appoints after deployment, or with a ring of funded addresses.

Payments are real channel claims and escrow jobs on anvil; the registry reads them back from the chain
(ChainReputation) and ranks the agents in its store, as `agora registry serve` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from marketplace.chain import (
    AgentRegistryClient,
    AgentRole,
    ChainConnection,
    ChannelsClient,
    EscrowTerms,
    LocalChain,
    SignedVoucher,
    TokenClient,
)
from marketplace.chain import Reputation as ChainAggregate
from marketplace.registry import RegistryStore, Reputation, SearchQuery
from marketplace.registry.reputation import ChainReputation, ReputationPolicy
from tests.contracts.conftest import AGT, Actors, block_time, clients_for, expect_revert
from tests.registry.conftest import identity, make_card

pytestmark = pytest.mark.chain

TOP_RANK = 9_000
"""Rank score 90 of 100, in the basis points the registry reports."""
POLICY = ReputationPolicy()
GAS_MONEY = 10**17


@dataclass(frozen=True)
class Payment:
    """A voucher a payer signed to a seller, and the gas the payer's side of it cost."""

    voucher: SignedVoucher
    gas: int


async def _payer(conn: ChainConnection, name: str, amount: int) -> tuple[LocalAccount, int]:
    """A fresh address funded by the treasury with gas money and `amount` AGT, approved for channels; and its gas."""
    payer: LocalAccount = Account.from_key(keccak(text=f"agora-reputation-attack-{name}"))
    gas = int((await conn.send_value(payer.address, GAS_MONEY))["gasUsed"])
    gas += int((await TokenClient(conn).transfer(payer.address, amount))["gasUsed"])
    own = TokenClient(conn.with_account(payer))
    gas += int((await own.approve(conn.deployment.address("PaymentChannels"), amount))["gasUsed"])
    return payer, gas


async def _pay(conn: ChainConnection, payer: LocalAccount, seller: str, amount: int) -> Payment:
    """`payer` opens a channel of `amount` to `seller` and signs a voucher for all of it."""
    channels = ChannelsClient(conn.with_account(payer))
    opened = await channels.open_channel(seller, amount, await block_time(conn) + 86_400)
    assert channels.last_receipt is not None
    return Payment(await channels.sign(payer, opened.channel_id, amount), int(channels.last_receipt["gasUsed"]))


async def _paid_by_many(conn: ChainConnection, seller: LocalAccount, tag: str, payers: int, each: int) -> None:
    """`payers` distinct fresh addresses pay `each` to seller, claimed in one batch."""
    vouchers = []
    for i in range(payers):
        payer, _ = await _payer(conn, f"{tag}-{i}", each)
        vouchers.append((await _pay(conn, payer, seller.address, each)).voucher)
    await ChannelsClient(conn.with_account(seller)).claim_many(vouchers)


async def _ranked(conn: ChainConnection, tmp_path: Path, sellers: list[tuple[str, LocalAccount]]) -> list[str]:
    """Seller names in the order registry search ranks them, reputation read from the chain.

    Cards share one price; later ones have the newer heartbeat, which wins ties.
    """
    store = await RegistryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    source = ChainReputation(AgentRegistryClient(conn))
    names: dict[str, str] = {}
    try:
        now = time.time()
        for i, (name, owner) in enumerate(sellers):
            agent = identity(f"reputation-attack-{name}")
            await AgentRegistryClient(conn.with_account(owner)).register(agent.address, AgentRole.SELLER)
            await store.import_cards([make_card(agent, owner=owner.address)], now + i, ttl=600)
            names[agent.address] = name
        for _, owner in sellers:
            reputation = await source.reputation(owner.address)
            await store.set_reputation(owner.address.lower(), reputation, await source.vouched_agent(owner.address))
        page, _ = await store.search(SearchQuery(role="seller"), now + len(sellers))
        return [names[entry.card.address] for entry in page]
    finally:
        await store.close()


async def test_oneWeiClaimFromSybil_doesNotBuyTopScore(
    chain: LocalChain, conn: ChainConnection, actors: Actors, tmp_path: Path
) -> None:
    """Carol has a second address of hers pay her 1 wei and claims it; Bob was paid 5 AGT by each of six buyers.

    Before: every channel claim scored 100, so Carol's one dust claim read as a perfect 10_000, tied Bob's,
    and her newer heartbeat ranked her first. Now a dust payment scores nothing and Bob ranks first.
    """
    await _paid_by_many(conn, actors.bob, "honest", payers=6, each=5 * AGT)
    sybil, _ = await _payer(conn, "sybil", 1)
    payment = await _pay(conn, sybil, actors.carol.address, 1)
    await ChannelsClient(conn.with_account(actors.carol)).claim(payment.voucher)

    source = ChainReputation(AgentRegistryClient(conn))
    carol = await source.reputation(actors.carol.address)
    assert (carol.count, carol.volume) == (1, 1)
    assert carol.score == 0
    assert (await source.reputation(actors.bob.address)).score > 0
    assert await _ranked(conn, tmp_path, [("bob", actors.bob), ("carol", actors.carol)]) == ["bob", "carol"]


async def test_selfDealing_singleCounterpartyDoesNotReachTopRank(
    chain: LocalChain, conn: ChainConnection, actors: Actors, tmp_path: Path
) -> None:
    """Dave, Carol's own second account, pays her 10_000 AGT in 20 claims; twelve buyers paid Bob 5 AGT each.

    Before: the claims scored 100 each, a perfect 10_000 like Bob's, and Carol's newer heartbeat ranked her
    first. Now one counterparty's volume saturates far below a top rank, and Bob's 60 AGT from twelve
    distinct payers outranks Carol's 10_000 AGT from one.
    """
    await _paid_by_many(conn, actors.bob, "honest", payers=12, each=5 * AGT)
    dave = ChannelsClient(conn.with_account(actors.dave))
    total = 10_000 * AGT
    channel = (await dave.open_channel(actors.carol.address, total, await block_time(conn) + 86_400)).channel_id
    carol = ChannelsClient(conn.with_account(actors.carol))
    for step in range(1, 21):
        await carol.claim(await dave.sign(actors.dave, channel, total * step // 20))

    source = ChainReputation(AgentRegistryClient(conn))
    self_dealt = await source.reputation(actors.carol.address)
    honest = await source.reputation(actors.bob.address)
    assert (self_dealt.count, self_dealt.volume) == (20, total)
    assert self_dealt.score == POLICY.score([POLICY.payer_cap]) < TOP_RANK
    assert self_dealt.score < honest.score
    assert await _ranked(conn, tmp_path, [("bob", actors.bob), ("carol", actors.carol)]) == ["bob", "carol"]


async def test_escrowSelfDealing_singleClientDoesNotReachTopRank(conn: ChainConnection, actors: Actors) -> None:
    """Alice, Carol's accomplice, buys five 100 AGT jobs from her that a colluding validator scores 100.

    Before: the receipts averaged a perfect 10_000. Now they are Alice's volume alone, capped like any
    single counterparty's.
    """
    alice, carol, evaluator = (clients_for(conn, a) for a in (actors.alice, actors.carol, actors.val1))
    budget = 100 * AGT
    for _ in range(5):
        spec = EscrowTerms(actors.carol.address, actors.val1.address, await block_time(conn) + 3_600, budget)
        job_id = (await alice.escrow.create_job(spec)).job_id
        await alice.escrow.fund(job_id, budget)
        await carol.escrow.submit(job_id, b"\x11" * 32)
        await evaluator.escrow.complete(job_id, b"\x22" * 32, 100)

    reputation = await ChainReputation(AgentRegistryClient(conn)).reputation(actors.carol.address)
    assert (reputation.count, reputation.volume) == (5, 5 * budget)
    assert reputation.score == POLICY.score([POLICY.payer_cap]) < TOP_RANK


async def test_recorderAppointedByOwner_cannotWriteReputation(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """The deployer's key (AgentRegistry's owner at deployment) tries to make itself, then a contract it
    controls, a reputation recorder, and to take the registry's ownership back.

    Before: the owner could call setRecorder(any address, true) at any time and write Carol 10_000 AGT of
    receipts no token backed, which AgentRegistry's aggregates (what any other reader of the chain sees)
    scored a perfect 10_000. Now the deployment fixes the recorders to JobEscrow and PaymentChannels and gives
    up ownership in the same call: every change reverts, and the aggregates hold only paid receipts.
    """
    deployer = AgentRegistryClient(conn)  # signs as the treasury, which deployed the set
    assert deployer.conn.account.address == chain.deployment.deployer
    await expect_revert("RecordersAlreadyFrozen", deployer.add_recorder(chain.deployment.address("AdCampaigns")))
    await expect_revert("RecordersAlreadyFrozen", deployer.freeze_recorders())
    take_back = conn.send(deployer.contract.functions.transferOwnership(chain.treasury.address))
    await expect_revert("OwnableUnauthorizedAccount", take_back)
    forged = deployer.record_receipt(actors.carol.address, 100, 10_000 * AGT, b"\x01" * 32)
    await expect_revert("NotRecorder", forged)

    assert await deployer.reputation(actors.carol.address) == ChainAggregate(0, 0, 0)
    assert await ChainReputation(deployer).reputation(actors.carol.address) == Reputation()
    await deployer.require_recorders([chain.deployment.address(name) for name in ("JobEscrow", "PaymentChannels")])


async def test_sybilRing_needsThirtyFiveFundedPayersForTopRank(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """Carol funds 35 fresh addresses with 9 AGT each and has each pay her: the purchase docs/reputation.md prices.

    Before: any one claim scored a perfect 10_000. Now 34 such payers stay below rank 90, the 35th crosses it
    for about 9.7M gas, and a half-life later the bought rank is gone.
    """
    gas, vouchers = 0, []
    for i in range(35):
        payer, funding = await _payer(conn, f"ring-{i}", 9 * AGT)
        payment = await _pay(conn, payer, actors.carol.address, 9 * AGT)
        gas += funding + payment.gas
        vouchers.append(payment.voucher)
    carol = ChannelsClient(conn.with_account(actors.carol))
    source = ChainReputation(AgentRegistryClient(conn))
    await carol.claim_many(vouchers[:34])
    assert carol.last_receipt is not None
    gas += int(carol.last_receipt["gasUsed"])
    assert (await source.reputation(actors.carol.address)).score < TOP_RANK

    await carol.claim(vouchers[34])
    gas += int(carol.last_receipt["gasUsed"])
    bought = await source.reputation(actors.carol.address)
    assert (bought.count, bought.volume, bought.score) == (35, 315 * AGT, TOP_RANK)
    assert gas < 10_000_000

    chain.increase_time(int(POLICY.half_life))
    assert (await source.reputation(actors.carol.address)).score < TOP_RANK
