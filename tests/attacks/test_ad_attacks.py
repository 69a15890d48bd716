"""Attacks on the ad market, against real agents, contracts and Groth16 proofs.

A forged or malformed creative, a commitment riding on someone else's payment, on a replayed payment or on no
payment, a root notice from a stranger, and claims handed to the relay with a tampered proof, a redirected payee,
an unpublished root, malformed words or a burned nullifier: each is refused with a typed error and leaves no
trace (nothing kept, no leaf added, nothing queued, no gas spent). A relay that rewrote the payee itself would
hit InvalidProof on chain (tests/contracts/test_ad_campaigns.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from agents.base import AgoraAgent
from agents.capabilities.ads.campaign import CampaignPlan, CampaignPlans, Recipients
from agents.capabilities.ads.merchant import Book
from agents.capabilities.ads.relay import Queued
from agents.capabilities.ads.viewer import Conversion, KnownCreative
from agents.capabilities.control import Empty
from agents.roles import advertiser as advertiser_role
from agents.roles import merchant as merchant_role
from agents.roles import relay as relay_role
from agents.roles import user as user_role
from agents.roles.advertiser import ANNOUNCE_CREATIVES, CREATE_CAMPAIGNS
from agents.roles.merchant import PUBLISH_ROOTS
from agents.roles.relay import RELAY_CLAIMS
from agents.roles.user import SHOP_ADS
from agents.state import Repository
from marketplace.chain import TokenClient
from marketplace.zk import ConversionSecret, Prover, circuit_inputs
from marketplace.zk.build import ensure_built
from marketplace.zk.merkle import MerkleTree
from protocols.ads import (
    ClaimRelay,
    ClaimsQueued,
    CommitmentAccepted,
    ConversionCommitment,
    Creative,
    CreativeAnnounce,
    CreativeReceived,
    RelayedClaim,
    RootNotice,
    RootReceived,
    purchase_text,
)
from protocols.errors import ErrorCode, ErrorReply
from tests.attacks import agent_world
from tests.roles.world import AGT, Buyer, World

pytestmark = [pytest.mark.chain, pytest.mark.slow]

chain, economy = agent_world.chain, agent_world.economy
"""The attack package's fixtures: the session chain rolled back per test, and a World of real roles."""

PRICE = 10**16
PAYOUT = AGT // 4
FRESH_PAYEE = "0x00000000000000000000000000000000000fee01"


@dataclass
class Market:
    """A live campaign of an advertiser at a shop, a user that holds its creative, a relay and a stranger."""

    shop: AgoraAgent
    relay: AgoraAgent
    user: AgoraAgent
    campaign_id: int
    creative: Creative
    stranger: Buyer


async def _market(economy: World) -> Market:
    shop = await economy.role(merchant_role, "shop", shop={"price": PRICE, "min_leaves": 1})
    relay = await economy.role(relay_role, "relay")
    advertiser = await economy.role(advertiser_role, "advertiser", tokens=5 * AGT)
    viewer = {"enabled": True, "shopper_id": 1, "purchases": 1}
    user = await economy.role(user_role, "user", tokens=AGT, ads=viewer, seed=3)
    plan = CampaignPlan(
        headline="Autumn picks", items=[3, 5, 8], merchant=shop.address, merchant_account=shop.keys.eth_address,
        price=PRICE, budget=2 * AGT, payout=PAYOUT, duration=86_400,
    )  # fmt: skip
    ids = (await economy.call(advertiser, CREATE_CAMPAIGNS, CampaignPlans(plans=[plan]))).ids
    await economy.call(advertiser, ANNOUNCE_CREATIVES, Recipients(agents=[user.address]))
    known = Repository(user.store, "ads.creative", KnownCreative).get(str(ids[0]))
    assert known is not None
    stranger = await economy.buyer("stranger", tokens=AGT)
    return Market(shop, relay, user, ids[0], Creative.parse_obj(known.creative), stranger)


def _leaves(shop: AgoraAgent, campaign_id: int) -> list[str]:
    book = Repository(shop.store, "ads.book", Book).get(str(campaign_id))
    return [] if book is None else book.leaves


