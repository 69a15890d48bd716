"""The paid model seller against the real contracts: payment before service, and vouchers that survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agents.base import AgentDeps, RemoteError
from agents.clock import SimulatedClock
from agents.roles.buyer import BuyerAgent, BuyerLimits
from agents.roles.market import Market
from agents.roles.model_seller import ModelSellerAgent, SellerTerms, ServedModel
from agents.settings import AgentSettings
from agents.wallet import Wallet
from marketplace.blobstore import BlobStore
from marketplace.chain import ChainConnection, LocalChain, TokenClient, sign_voucher
from marketplace.chain import Voucher as ChainVoucher
from marketplace.chain.node import rpc_call
from marketplace.ml import build_model
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec
from protocols.payment import ChannelOpened, Receipt, Voucher

pytestmark = pytest.mark.chain

AGT = 10**18
PRICE, FLOOR = 10**16, 5 * 10**15
ROW = [[0.1 * i for i in range(16)]]


@dataclass
class Market2:
    """A seller and a buyer wired to one chain, with the buyer's open channel."""

    seller: ModelSellerAgent
    buyer: BuyerAgent
    buyer_market: Market
    channel_id: int
    nonce: int
    price: int


def _agent_parts(
    chain: LocalChain, conn: ChainConnection, tmp: Path, name: str
) -> tuple[AgentSettings, AgentDeps, Market]:
    wallet = Wallet.from_seed(f"test:{name}")
    rpc_call(chain.rpc_url, "anvil_setBalance", [wallet.eth_address, hex(10**20)])
    settings = AgentSettings(name=name, seed=f"test:{name}", data_dir=tmp / name)
    market = Market(conn.with_account(wallet.account), BlobStore(tmp / "blobs"))
    return settings, AgentDeps(wallet=wallet, clock=SimulatedClock()), market


def _seller(chain: LocalChain, conn: ChainConnection, tmp: Path) -> ModelSellerAgent:
    settings, deps, market = _agent_parts(chain, conn, tmp, "seller")
    return ModelSellerAgent(settings, deps, market, SellerTerms(training_price=AGT, training_floor=AGT))


def _model() -> ServedModel:
    return ServedModel("clf-test", "classifier", build_model("classifier", 3), PRICE, FLOOR)


