"""claimMany checks a batch's proofs together (contracts/libraries/ConversionBatchVerifier.sol): the library is
generated from the committed verifier's key, a batch of real proofs pays, and a batch holding a proof that does not
verify, or a signal aliased modulo the field order (nullifier + r, which the curve arithmetic cannot tell from the
nullifier), reverts with InvalidProof naming that claim."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest
from eth_account import Account

from marketplace.chain import CampaignTerms, ChainConnection, ConversionClaim, LocalChain
from marketplace.paths import project_root
from marketplace.zk import FIELD, ConversionSecret, MerkleTree, Prover, circuit_inputs
from marketplace.zk.batch import LIBRARY, VERIFIER, library_source
from marketplace.zk.build import ensure_built
from tests.contracts import conftest as contracts
from tests.contracts.conftest import AGT, Actors, block_time, clients_for, expect_revert

chain = contracts.chain
"""The session chain rolled back after each test (it funds `actors` below first)."""


@pytest.fixture(scope="module")
def actors(session_chain: LocalChain) -> Iterator[Actors]:
    """The contracts suite's funded actors (alice advertiser, bob merchant, outsider relay), for this module only:
    funded here and rolled back when the module is done. (The contracts package's own `actors` fixture is
    package-scoped; imported into another package it would outlive that package and leak its stakes into every
    later test of the session.)"""
    snapshot = session_chain.snapshot()
    a = session_chain.accounts
    cast = Actors(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])
    asyncio.run(contracts._fund(session_chain, cast))
    yield cast
    session_chain.revert(snapshot)


CAMPAIGN = 1
PAYOUT = AGT


def test_library_matchesTheCommittedVerifiersKey() -> None:
    root = project_root()
    assert (root / LIBRARY).read_text() == library_source((root / VERIFIER).read_text())


async def _proofs(count: int) -> tuple[int, list[ConversionClaim]]:
    secrets = [ConversionSecret.new(CAMPAIGN) for _ in range(count)]
    tree = MerkleTree()
    tree.extend([s.commitment for s in secrets])
    async with Prover(ensure_built()) as prover:
        proofs = [await prover.prove(circuit_inputs(s, tree.proof(i), Account.create().address))
                  for i, s in enumerate(secrets)]  # fmt: skip
    return tree.root, [ConversionClaim.from_proof(p) for p in proofs]


@pytest.fixture(scope="module")
def batch() -> tuple[int, list[ConversionClaim]]:
    """Four real proofs of CAMPAIGN in one tree, each to a fresh payee."""
    return asyncio.run(_proofs(4))


async def _campaign(conn: ChainConnection, actors: Actors, root: int) -> None:
    advertiser, merchant = clients_for(conn, actors.alice), clients_for(conn, actors.bob)
    await advertiser.token.approve(advertiser.ads.address, 10 * PAYOUT)
    terms = CampaignTerms(actors.bob.address, actors.carol.address, 10 * PAYOUT, PAYOUT, 1_000,
                          await block_time(conn) + 3_600)  # fmt: skip
    assert (await advertiser.ads.create_campaign(terms)).campaign_id == CAMPAIGN
    await merchant.ads.publish_root(CAMPAIGN, root)


@pytest.mark.chain
@pytest.mark.slow
async def test_claimMany_batchOfRealProofsPaysEach(
    conn: ChainConnection, actors: Actors, batch: tuple[int, list[ConversionClaim]]
) -> None:
    root, claims = batch
    await _campaign(conn, actors, root)
    relay = clients_for(conn, actors.outsider).ads
    settled = await relay.claim_many(claims)
    assert len(settled.claimed) == len(claims)
    assert relay.last_receipt is not None
    assert relay.last_receipt["gasUsed"] / len(claims) < 250_000


@pytest.mark.chain
@pytest.mark.slow
async def test_claimMany_failsOnOneBadProofOrAliasedNullifier(
    conn: ChainConnection, actors: Actors, batch: tuple[int, list[ConversionClaim]]
) -> None:
    root, claims = batch
    await _campaign(conn, actors, root)
    relay = clients_for(conn, actors.outsider).ads
    other = claims[2].proof
    swapped = replace(claims[1], proof=replace(other, public_signals=claims[1].proof.public_signals))
    await expect_revert("InvalidProof", relay.claim_many([claims[0], swapped, claims[3]]))
    aliased = replace(claims[1], nullifier=claims[1].nullifier + FIELD)
    await expect_revert("InvalidProof", relay.claim_many([claims[0], aliased]))
    assert not await relay.is_nullifier_used(CAMPAIGN, claims[0].nullifier)  # the whole batch reverted
