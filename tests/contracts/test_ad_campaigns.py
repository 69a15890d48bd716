"""AdCampaigns on anvil with real Groth16 proofs of the conversion circuit: escrow, merchant roots, claims (one
and many), every revert a user or attacker can hit, refunds after the end, and conservation of the budget.

Needs the cached circuit build (`python -m marketplace.zk.build`; ~3-4 min the first time, instant after).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from marketplace.chain import CampaignTerms, ChainConnection, ConversionClaim, LocalChain
from marketplace.chain.ads import CLAIM_GAS
from marketplace.zk import ConversionSecret, MerkleTree, Proof, Prover, circuit_inputs
from marketplace.zk.build import ensure_built
from tests.contracts.conftest import AGT, Actors, Clients, block_time, clients_for, expect_revert

pytestmark = [pytest.mark.chain, pytest.mark.slow]

CAMPAIGN = 1
"""Every test starts from the same snapshot, so its first campaign gets id 1 (asserted)."""
OTHER_CAMPAIGN = 2
PAYOUT = 5 * AGT
PUBLISHER_BPS = 2_000
BUDGET = 3 * PAYOUT
TTL = 3_600
CREATIVE = b"\xad" * 32


def fresh_payee(index: int) -> str:
    """A fresh address (no balance, no history) for the index-th claim, as a user would make one."""
    return str(to_checksum_address(keccak(b"agora-ad-payee" + index.to_bytes(4, "big"))[-20:]))


@dataclass(frozen=True)
class Conversions:
    """Three conversions of CAMPAIGN in one merchant tree, a conversion of OTHER_CAMPAIGN, and their claims."""

    root: int
    other_root: int
    claims: tuple[ConversionClaim, ...]
    """One claim per conversion of CAMPAIGN, each to its own fresh payee."""
    other: ConversionClaim
    """A conversion of OTHER_CAMPAIGN, proven against other_root."""


async def _prove_all() -> Conversions:
    artifacts = ensure_built()
    secrets = [ConversionSecret(CAMPAIGN, 100 + i, 200 + i) for i in range(3)]
    tree = MerkleTree()
    tree.extend([s.commitment for s in secrets])
    other_secret = ConversionSecret(OTHER_CAMPAIGN, 300, 400)
    other_tree = MerkleTree()
    other_tree.append(other_secret.commitment)
    async with Prover(artifacts) as prover:
        proofs = [await prover.prove(circuit_inputs(s, tree.proof(i), fresh_payee(i))) for i, s in enumerate(secrets)]
        other = await prover.prove(circuit_inputs(other_secret, other_tree.proof(0), fresh_payee(9)))
    return Conversions(
        tree.root,
        other_tree.root,
        tuple(ConversionClaim.from_proof(p) for p in proofs),
        ConversionClaim.from_proof(other),
    )


@pytest.fixture(scope="module")
def conversions() -> Conversions:
    """Real proofs, made once for the module by the prover worker."""
    return asyncio.run(_prove_all())


def _roles(conn: ChainConnection, actors: Actors) -> tuple[Clients, Clients, Clients]:
    """Advertiser (alice), merchant (bob), relayer (outsider: sends claims for users)."""
    return clients_for(conn, actors.alice), clients_for(conn, actors.bob), clients_for(conn, actors.outsider)


async def _campaign(conn: ChainConnection, actors: Actors, budget: int = BUDGET) -> CampaignTerms:
    terms = CampaignTerms(
        merchant=actors.bob.address,
        publisher=actors.carol.address,
        budget=budget,
        payout=PAYOUT,
        publisher_bps=PUBLISHER_BPS,
        end=await block_time(conn) + TTL,
        creative_hash=CREATIVE,
    )
    return terms


async def _live(conn: ChainConnection, actors: Actors, root: int, budget: int = BUDGET) -> CampaignTerms:
    """Campaign CAMPAIGN created by alice with `root` published by bob."""
    advertiser, merchant, _ = _roles(conn, actors)
    terms = await _campaign(conn, actors, budget)
    created = await advertiser.ads.create_campaign(terms)
    assert created.campaign_id == CAMPAIGN
    await merchant.ads.publish_root(CAMPAIGN, root)
    return terms


# --- createCampaign / publishRoot ---------------------------------------------------------------


async def test_createCampaign_escrowsBudgetAndRecordsTerms(conn: ChainConnection, actors: Actors) -> None:
    advertiser, _, _ = _roles(conn, actors)
    before = await advertiser.token.balance_of(actors.alice.address)
    terms = await _campaign(conn, actors)
    created = await advertiser.ads.create_campaign(terms)
    assert (created.campaign_id, created.advertiser, created.merchant) == (
        CAMPAIGN,
        actors.alice.address,
        terms.merchant,
    )
    campaign = await advertiser.ads.get_campaign(CAMPAIGN)
    assert (campaign.budget, campaign.payout, campaign.publisher_bps, campaign.end) == (
        BUDGET,
        PAYOUT,
        PUBLISHER_BPS,
        terms.end,
    )
    assert (campaign.spent, campaign.refunded, campaign.creative_hash) == (0, 0, CREATIVE)
    assert await advertiser.ads.campaign_count() == 1
    assert await advertiser.token.balance_of(actors.alice.address) == before - BUDGET
    assert await advertiser.token.balance_of(advertiser.ads.address) == BUDGET


async def test_createCampaign_failsOnBadTerms(conn: ChainConnection, actors: Actors) -> None:
    advertiser, _, _ = _roles(conn, actors)
    terms = await _campaign(conn, actors)
    await expect_revert("ZeroBudget", advertiser.ads.create_campaign(replace(terms, budget=0)))
    await expect_revert("InvalidPayout", advertiser.ads.create_campaign(replace(terms, payout=0)))
    await expect_revert("InvalidPayout", advertiser.ads.create_campaign(replace(terms, payout=BUDGET + 1)))
    await expect_revert("InvalidPublisherShare", advertiser.ads.create_campaign(replace(terms, publisher_bps=10_001)))
    await expect_revert("InvalidEnd", advertiser.ads.create_campaign(replace(terms, end=await block_time(conn))))
    zero = "0x" + "00" * 20
    await expect_revert("ZeroAddress", advertiser.ads.create_campaign(replace(terms, merchant=zero)))
    await expect_revert("ZeroAddress", advertiser.ads.create_campaign(replace(terms, publisher=zero)))


async def test_publishRoot_failsIfNotMerchantDuplicateOrNotAFieldElement(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    advertiser, merchant, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    assert await relayer.ads.is_root_published(CAMPAIGN, conversions.root)
    await expect_revert("NotMerchant", advertiser.ads.publish_root(CAMPAIGN, conversions.other_root))
    await expect_revert("RootAlreadyPublished", merchant.ads.publish_root(CAMPAIGN, conversions.root))
    await expect_revert("InvalidRoot", merchant.ads.publish_root(CAMPAIGN, 0))
    field = 21888242871839275222246405745257275088548364400416034343698204186575808495617
    await expect_revert("InvalidRoot", merchant.ads.publish_root(CAMPAIGN, field))
    await expect_revert("UnknownCampaign", merchant.ads.publish_root(OTHER_CAMPAIGN, conversions.other_root))


# --- claim ------------------------------------------------------------------------------------


async def test_claim_realProofPaysPayeeAndPublisherOnce(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    claim = conversions.claims[0]
    publisher_before = await relayer.token.balance_of(actors.carol.address)
    paid = await relayer.ads.claim(claim)
    share = PAYOUT * PUBLISHER_BPS // 10_000
    assert (paid.campaign_id, paid.nullifier, paid.payee) == (CAMPAIGN, claim.nullifier, claim.payee)
    assert (paid.user_amount, paid.publisher_amount) == (PAYOUT - share, share)
    assert await relayer.token.balance_of(claim.payee) == PAYOUT - share
    assert await relayer.token.balance_of(actors.carol.address) == publisher_before + share
    assert await relayer.ads.is_nullifier_used(CAMPAIGN, claim.nullifier)
    assert (await relayer.ads.get_campaign(CAMPAIGN)).spent == PAYOUT
    assert relayer.ads.last_receipt is not None
    assert int(relayer.ads.last_receipt["gasUsed"]) < CLAIM_GAS
    await expect_revert("NullifierUsed", relayer.ads.claim(claim))


async def test_claim_failsIfRedirectedToAnotherPayee(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    stolen = replace(conversions.claims[0], payee=actors.outsider.address)
    await expect_revert("InvalidProof", relayer.ads.claim(stolen))


async def test_claim_failsOnUnknownRoot(conn: ChainConnection, actors: Actors, conversions: Conversions) -> None:
    _, merchant, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.other_root)  # the claims' own root is never published here
    await expect_revert("UnknownRoot", relayer.ads.claim(conversions.claims[0]))
    # Against a published root that is not the one the proof was made for, the proof fails.
    await expect_revert("InvalidProof", relayer.ads.claim(replace(conversions.claims[0], root=conversions.other_root)))
    await merchant.ads.publish_root(CAMPAIGN, conversions.root)
    await relayer.ads.claim(conversions.claims[0])


async def test_claim_failsForProofMadeForAnotherCampaign(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    advertiser, merchant, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    await advertiser.ads.create_campaign(await _campaign(conn, actors))
    await merchant.ads.publish_root(OTHER_CAMPAIGN, conversions.root)
    # A campaign-1 proof against campaign 2 (same root published there): the campaign id is a public input.
    await expect_revert("InvalidProof", relayer.ads.claim(replace(conversions.claims[0], campaign_id=OTHER_CAMPAIGN)))
    # A campaign-2 proof against campaign 1: its root is not campaign 1's.
    await expect_revert("UnknownRoot", relayer.ads.claim(replace(conversions.other, campaign_id=CAMPAIGN)))


async def test_claim_failsOnTamperedProofOrNullifier(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    claim = conversions.claims[0]
    p = claim.proof
    bent = Proof(p.a, p.b, (p.c[0], (p.c[1] + 1)), p.public_signals)
    await expect_revert("InvalidProof", relayer.ads.claim(replace(claim, proof=bent)))
    swapped = Proof(p.c, p.b, p.a, p.public_signals)
    await expect_revert("InvalidProof", relayer.ads.claim(replace(claim, proof=swapped)))
    await expect_revert("InvalidProof", relayer.ads.claim(replace(claim, nullifier=claim.nullifier + 1)))
    assert not await relayer.ads.is_nullifier_used(CAMPAIGN, claim.nullifier)


async def test_claim_failsWhenBudgetExhausted(conn: ChainConnection, actors: Actors, conversions: Conversions) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root, budget=2 * PAYOUT + PAYOUT // 2)
    await relayer.ads.claim(conversions.claims[0])
    await relayer.ads.claim(conversions.claims[1])
    await expect_revert("BudgetExhausted", relayer.ads.claim(conversions.claims[2]))
    campaign = await relayer.ads.get_campaign(CAMPAIGN)
    assert campaign.spent == 2 * PAYOUT <= campaign.budget
    assert await relayer.token.balance_of(relayer.ads.address) == campaign.escrowed == PAYOUT // 2


# --- claimMany ----------------------------------------------------------------------------------


async def test_claimMany_paysEveryProofAndSkipsBurnedNullifiers(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    await relayer.ads.claim(conversions.claims[0])
    publisher_before = await relayer.token.balance_of(actors.carol.address)
    batch = await relayer.ads.claim_many(conversions.claims)
    assert [c.nullifier for c in batch.claimed] == [c.nullifier for c in conversions.claims[1:]]
    assert [s.nullifier for s in batch.skipped] == [conversions.claims[0].nullifier]
    share = PAYOUT * PUBLISHER_BPS // 10_000
    assert batch.amount == 2 * PAYOUT
    for claim in conversions.claims:
        assert await relayer.token.balance_of(claim.payee) == PAYOUT - share
    assert await relayer.token.balance_of(actors.carol.address) == publisher_before + 2 * share
    assert (await relayer.ads.get_campaign(CAMPAIGN)).spent == BUDGET
    assert await relayer.token.balance_of(relayer.ads.address) == 0
    # Two verified claims to fresh payees and one skip (measured ~580k; the limit sent is far above).
    assert relayer.ads.last_receipt is not None
    assert int(relayer.ads.last_receipt["gasUsed"]) < 2 * 320_000


async def test_claimMany_revertsWholeBatchOnOneBadProof(
    conn: ChainConnection, actors: Actors, conversions: Conversions
) -> None:
    _, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    stolen = replace(conversions.claims[2], payee=actors.outsider.address)
    await expect_revert("InvalidProof", relayer.ads.claim_many([*conversions.claims[:2], stolen]))
    await expect_revert("EmptyBatch", relayer.ads.claim_many([]))
    assert (await relayer.ads.get_campaign(CAMPAIGN)).spent == 0


# --- refund -------------------------------------------------------------------------------------


async def test_refund_onlyAfterEndAndOnlyUnspent(
    conn: ChainConnection, chain: LocalChain, actors: Actors, conversions: Conversions
) -> None:
    advertiser, _, relayer = _roles(conn, actors)
    await _live(conn, actors, conversions.root)
    await relayer.ads.claim(conversions.claims[0])
    await expect_revert("CampaignNotEnded", advertiser.ads.refund(CAMPAIGN))
    chain.increase_time(TTL)
    await expect_revert("CampaignEnded", relayer.ads.claim(conversions.claims[1]))
    await expect_revert("NotAdvertiser", relayer.ads.refund(CAMPAIGN))
    before = await advertiser.token.balance_of(actors.alice.address)
    refunded = await advertiser.ads.refund(CAMPAIGN)
    assert (refunded.campaign_id, refunded.advertiser, refunded.amount) == (
        CAMPAIGN,
        actors.alice.address,
        BUDGET - PAYOUT,
    )
    assert await advertiser.token.balance_of(actors.alice.address) == before + BUDGET - PAYOUT
    await expect_revert("NothingToRefund", advertiser.ads.refund(CAMPAIGN))
    campaign = await advertiser.ads.get_campaign(CAMPAIGN)
    assert campaign.spent + campaign.refunded == campaign.budget
    assert await advertiser.token.balance_of(advertiser.ads.address) == 0
    assert await advertiser.ads.remaining_budget(CAMPAIGN) == 0
