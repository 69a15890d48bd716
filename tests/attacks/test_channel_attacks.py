"""Attacks on payment channels: a refunded channel poisoning a claim batch, a channel too short to claim."""

from __future__ import annotations

import pytest

from marketplace.chain import ChainConnection, ClaimSkipped, LocalChain, SkipReason
from tests.contracts.conftest import AGT, Actors, block_time, clients_for, expect_revert

pytestmark = pytest.mark.chain

DEPOSIT = 10 * AGT


async def test_refunded_channel_does_not_block_claim_many(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """A buyer refunds its expired channel while the seller holds a voucher of it in its next batch.

    Before: claimMany reverted with ChannelIsClosed, so the batch, and every other buyer's payment in it,
    failed until the seller found and dropped the voucher. Now the refunded channel is skipped and the
    rest is paid.
    """
    buyer, seller = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    short = (await buyer.channels.open_channel(actors.bob.address, DEPOSIT, await block_time(conn) + 3_600)).channel_id
    long = (await buyer.channels.open_channel(actors.bob.address, DEPOSIT, await block_time(conn) + 86_400)).channel_id
    vouchers = [
        await buyer.channels.sign(actors.alice, short, AGT),
        await buyer.channels.sign(actors.alice, long, 2 * AGT),
    ]
    chain.increase_time(3_600)
    await buyer.channels.refund(short)
    before = await seller.token.balance_of(actors.bob.address)
    batch = await seller.channels.claim_batch(vouchers)
    assert batch.skipped == (ClaimSkipped(short, SkipReason.CLOSED),)
    assert [(c.channel_id, c.amount) for c in batch.claimed] == [(long, 2 * AGT)]
    assert await seller.token.balance_of(actors.bob.address) == before + 2 * AGT


async def test_channel_expiring_within_a_minute_is_refused(conn: ChainConnection, actors: Actors) -> None:
    """A buyer opens a channel that expires 61 s later, is served, and refunds before the seller claims.

    Before: any future expiry was accepted. Now a channel lasts at least minChannelDuration.
    """
    buyer = clients_for(conn, actors.alice)
    call = buyer.channels.open_channel(actors.bob.address, DEPOSIT, await block_time(conn) + 61)
    await expect_revert("ExpiryTooSoon", call)