async def _paid_commitment(m: Market, payer: Buyer, signer: Buyer | None = None, tx: str | None = None) -> object:
    """`payer` pays the shop (unless `tx` is given) and `signer` (default: payer) hands over a fresh commitment."""
    if tx is None:
        receipt = await TokenClient(payer.settlement.conn).transfer(m.shop.keys.eth_address, PRICE)
        tx = "0x" + bytes(receipt["transactionHash"]).hex()
    commitment = str(ConversionSecret.new(m.campaign_id).commitment)
    text = purchase_text(m.campaign_id, commitment, tx, m.shop.address)
    key = (signer or payer).settlement.conn.account.key
    signature = "0x" + bytes(Account.sign_message(encode_defunct(text=text), key).signature).hex()
    message = ConversionCommitment(campaign_id=m.campaign_id, commitment=commitment, payment_tx=tx, signature=signature)
    return await (signer or payer).probe.ask(m.shop.address, message, (CommitmentAccepted,), wait=15)


async def test_forgedCreative_refusedAndNotKept(economy: World) -> None:
    m = await _market(economy)
    forged = m.creative.copy(update={"merchant": m.stranger.address})  # conversions to the attacker's shop
    other = await economy.role(user_role, "other", ads={"enabled": True}, seed=4)
    reply = await m.stranger.probe.ask(other.address, CreativeAnnounce(campaign_id=m.campaign_id, creative=forged),
                                       (CreativeReceived,))  # fmt: skip
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.REJECTED
    assert len(Repository(other.store, "ads.creative", KnownCreative)) == 0
    unknown = await m.stranger.probe.ask(other.address, CreativeAnnounce(campaign_id=99, creative=m.creative),
                                         (CreativeReceived,))  # fmt: skip
    assert isinstance(unknown, ErrorReply)
    assert unknown.code == ErrorCode.REJECTED
    malformed = m.creative.copy(update={"targeting": [1, 2, 3]})
    bad = await m.stranger.probe.ask(other.address, CreativeAnnounce(campaign_id=m.campaign_id, creative=malformed),
                                     (CreativeReceived,))  # fmt: skip
    assert isinstance(bad, ErrorReply)
    assert bad.code == ErrorCode.MALFORMED
    assert len(Repository(other.store, "ads.creative", KnownCreative)) == 0
    # Forwarded unchanged by anyone, the real creative is as good as the advertiser's.
    ok = await m.stranger.probe.ask(other.address, CreativeAnnounce(campaign_id=m.campaign_id, creative=m.creative),
                                    (CreativeReceived,))  # fmt: skip
    assert isinstance(ok, CreativeReceived)


async def test_commitment_replayedPaymentRefused(economy: World) -> None:
    m = await _market(economy)
    receipt = await TokenClient(m.stranger.settlement.conn).transfer(m.shop.keys.eth_address, PRICE)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    assert isinstance(await _paid_commitment(m, m.stranger, tx=tx), CommitmentAccepted)
    replay = await _paid_commitment(m, m.stranger, tx=tx)  # the same payment, a second commitment
    assert isinstance(replay, ErrorReply)
    assert replay.code == ErrorCode.REPLAYED
    assert len(_leaves(m.shop, m.campaign_id)) == 1


async def test_commitment_onSomeoneElsesPaymentRefused(economy: World) -> None:
    m = await _market(economy)
    victim = await economy.buyer("victim", tokens=AGT)
    receipt = await TokenClient(victim.settlement.conn).transfer(m.shop.keys.eth_address, PRICE)
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    stolen = await _paid_commitment(m, victim, signer=m.stranger, tx=tx)
    assert isinstance(stolen, ErrorReply)
    assert stolen.code == ErrorCode.UNAUTHORIZED
    assert _leaves(m.shop, m.campaign_id) == []
    # The victim's own commitment on its payment still goes in: the attempt consumed nothing.
    assert isinstance(await _paid_commitment(m, victim, tx=tx), CommitmentAccepted)


