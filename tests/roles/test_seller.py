"""The seller role (agents.roles.seller.build) on the real contracts, with buyer doubles: payment before service,
a voucher book bound to the chain, claims that survive a restart, and attestations only for calls it served."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from agents.base import AgoraAgent
from agents.capabilities.inference import ServedCall, task_id
from agents.capabilities.payment import PayeeChannel
from agents.roles import seller as seller_role
from agents.roles.base import PUBLISH_CARD, CardPublished
from agents.roles.seller import BUILD_MODELS, BuildModels
from agents.roles.selling import CLAIM, Claimed
from agents.settlement import to_bytes32
from agents.state import Repository
from agents.wallet import Wallet
from marketplace.chain import TokenClient, sign_voucher
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain.deploy import CHANNELS_CONFIG
from protocols.commitment import verify_output_commitment
from protocols.errors import ErrorCode, ErrorReply
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.payment import ChannelOpened, Receipt, Voucher
from protocols.validation import Attestation
from tests.roles.world import CLASSIFIER, PRICE, ROWS, Buyer, World

pytestmark = pytest.mark.chain

ZERO = bytes(32)
SHORT_TTL = CHANNELS_CONFIG.min_channel_duration + 60
"""As short as PaymentChannels allows, with room for the next block's later timestamp."""


async def _open(buyer: Buyer, seller: AgoraAgent, calls: int = 10, ttl: int = 3_600) -> tuple[int, int]:
    """Agree a price with the seller and open a channel for `calls` calls; (channel id, price per call)."""
    price = await buyer.agree(seller.address)
    listed = await buyer.settlement.models.get(CLASSIFIER.id)
    channel = await buyer.payer.open(seller.address, seller.keys.eth_address, calls * price, ttl, listed.chain_id)
    return channel, price


async def _call(buyer: Buyer, seller: AgoraAgent, job_id: str, price: int) -> InferenceResult | ErrorReply:
    request = InferenceRequest(job_id=job_id, model_id=CLASSIFIER.id, inputs=ROWS, price=price)
    answer = await buyer.probe.ask(seller.address, request, (InferenceResult,))
    assert isinstance(answer, InferenceResult | ErrorReply)
    return answer


async def _paid_call(buyer: Buyer, seller: AgoraAgent, channel: int, job_id: str, price: int) -> InferenceResult:
    await buyer.payer.pay(channel, price, job_id)
    result = await _call(buyer, seller, job_id, price)
    assert isinstance(result, InferenceResult), result
    return result


def _voucher(signer: LocalAccount, buyer: Buyer, channel: int, cumulative: int, job_id: str) -> Voucher:
    record = buyer.payer.channels.get(str(channel))
    assert record is not None
    nonce = record.nonce
    signed = sign_voucher(signer, SignedAmount(channel, nonce, cumulative), buyer.settlement.channels.domain)
    return Voucher(
        channel_id=str(channel),
        cumulative_amount=cumulative,
        nonce=nonce,
        signature="0x" + signed.signature.hex(),
        job_id=job_id,
    )


def _served(seller: AgoraAgent) -> Repository[ServedCall]:
    return Repository(seller.store, "inference.served", ServedCall)


