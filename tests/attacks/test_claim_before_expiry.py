"""Attack on a seller's payment book: pay for calls, be served, then refund the whole channel at expiry.

A real seller role (default options: it is never told to claim) serves a buyer double's paid calls on anvil;
the buyer then waits for expiry and refunds. Chain time is moved; the seller's own expiry watch must claim first.
"""

from __future__ import annotations

import asyncio

import pytest

from agents.capabilities.payment import ChannelPayee, ExpiryClaims
from agents.roles import seller as seller_role
from agents.testing.doubles import Probe
from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.chain.node import rpc_call
from tests.attacks.agent_world import chain, economy
from tests.roles.world import World

pytestmark = pytest.mark.chain

CALLS = 4
TTL = 1_900
"""Just above PaymentChannels' 30-minute minimum."""
FAST = {"check_every": 0.2}
"""The default policy, checked every 0.2 s of wall time instead of 30 s (chain time is what the test moves)."""


async def _serve_then_refund(chain: LocalChain, economy: World, options: dict[str, object]) -> tuple[int, int, int]:
    """A buyer pays and makes CALLS calls, moves chain time to within the default margin of expiry, lets the
    seller's watch run, then waits for expiry and refunds; (seller earned, buyer spent, price)."""
    seller = await economy.seller_with_model(seller_role, **options)
    buyer = await economy.buyer("buyer")
    token = TokenClient(economy.conn)
    seller0, buyer0 = await token.balance_of(seller.keys.eth_address), await token.balance_of(buyer.account)
    channel, price = await buyer.open_channel(seller, calls=CALLS, ttl=TTL)
    for i in range(CALLS):
        await buyer.paid_call(seller, channel, f"job-{i}", price)
    expiry = (await buyer.settlement.channels.get_channel(channel)).expiry
    now = int(rpc_call(chain.rpc_url, "eth_getBlockByNumber", ["latest", False])["timestamp"], 16)  # type: ignore[index]
    chain.increase_time(expiry - now - ExpiryClaims().min_margin + 30)  # 30 s into the claim window
    for _ in range(50):  # up to 10 s of wall time for the seller's watch (0.2 s period) to act
        if (await buyer.settlement.channels.get_channel(channel)).unclaimed == 0:
            break
        await asyncio.sleep(0.2)
    chain.increase_time(ExpiryClaims().min_margin)
    await buyer.payer.refund_expired()
    seller1, buyer1 = await token.balance_of(seller.keys.eth_address), await token.balance_of(buyer.account)
    return seller1 - seller0, buyer0 - buyer1, price


async def test_buyer_refunding_at_expiry_cannot_take_back_served_calls(
    chain: LocalChain, conn: ChainConnection, economy: World
) -> None:
    """Before: nothing claimed before expiry unless the operator said `claim` (off by default), so the buyer's
    refund took back every served call. Now the seller, left alone, claims within the margin of expiry."""
    earned, spent, price = await _serve_then_refund(chain, economy, {"claim_before_expiry": FAST})
    assert earned == spent == CALLS * price


async def test_seller_without_expiry_watch_loses_served_calls_to_the_refund(
    chain: LocalChain, conn: ChainConnection, economy: World
) -> None:
    """The attack as it worked before, with the watch turned off: served calls, refunded in full."""
    earned, spent, price = await _serve_then_refund(chain, economy, {"claim_before_expiry": None})
    assert price > 0
    assert earned == spent == 0


async def test_voucher_after_the_claim_point_is_refused(
    chain: LocalChain, conn: ChainConnection, economy: World
) -> None:
    """A voucher arriving once the channel was claimed for expiry could not be claimed in time: refused."""
    seller = await economy.seller_with_model(seller_role, claim_before_expiry=FAST)
    buyer = await economy.buyer("buyer")
    channel, price = await buyer.open_channel(seller, calls=CALLS, ttl=TTL)
    await buyer.paid_call(seller, channel, "job-0", price)
    chain.increase_time(TTL - ExpiryClaims().min_margin + 10)
    for _ in range(50):
        if (await buyer.settlement.channels.get_channel(channel)).unclaimed < (CALLS - 1) * price + price:
            break
        await asyncio.sleep(0.2)
    with pytest.raises(Exception, match="about to expire"):
        await buyer.payer.pay(channel, price, "job-1")


def test_margin_scales_with_block_time() -> None:
    policy = ExpiryClaims()
    assert [policy.margin(t) for t in (0.0, 2.0, 12.0, 20.0, 60.0)] == [300, 300, 300, 500, 1_500]
    assert ExpiryClaims(check_every=400).margin(1.0) == 800  # never closer than two checks


async def test_payee_measures_block_time_from_the_chain(
    chain: LocalChain, conn: ChainConnection, economy: World
) -> None:
    """On a chain with 20 s blocks, the payee claims 500 s (25 blocks) before expiry, not the 300 s floor."""
    probe = Probe.create(economy.workdir / "payee", name="payee")
    economy.started.append(probe)

    async def no_price(buyer: str, model: int) -> int:
        raise AssertionError("not asked")

    payee = ChannelPayee(probe, economy.settlement(probe.keys), no_price)
    rpc_call(chain.rpc_url, "anvil_setBlockTimestampInterval", [20])
    try:
        chain.mine(40)
        assert await payee.block_time() == 20.0
        assert await payee.margin() == 500
    finally:
        rpc_call(chain.rpc_url, "anvil_removeBlockTimestampInterval")