async def test_commitment_withoutPaymentToTheShopRefused(economy: World) -> None:
    m = await _market(economy)
    receipt = await TokenClient(m.stranger.settlement.conn).transfer(m.stranger.account, PRICE)  # pays itself
    unpaid = await _paid_commitment(m, m.stranger, tx="0x" + bytes(receipt["transactionHash"]).hex())
    assert isinstance(unpaid, ErrorReply)
    assert unpaid.code == ErrorCode.REJECTED
    bogus = await _paid_commitment(m, m.stranger, tx="0x" + "ab" * 32)
    assert isinstance(bogus, ErrorReply)
    assert bogus.code == ErrorCode.REJECTED
    assert _leaves(m.shop, m.campaign_id) == []


async def test_rootNotice_fromStrangerRefused(economy: World) -> None:
    m = await _market(economy)
    assert (await economy.call(m.user, SHOP_ADS, Empty())).committed == 1
    conversions = Repository(m.user.store, "ads.conversion", Conversion)
    commitment = next(k for k, _ in conversions.items())
    fake = RootNotice(campaign_id=m.campaign_id, root=commitment, leaves=[commitment])
    reply = await m.stranger.probe.ask(m.user.address, fake, (RootReceived,))
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.UNAUTHORIZED
    assert [c.stage for c in conversions.values()] == ["committed"]


async def _claim(m: Market, economy: World) -> RelayedClaim:
    """The user's conversion rooted on chain, proven by the test to FRESH_PAYEE (the user's secret from its store)."""
    assert (await economy.call(m.user, SHOP_ADS, Empty())).committed == 1
    assert len((await economy.call(m.shop, PUBLISH_ROOTS, Empty())).roots) == 1
    record = Repository(m.user.store, "ads.conversion", Conversion).values()[0]
    assert record.stage == "rooted"
    secret = ConversionSecret(m.campaign_id, int(record.secret), int(record.salt))
    tree = MerkleTree()
    tree.extend([int(leaf) for leaf in _leaves(m.shop, m.campaign_id)])
    async with Prover(ensure_built()) as prover:
        proof = await prover.prove(circuit_inputs(secret, tree.proof(0), FRESH_PAYEE))
    return RelayedClaim(
        campaign_id=m.campaign_id, root=str(tree.root), nullifier=str(secret.nullifier), payee=FRESH_PAYEE,
        proof=[str(w) for w in proof.packed()],
    )  # fmt: skip


async def _relay(m: Market, *claims: RelayedClaim) -> object:
    return await m.stranger.probe.ask(m.relay.address, ClaimRelay(claims=list(claims)), (ClaimsQueued,), wait=30)


async def test_claimRelay_refusesBadClaimsAndSpendsNothing(economy: World) -> None:
    m = await _market(economy)
    good = await _claim(m, economy)
    words = list(good.proof)
    words[0] = str(int(words[0]) ^ 1)
    tampered = good.copy(update={"proof": words})
    redirected = good.copy(update={"payee": m.stranger.account})
    unrooted = good.copy(update={"root": "12345"})
    short = good.copy(update={"proof": good.proof[:7]})
    cases = [(tampered, ErrorCode.REJECTED), (redirected, ErrorCode.REJECTED), (unrooted, ErrorCode.REJECTED),
             (short, ErrorCode.MALFORMED)]  # fmt: skip
    for bad, code in cases:
        reply = await _relay(m, bad)
        assert isinstance(reply, ErrorReply), bad
        assert reply.code == code
    # One bad claim sinks the whole message: the good one with it is not queued either.
    assert isinstance(await _relay(m, good, tampered), ErrorReply)
    assert len(Repository(m.relay.store, "ads.queued", Queued)) == 0
    nothing = await economy.call(m.relay, RELAY_CLAIMS, Empty())
    assert (nothing.transactions, nothing.gas) == (0, 0)


async def test_claimRelay_paysOnceThenRefusesTheBurnedNullifier(economy: World) -> None:
    m = await _market(economy)
    good = await _claim(m, economy)
    assert isinstance(await _relay(m, good), ClaimsQueued)
    sent = await economy.call(m.relay, RELAY_CLAIMS, Empty())
    assert sent.paid == 1
    assert await TokenClient(economy.conn).balance_of(FRESH_PAYEE) == PAYOUT
    replay = await _relay(m, good)
    assert isinstance(replay, ErrorReply)
    assert replay.code == ErrorCode.REPLAYED
    assert len(Repository(m.relay.store, "ads.queued", Queued)) == 0