async def test_inference_unpaidCallRefusedAndNothingServed(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice = await economy.buyer("alice")
    channel, price = await _open(alice, seller)

    refused = await _call(alice, seller, "job-1", price)

    assert isinstance(refused, ErrorReply)
    assert (refused.code, "not paid" in refused.detail) == (ErrorCode.REJECTED, True)
    assert len(_served(seller)) == 0
    assert (await economy.call(seller, CLAIM)).claims == []
    result = await _paid_call(alice, seller, channel, "job-1", price)  # the refusal consumed nothing
    assert verify_output_commitment(CLASSIFIER.id, ROWS, result.outputs, result.output_commitment)
    assert len(_served(seller)) == 1


async def test_voucher_signedByOtherThanChannelSenderRefused(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    channel, price = await _open(alice, seller)
    await mallory.agree(seller.address)

    forged = _voucher(mallory.settlement.conn.account, alice, channel, price, "job-m")
    refused = await mallory.probe.ask(seller.address, forged, (Receipt,))
    stranger = _voucher(Wallet.from_seed("stranger").account, alice, channel, price, "job-s")
    refused_too = await alice.probe.ask(seller.address, stranger, (Receipt,))

    assert isinstance(refused, ErrorReply)
    assert refused.code == ErrorCode.BAD_SIGNATURE
    assert isinstance(refused_too, ErrorReply)
    assert refused_too.code == ErrorCode.BAD_SIGNATURE
    assert isinstance(await _call(mallory, seller, "job-m", price), ErrorReply)
    assert isinstance(await _call(alice, seller, "job-s", price), ErrorReply)
    assert (await economy.call(seller, CLAIM)).claims == []


async def test_credit_otherBuyersJobIdNotUsable(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    alice_channel, price = await _open(alice, seller)
    mallory_channel, mallory_price = await _open(mallory, seller)
    await alice.payer.pay(alice_channel, price, "job-1")

    stolen = await _call(mallory, seller, "job-1", mallory_price)

    assert isinstance(stolen, ErrorReply)
    assert "not paid" in stolen.detail
    await _paid_call(alice, seller, alice_channel, "job-2", price)
    assert isinstance(await _call(alice, seller, "job-1", price), InferenceResult)
    # Mallory's own payment for the same job id is hers, not blocked by (nor spending) Alice's.
    await _paid_call(mallory, seller, mallory_channel, "job-1", mallory_price)
    claimed = await economy.call(seller, CLAIM)
    assert sorted(claimed.claims[0][0]) == sorted([(alice_channel, 2 * price), (mallory_channel, mallory_price)])


async def test_channelOpened_repeatedKeepsCumulativeAmount(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice = await economy.buyer("alice")
    channel, price = await _open(alice, seller)
    for job in ("job-1", "job-2"):
        await _paid_call(alice, seller, channel, job, price)
    record = alice.payer.channels.get(str(channel))
    assert record is not None
    notice = ChannelOpened(
        channel_id=str(channel),
        chain_id=alice.settlement.conn.deployment.chain_id,
        contract=alice.settlement.channels.address,
        payer=alice.account,
        payee=seller.keys.eth_address,
        deposit=record.deposit,
        expiry=record.expiry,
    )

    again = await alice.probe.ask(seller.address, notice, (Receipt,))
    replayed = await alice.probe.ask(
        seller.address, _voucher(alice.settlement.conn.account, alice, channel, price, "job-3"), (Receipt,)
    )

    assert isinstance(again, Receipt)
    assert again.cumulative_amount == 2 * price
    assert isinstance(replayed, ErrorReply), "a voucher below the running total bought a call"
    assert isinstance(await _call(alice, seller, "job-3", price), ErrorReply)
    assert (await economy.call(seller, CLAIM)).claims[0][0] == [(channel, 2 * price)]


async def test_claim_afterRestartClaimsWhatWasPaidBefore(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice = await economy.buyer("alice")
    channel, price = await _open(alice, seller)
    for i in range(3):
        await _paid_call(alice, seller, channel, f"job-{i}", price)
    await economy.stop(seller)

    restarted = await economy.role(seller_role, "seller")  # same seed and data dir: a new process does the same
    token = TokenClient(economy.conn)
    before = await token.balance_of(restarted.keys.eth_address)
    claimed: Claimed = await economy.call(restarted, CLAIM)

    assert [pairs for pairs, _ in claimed.claims] == [[(channel, 3 * price)]]
    assert await token.balance_of(restarted.keys.eth_address) - before == 3 * price
    replay = await _call(alice, restarted, "job-0", price)
    assert isinstance(replay, ErrorReply)
    assert replay.code == ErrorCode.REPLAYED
    assert [pairs for pairs, _ in (await economy.call(restarted, CLAIM)).claims] == [[(channel, 3 * price)]]


async def test_claim_skipsChannelItsSenderRefunded(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    alice, bob = await economy.buyer("alice"), await economy.buyer("bob")
    short, alice_price = await _open(alice, seller, ttl=SHORT_TTL)
    long, bob_price = await _open(bob, seller)
    await _paid_call(alice, seller, short, "job-a", alice_price)
    for job in ("job-b1", "job-b2"):
        await _paid_call(bob, seller, long, job, bob_price)
    economy.chain.increase_time(SHORT_TTL + 60)
    refunds = await alice.payer.refund_expired()
    assert [r.channel_id for r in refunds] == [short]

    token = TokenClient(economy.conn)
    before = await token.balance_of(seller.keys.eth_address)
    claimed: Claimed = await economy.call(seller, CLAIM)

    assert [pairs for pairs, _ in claimed.claims] == [[(long, 2 * bob_price)]]
    assert await token.balance_of(seller.keys.eth_address) - before == 2 * bob_price
    book = Repository(seller.store, "payee.channel", PayeeChannel)
    refunded, paid = book.get(str(short)), book.get(str(long))
    assert refunded is not None
    assert (refunded.closed, refunded.claimed) == (True, 0)  # left out of the batch, not counted as claimed
    assert paid is not None
    assert paid.claimed == 2 * bob_price
    assert len((await economy.call(seller, CLAIM)).claims) == 1  # nothing left to claim a second time


async def test_publishCard_listsServedModels(economy: World) -> None:
    seller = await economy.role(seller_role, "seller", training_price=PRICE * 100)
    first: CardPublished = await economy.call(seller, PUBLISH_CARD)
    await economy.call(seller, BUILD_MODELS, BuildModels(models=[CLASSIFIER], world_seed=7))

    card: CardPublished = await economy.call(seller, PUBLISH_CARD)
    entry = await economy.settlement(seller.keys).require_registry().get(seller.address)

    assert first.card.offerings == []
    offered = {(o.model_id, o.job_kind, o.price_per_unit) for o in card.card.offerings}
    assert offered == {(CLASSIFIER.id, "inference", PRICE)}  # classifiers are not fine-tuned for escrow
    assert (card.card.role, card.card.owner) == ("seller", seller.keys.eth_address)
    assert entry is not None
    assert entry.card.offerings == card.card.offerings


async def test_attester_attestsOnlyCallServedToThatBuyerWithThatCommitment(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    await economy.stake(seller)  # a seller's attestation is slashable only with a bond
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    channel, price = await alice.open_channel(seller)
    first = await alice.paid_call(seller, channel, "job-0", price)
    call = await alice.paid_call(seller, channel, "job-1", price)
    other_commitment = call.audit(claimed_commitment="0x" + "ab" * 32)
    other_payment = call.audit(cumulative_amount=first.cumulative)  # paid, but by the voucher of another call
    staking = alice.settlement.staking

    not_yours = await mallory.probe.ask(seller.address, call.audit(), (Attestation,))
    not_that = await alice.probe.ask(seller.address, other_commitment, (Attestation,))
    not_paid_so = await alice.probe.ask(seller.address, other_payment, (Attestation,))
    assert isinstance(not_yours, ErrorReply)
    assert "no such call" in not_yours.detail
    assert isinstance(not_that, ErrorReply)
    assert "commitment" in not_that.detail
    assert isinstance(not_paid_so, ErrorReply)
    assert "payment" in not_paid_so.detail
    for task in (call.task, first.task, task_id(call.model_chain_id, call.commitment, channel, first.cumulative)):
        assert await staking.attestation_of(task, seller.keys.eth_address) == ZERO

    attested = await alice.probe.ask(seller.address, call.audit(), (Attestation,), wait=30)

    assert isinstance(attested, Attestation)
    assert attested.valid
    assert attested.recomputed_commitment == call.commitment
    assert call.task == task_id(call.model_chain_id, call.commitment, channel, 2 * price)
    assert await staking.attestation_of(call.task, seller.keys.eth_address) == to_bytes32(call.commitment)
    assert await staking.attestation_of(first.task, seller.keys.eth_address) == ZERO  # only the call asked about
