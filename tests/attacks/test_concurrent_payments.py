"""Attack on a seller that handles messages concurrently (scenarios with `concurrency` above 1): two vouchers
raising the channel to the same total, sent at once under two job ids, to buy two calls for the price of one.

Pricing that awaits is simulated, so both vouchers are inside the handler at once. The seller's payment book
reads the channel's total again after its last await and writes it before the next one, so of two vouchers
against the same total exactly one is credited, whatever order the tasks run in (without the second read,
both were credited).
"""

from __future__ import annotations

import asyncio

import pytest

from agents.capabilities.kit import composed
from agents.capabilities.payment import ChannelPayee
from agents.roles import seller as seller_role
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain import sign_voucher
from protocols.errors import ErrorReply
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.payment import Receipt, Voucher
from tests.attacks.agent_world import chain, economy  # noqa: F401  # fixtures, by name
from tests.roles.world import CLASSIFIER, ROWS, World

pytestmark = pytest.mark.chain


async def test_two_vouchers_on_one_total_sent_at_once_buy_one_call(economy: World) -> None:  # noqa: F811
    seller = await economy.seller_with_model(seller_role, concurrent=True)
    (payee,) = [c for c in composed(seller) if isinstance(c, ChannelPayee)]
    pricing = payee.price_of

    async def slow_price_of(buyer: str, model_chain_id: int) -> int:
        await asyncio.sleep(0.05)  # a pricing that awaits (a registry or chain read): both vouchers are inside at once
        return await pricing(buyer, model_chain_id)

    payee.price_of = slow_price_of
    buyer = await economy.buyer("buyer")
    channel, price = await buyer.open_channel(seller, calls=10)
    record = buyer.payer.channels.get(str(channel))
    assert record is not None
    signed = sign_voucher(
        buyer.settlement.conn.account, SignedAmount(channel, record.nonce, price), buyer.settlement.channels.domain
    )
    vouchers = [
        Voucher(
            channel_id=str(channel),
            cumulative_amount=price,
            nonce=record.nonce,
            signature="0x" + signed.signature.hex(),
            job_id=job,
        )
        for job in ("job-a", "job-b")
    ]
    replies = await asyncio.gather(*(buyer.probe.ask(seller.address, v, (Receipt,)) for v in vouchers))
    receipts = [r for r in replies if isinstance(r, Receipt)]
    assert len(receipts) == 1, replies
    assert next(r for r in replies if isinstance(r, ErrorReply)).code == "rejected"
    served = []
    for job in ("job-a", "job-b"):
        request = InferenceRequest(job_id=job, model_id=CLASSIFIER.id, inputs=ROWS, price=price)
        served.append(isinstance(await buyer.probe.ask(seller.address, request, (InferenceResult,)), InferenceResult))
    assert served.count(True) == 1
    assert served[["job-a", "job-b"].index(receipts[0].job_id)]  # the credited job is the one served
