"""PaymentChannels on anvil: open/top-up/extend/claim/claimMany/refund, every revert, and EIP-712 parity."""

from __future__ import annotations

import pytest
from eth_account import Account

from marketplace.chain import (
    AgentRegistryClient,
    ChainConnection,
    ClaimSkipped,
    Lineage,
    LocalChain,
    ModelListing,
    Reputation,
    SignedVoucher,
    SkipReason,
    Voucher,
    VoucherDomain,
    recover_voucher_signer,
    sign_voucher,
    verify_voucher,
    voucher_digest,
)
from marketplace.chain.deploy import CHANNELS_CONFIG
from tests.contracts.conftest import AGT, Actors, block_time, clients_for, expect_revert

pytestmark = pytest.mark.chain

DEPOSIT = 10 * AGT


async def _open(conn: ChainConnection, actors: Actors, model_id: int = 0, deposit: int = DEPOSIT) -> int:
    alice = clients_for(conn, actors.alice)
    opened = await alice.channels.open_channel(actors.bob.address, deposit, await block_time(conn) + 3600, model_id)
    return opened.channel_id


async def test_openChannel_escrowsDepositAndRecordsTerms(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    before = await alice.token.balance_of(actors.alice.address)
    expiry = await block_time(conn) + 3600
    opened = await alice.channels.open_channel(actors.bob.address, DEPOSIT, expiry)
    channel = await alice.channels.get_channel(opened.channel_id)
    assert (channel.sender, channel.recipient, channel.deposit, channel.expiry) == (
        actors.alice.address,
        actors.bob.address,
        DEPOSIT,
        expiry,
    )
    assert (channel.claimed, channel.closed, channel.nonce, channel.unclaimed) == (0, False, 0, DEPOSIT)
    assert await alice.token.balance_of(actors.alice.address) == before - DEPOSIT
    assert await alice.channels.channel_count() == 1


async def test_openChannel_incrementsSenderNonce(conn: ChainConnection, actors: Actors) -> None:
    first, second = await _open(conn, actors), await _open(conn, actors)
    channels = clients_for(conn, actors.alice).channels
    assert [(await channels.get_channel(c)).nonce for c in (first, second)] == [0, 1]


async def test_openChannel_revertsOnZeroDeposit(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroDeposit", _open(conn, actors, deposit=0))


async def test_openChannel_revertsOnSelfRecipient(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    call = alice.channels.open_channel(actors.alice.address, DEPOSIT, await block_time(conn) + 60)
    await expect_revert("InvalidRecipient", call)


async def test_openChannel_revertsOnPastExpiry(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    error = await expect_revert("ExpiryTooSoon", alice.channels.open_channel(actors.bob.address, DEPOSIT, 1))
    assert error.args_values[0] == 1


async def test_openChannel_revertsOnExpiryBeforeMinimumDuration(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    expiry = await block_time(conn) + CHANNELS_CONFIG.min_channel_duration - 60
    error = await expect_revert("ExpiryTooSoon", alice.channels.open_channel(actors.bob.address, DEPOSIT, expiry))
    assert error.args_values[0] == expiry
    assert error.args_values[1] > expiry
    assert await alice.channels.min_channel_duration() == CHANNELS_CONFIG.min_channel_duration


async def test_openChannel_revertsOnUnknownModel(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownModelId", _open(conn, actors, model_id=3))


async def test_topUp_raisesDeposit(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice = clients_for(conn, actors.alice)
    await alice.channels.top_up(channel_id, 5 * AGT)
    assert (await alice.channels.get_channel(channel_id)).deposit == DEPOSIT + 5 * AGT
    assert await alice.token.balance_of(alice.channels.address) == DEPOSIT + 5 * AGT


async def test_topUp_revertsForNonSender(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    await expect_revert("NotChannelSender", clients_for(conn, actors.bob).channels.top_up(channel_id, AGT))


async def test_topUp_revertsOnZeroAmount(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    await expect_revert("ZeroDeposit", clients_for(conn, actors.alice).channels.top_up(channel_id, 0))


async def test_topUp_revertsWhenClosed(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    chain.increase_time(3600)
    alice = clients_for(conn, actors.alice)
    await alice.channels.refund(channel_id)
    await expect_revert("ChannelIsClosed", alice.channels.top_up(channel_id, AGT))


async def test_extend_movesExpiryLater(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice = clients_for(conn, actors.alice)
    expiry = (await alice.channels.get_channel(channel_id)).expiry
    await alice.channels.extend(channel_id, expiry + 100)
    assert (await alice.channels.get_channel(channel_id)).expiry == expiry + 100


async def test_extend_revertsWhenNotLater(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice = clients_for(conn, actors.alice)
    expiry = (await alice.channels.get_channel(channel_id)).expiry
    await expect_revert("InvalidExpiry", alice.channels.extend(channel_id, expiry))


async def test_extend_revertsForNonSender(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    await expect_revert("NotChannelSender", clients_for(conn, actors.bob).channels.extend(channel_id, 2**40))


async def test_extend_revertsOnUnknownChannel(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("UnknownChannel", clients_for(conn, actors.alice).channels.extend(9, 2**40))
    assert error.args_values == (9,)


async def test_claim_paysLatestCumulativeVoucherAndRecordsReceipt(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    before = await bob.token.balance_of(actors.bob.address)
    await bob.channels.claim(await alice.channels.sign(actors.alice, channel_id, 3 * AGT))
    claimed = await bob.channels.claim(await alice.channels.sign(actors.alice, channel_id, 7 * AGT))
    assert (claimed.amount, claimed.cumulative) == (4 * AGT, 7 * AGT)
    assert await bob.token.balance_of(actors.bob.address) == before + 7 * AGT
    assert (await bob.channels.get_channel(channel_id)).claimed == 7 * AGT
    assert await AgentRegistryClient(conn).reputation(actors.bob.address) == Reputation(2, 7 * AGT, 10_000)


async def test_claim_routesRoyaltiesAlongLineage(conn: ChainConnection, actors: Actors) -> None:
    carol, bob = clients_for(conn, actors.carol), clients_for(conn, actors.bob)
    base = await carol.models.register_model(ModelListing(b"\x01" * 32))
    child = await bob.models.register_model(ModelListing(b"\x02" * 32), Lineage(parents=((base.model_id, 2_500),)))
    channel_id = await _open(conn, actors, model_id=child.model_id)
    carol_before = await carol.token.balance_of(actors.carol.address)
    bob_before = await bob.token.balance_of(actors.bob.address)
    await bob.channels.claim(await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, 4 * AGT))
    assert await carol.token.balance_of(actors.carol.address) == carol_before + AGT
    assert await bob.token.balance_of(actors.bob.address) == bob_before + 3 * AGT


async def test_claim_revertsOnReplayedVoucher(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    bob = clients_for(conn, actors.bob)
    voucher = await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, 2 * AGT)
    await bob.channels.claim(voucher)
    error = await expect_revert("VoucherNotIncreasing", bob.channels.claim(voucher))
    assert error.args_values == (2 * AGT, 2 * AGT)


async def test_claim_revertsOnLowerVoucher(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    low = await alice.channels.sign(actors.alice, channel_id, AGT)
    await bob.channels.claim(await alice.channels.sign(actors.alice, channel_id, 2 * AGT))
    await expect_revert("VoucherNotIncreasing", bob.channels.claim(low))


async def test_claim_revertsAboveDeposit(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    voucher = await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, DEPOSIT + 1)
    error = await expect_revert("VoucherExceedsDeposit", clients_for(conn, actors.bob).channels.claim(voucher))
    assert error.args_values == (DEPOSIT, DEPOSIT + 1)


async def test_claim_revertsOnForeignSignature(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    forged = await clients_for(conn, actors.alice).channels.sign(actors.carol, channel_id, AGT)
    error = await expect_revert("InvalidVoucherSignature", clients_for(conn, actors.bob).channels.claim(forged))
    assert error.args_values == (channel_id,)


async def test_claim_revertsOnMalformedSignature(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    bad = SignedVoucher(Voucher(channel_id, 0, AGT), b"\x01" * 64)
    await expect_revert("InvalidVoucherSignature", clients_for(conn, actors.bob).channels.claim(bad))


async def test_claim_revertsOnWrongNonce(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    stale = await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, AGT, nonce=5)
    error = await expect_revert("VoucherNonceMismatch", clients_for(conn, actors.bob).channels.claim(stale))
    assert error.args_values == (0, 5)


async def test_claim_revertsForNonRecipient(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    voucher = await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, AGT)
    await expect_revert("NotChannelRecipient", clients_for(conn, actors.carol).channels.claim(voucher))


async def test_claim_succeedsAfterExpiryUntilRefunded(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    chain.increase_time(7200)
    await bob.channels.claim(await alice.channels.sign(actors.alice, channel_id, AGT))
    await alice.channels.refund(channel_id)
    voucher = await alice.channels.sign(actors.alice, channel_id, 2 * AGT)
    await expect_revert("ChannelIsClosed", bob.channels.claim(voucher))


async def test_claimMany_settlesSeveralChannelsInOneTransaction(conn: ChainConnection, actors: Actors) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    ids = [await _open(conn, actors) for _ in range(3)]
    before = await bob.token.balance_of(actors.bob.address)
    vouchers = [await alice.channels.sign(actors.alice, c, (i + 1) * AGT) for i, c in enumerate(ids)]
    claimed = await bob.channels.claim_many(vouchers)
    assert [c.amount for c in claimed] == [AGT, 2 * AGT, 3 * AGT]
    assert await bob.token.balance_of(actors.bob.address) == before + 6 * AGT
    assert await AgentRegistryClient(conn).reputation(actors.bob.address) == Reputation(1, 6 * AGT, 10_000)


async def test_claimMany_revertsWholeBatchOnOneBadVoucher(conn: ChainConnection, actors: Actors) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    ids = [await _open(conn, actors) for _ in range(2)]
    good = await alice.channels.sign(actors.alice, ids[0], AGT)
    bad = await alice.channels.sign(actors.alice, ids[1], DEPOSIT + 1)
    await expect_revert("VoucherExceedsDeposit", bob.channels.claim_many([good, bad]))
    assert (await bob.channels.get_channel(ids[0])).claimed == 0


async def test_claimMany_revertsOnForeignSignature(conn: ChainConnection, actors: Actors) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    ids = [await _open(conn, actors) for _ in range(2)]
    good = await alice.channels.sign(actors.alice, ids[0], AGT)
    forged = await alice.channels.sign(actors.carol, ids[1], AGT)
    error = await expect_revert("InvalidVoucherSignature", bob.channels.claim_many([good, forged]))
    assert error.args_values == (ids[1],)


async def test_claimMany_revertsOnEmptyBatch(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("BadBatch", clients_for(conn, actors.bob).channels.claim_many([]))


async def test_claimMany_skipsDuplicateVoucher(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    voucher = await clients_for(conn, actors.alice).channels.sign(actors.alice, channel_id, AGT)
    batch = await clients_for(conn, actors.bob).channels.claim_batch([voucher, voucher])
    assert [(c.channel_id, c.amount) for c in batch.claimed] == [(channel_id, AGT)]
    assert batch.skipped == (ClaimSkipped(channel_id, SkipReason.ALREADY_CLAIMED),)


async def test_claimMany_skipsRefundedChannelAndPaysTheRest(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    refunded = await _open(conn, actors)
    vouchers = [await alice.channels.sign(actors.alice, refunded, AGT)]
    chain.increase_time(3600)
    await alice.channels.refund(refunded)
    live = await _open(conn, actors)
    vouchers.append(await alice.channels.sign(actors.alice, live, 2 * AGT))
    before = await bob.token.balance_of(actors.bob.address)
    batch = await bob.channels.claim_batch(vouchers)
    assert batch.skipped == (ClaimSkipped(refunded, SkipReason.CLOSED),)
    assert [(c.channel_id, c.amount) for c in batch.claimed] == [(live, 2 * AGT)]
    assert batch.amount == 2 * AGT
    assert await bob.token.balance_of(actors.bob.address) == before + 2 * AGT
    assert await AgentRegistryClient(conn).reputation(actors.bob.address) == Reputation(1, 2 * AGT, 10_000)


async def test_claimMany_skipsVoucherAlreadyClaimedAlone(conn: ChainConnection, actors: Actors) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    ids = [await _open(conn, actors) for _ in range(2)]
    first = await alice.channels.sign(actors.alice, ids[0], 3 * AGT)
    await bob.channels.claim(first)
    older = await alice.channels.sign(actors.alice, ids[0], 2 * AGT)
    batch = await bob.channels.claim_batch([older, await alice.channels.sign(actors.alice, ids[1], AGT)])
    assert batch.skipped == (ClaimSkipped(ids[0], SkipReason.ALREADY_CLAIMED),)
    assert [c.channel_id for c in batch.claimed] == [ids[1]]
    assert (await bob.channels.get_channel(ids[0])).claimed == 3 * AGT


async def test_claimMany_recordsNoReceiptWhenEverythingSkipped(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    channel_id = await _open(conn, actors)
    voucher = await alice.channels.sign(actors.alice, channel_id, AGT)
    chain.increase_time(3600)
    await alice.channels.refund(channel_id)
    assert await bob.channels.claim_many([voucher]) == []
    assert await AgentRegistryClient(conn).reputation(actors.bob.address) == Reputation(0, 0, 0)


async def test_refund_returnsUnclaimedRestToSender(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    alice, bob = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    await bob.channels.claim(await alice.channels.sign(actors.alice, channel_id, 3 * AGT))
    before = await alice.token.balance_of(actors.alice.address)
    chain.increase_time(3600)
    refunded = await clients_for(conn, actors.carol).channels.refund(channel_id)
    assert (refunded.sender, refunded.amount) == (actors.alice.address, 7 * AGT)
    assert await alice.token.balance_of(actors.alice.address) == before + 7 * AGT
    assert await alice.token.balance_of(alice.channels.address) == 0
    assert (await alice.channels.get_channel(channel_id)).closed


async def test_refund_revertsBeforeExpiry(conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    await expect_revert("ChannelNotExpired", clients_for(conn, actors.alice).channels.refund(channel_id))


async def test_refund_revertsTwice(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    channel_id = await _open(conn, actors)
    chain.increase_time(3600)
    alice = clients_for(conn, actors.alice)
    await alice.channels.refund(channel_id)
    await expect_revert("ChannelIsClosed", alice.channels.refund(channel_id))


async def test_voucherDigest_matchesPythonEip712AndRecoversOnChain(conn: ChainConnection, actors: Actors) -> None:
    channels = clients_for(conn, actors.alice).channels
    sender = Account.create()
    for voucher in (Voucher(1, 0, 1), Voucher(2**96 - 1, 7, 123_456_789 * AGT), Voucher(0, 2**256 - 1, 0)):
        assert voucher_digest(voucher, channels.domain) == await channels.voucher_digest(voucher)
        signed = sign_voucher(sender, voucher, channels.domain)
        assert await channels.recover_signer(signed) == sender.address
        assert recover_voucher_signer(signed, channels.domain) == sender.address
        assert verify_voucher(signed, sender.address, channels.domain)


async def test_voucherDigest_bindsChainAndContract(conn: ChainConnection, actors: Actors) -> None:
    channels = clients_for(conn, actors.alice).channels
    voucher = Voucher(1, 0, AGT)
    other_chain = VoucherDomain(channels.domain.chain_id + 1, channels.address)
    other_contract = VoucherDomain(channels.domain.chain_id, actors.carol.address)
    assert voucher_digest(voucher, other_chain) != await channels.voucher_digest(voucher)
    assert voucher_digest(voucher, other_contract) != await channels.voucher_digest(voucher)
    signed = sign_voucher(actors.alice, voucher, other_chain)
    assert not verify_voucher(signed, actors.alice.address, channels.domain)
    assert not verify_voucher(SignedVoucher(voucher, b"\x00" * 65), actors.alice.address, channels.domain)