@pytest.fixture
async def trade(chain: LocalChain, conn: ChainConnection, tmp_path: Path) -> AsyncIterator[Market2]:
    """A started seller serving one model, and a buyer who agreed a price and opened a 1 AGT channel."""
    seller = _seller(chain, conn, tmp_path)
    settings, deps, buyer_market = _agent_parts(chain, conn, tmp_path, "buyer")
    buyer = BuyerAgent(settings, deps)
    await TokenClient(conn).transfer(buyer_market.account, 5 * AGT)
    await seller.start()
    await buyer.start()
    try:
        await seller.publish_model(_model())
        deal = await buyer.negotiate(
            [seller.address],
            JobSpec(kind="inference", model_id="classifier", units=4),
            BuyerLimits(FLOOR * 4, PRICE * 4),
        )
        assert deal is not None
        listed = await buyer_market.models.get("clf-test")
        expiry = await buyer_market.chain_time() + 3600
        await buyer_market.token.approve(buyer_market.channels.address, AGT)
        opened = await buyer_market.channels.open_channel(seller.market.account, AGT, expiry, listed.chain_id)
        nonce = (await buyer_market.channels.get_channel(opened.channel_id)).nonce
        notice = ChannelOpened(
            channel_id=str(opened.channel_id),
            chain_id=1337,
            contract=buyer_market.channels.address,
            payer=buyer_market.account,
            payee=seller.market.account,
            deposit=AGT,
            expiry=expiry,
        )
        await buyer.request(seller.address, notice, Receipt)
        yield Market2(seller, buyer, buyer_market, opened.channel_id, nonce, deal.price // 4)
    finally:
        await buyer.stop()
        await seller.stop()


def _voucher(t: Market2, cumulative: int, job_id: str) -> Voucher:
    signed = sign_voucher(
        t.buyer_market.conn.account, ChainVoucher(t.channel_id, t.nonce, cumulative), t.buyer_market.channels.domain
    )
    return Voucher(
        channel_id=str(t.channel_id),
        cumulative_amount=cumulative,
        nonce=t.nonce,
        signature="0x" + signed.signature.hex(),
        job_id=job_id,
    )


async def _paid_call(t: Market2, cumulative: int, job_id: str) -> InferenceResult:
    await t.buyer.request(t.seller.address, _voucher(t, cumulative, job_id), Receipt)
    request = InferenceRequest(job_id=job_id, model_id="clf-test", inputs=ROW, price=t.price)
    return await t.buyer.request(t.seller.address, request, InferenceResult)


async def test_inference_servedOnlyAfterVoucherCoversPrice(trade: Market2) -> None:
    assert FLOOR <= trade.price <= PRICE
    result = await _paid_call(trade, trade.price, "job-1")
    assert len(result.outputs) == 1
    assert result.output_commitment.startswith("0x")


async def test_voucher_underFundedIsRefusedWithoutStateChange(trade: Market2) -> None:
    before = trade.seller.store.get(f"channel:{trade.channel_id}")
    with pytest.raises(RemoteError, match="a call costs"):
        await trade.buyer.request(trade.seller.address, _voucher(trade, trade.price - 1, "job-cheap"), Receipt)
    request = InferenceRequest(job_id="job-cheap", model_id="clf-test", inputs=ROW, price=trade.price)
    with pytest.raises(RemoteError, match="call not paid"):
        await trade.buyer.request(trade.seller.address, request, InferenceResult)
    assert trade.seller.store.get(f"channel:{trade.channel_id}") == before
    assert trade.seller.store.get("credit:job-cheap") is None
    assert await trade.seller.claim_vouchers() == []


async def test_voucher_signedByAnotherKeyIsRefused(trade: Market2) -> None:
    forged = _voucher(trade, trade.price, "job-forged")
    other = Wallet.from_seed("someone else").account
    signed = sign_voucher(
        other, ChainVoucher(trade.channel_id, trade.nonce, trade.price), trade.buyer_market.channels.domain
    )
    forged.signature = "0x" + signed.signature.hex()
    with pytest.raises(RemoteError, match="not signed by the channel's sender"):
        await trade.buyer.request(trade.seller.address, forged, Receipt)


async def test_voucher_reusedJobIdIsRefused(trade: Market2) -> None:
    await _paid_call(trade, trade.price, "job-1")
    with pytest.raises(RemoteError, match="already paid"):
        await trade.buyer.request(trade.seller.address, _voucher(trade, 2 * trade.price, "job-1"), Receipt)


async def test_claim_afterRestartPaysEveryCallServedBefore(
    trade: Market2, chain: LocalChain, conn: ChainConnection, tmp_path: Path
) -> None:
    for i in range(3):
        await _paid_call(trade, (i + 1) * trade.price, f"job-{i}")
    await trade.seller.stop()

    restarted = _seller(chain, conn, tmp_path)  # same seed, same data dir: a new process would do the same
    await restarted.start()
    try:
        await restarted.serve_registered(_model())
        token = TokenClient(conn)
        balance_before = await token.balance_of(restarted.market.account)
        claims = await restarted.claim_vouchers()
        assert [(c.channel_id, c.amount) for c in claims] == [(trade.channel_id, 3 * trade.price)]
        assert await token.balance_of(restarted.market.account) - balance_before == 3 * trade.price
        assert await restarted.claim_vouchers() == []  # nothing is claimed twice
        # a call paid before the restart cannot be served (or paid) again
        request = InferenceRequest(job_id="job-0", model_id="clf-test", inputs=ROW, price=trade.price)
        with pytest.raises(RemoteError, match="already served"):
            await trade.buyer.request(restarted.address, request, InferenceResult)
    finally:
        await restarted.stop()
        trade.seller = restarted  # the fixture stops it again harmlessly


async def test_claimPolicy_settlesOnChainOnceThresholdIsUnclaimed(trade: Market2, conn: ChainConnection) -> None:
    trade.seller.terms = SellerTerms(training_price=AGT, training_floor=AGT, claim_threshold=2 * trade.price)
    token = TokenClient(conn)
    before = await token.balance_of(trade.seller.market.account)
    await _paid_call(trade, trade.price, "job-a")
    assert trade.seller.claim_log == []
    assert trade.seller.unclaimed() == trade.price
    await _paid_call(trade, 2 * trade.price, "job-b")
    assert [sum(c.amount for c in claims) for claims, _ in trade.seller.claim_log] == [2 * trade.price]
    assert trade.seller.unclaimed() == 0
    assert await token.balance_of(trade.seller.market.account) - before == 2 * trade.price
