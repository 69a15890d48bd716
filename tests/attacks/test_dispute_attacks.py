"""Attacks on disputes: a sybil pair outvoting an honest seller, a sham dispute shielding a cheater, a stale
attestation disputed long after the fact.

Each test plays the adversary with the moves the contracts allow, then the honest parties with the moves
the protocol asks of them (draw the committee, members re-execute and vote, anyone resolves), and checks
that no honest party loses stake. In the fixtures val1..val3 are honest validators with 1,000 AGT each.
"""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from marketplace.chain import ChainConnection, Committee, LocalChain
from marketplace.chain.deploy import STAKING_CONFIG
from tests.contracts.conftest import VALIDATOR_STAKE, Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain

TASK = b"\x42" * 32
TRUE_RESULT = b"\x01" * 32
FALSE_RESULT = b"\x02" * 32
SHAM_RESULT = b"\x03" * 32
MIN = STAKING_CONFIG.min_stake


async def _draw(conn: ChainConnection, by: LocalAccount, dispute_id: int) -> Committee:
    committee = await clients_for(conn, by).staking.draw_committee(dispute_id)
    assert committee is not None
    return committee


async def _honest_committee_votes(conn: ChainConnection, actors: Actors, committee: Committee, dispute_id: int) -> None:
    """Every honest validator drawn re-executes the task and votes the true result."""
    for validator in actors.validators:
        if committee.includes(validator.address):
            await clients_for(conn, validator).staking.vote(dispute_id, TRUE_RESULT)


async def test_sybil_pair_cannot_outvote_honest_seller(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """A challenger and its sybil, both staked, dispute an honest seller's true result and vote it down.

    Before: any staker could vote and votes were a headcount, so challenger + sybil beat the seller 2:1
    and slashed it. Now only a drawn committee votes, by stake; the sybil's vote is refused unless it is
    drawn, and then it is outweighed by the honest members.
    """
    seller, challenger, sybil = actors.bob, actors.carol, actors.dave
    for account in (seller, challenger, sybil):
        await clients_for(conn, account).staking.stake(MIN)
    await clients_for(conn, seller).staking.attest(TASK, TRUE_RESULT)
    await clients_for(conn, challenger).staking.attest(TASK, FALSE_RESULT)
    dispute_id = (
        await clients_for(conn, challenger).staking.open_dispute(TASK, seller.address, FALSE_RESULT)
    ).dispute_id

    committee = await _draw(conn, seller, dispute_id)  # the accused draws its own committee
    sybil_staking = clients_for(conn, sybil).staking
    if committee.includes(sybil.address):
        await sybil_staking.vote(dispute_id, FALSE_RESULT)
    else:
        await expect_revert("NotCommitteeMember", sybil_staking.vote(dispute_id, FALSE_RESULT))
    await expect_revert("NotCommitteeMember", clients_for(conn, challenger).staking.vote(dispute_id, FALSE_RESULT))
    await _honest_committee_votes(conn, actors, committee, dispute_id)

    chain.increase_time(STAKING_CONFIG.dispute_window)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld) == (True, True)
    assert seller.address not in {s.validator for s in resolved.slashes}
    assert (await sybil_staking.stake_of(seller.address)).active == MIN
    assert (await sybil_staking.stake_of(challenger.address)).active < MIN


async def test_sham_dispute_does_not_block_honest_one(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    """A cheating seller's sybil disputes the cheater's false attestation first, then lets it lapse.

    Before: one dispute per attestation, so the honest validator's dispute reverted with DisputeExists and
    the sham (the sybil alone against the seller: a tie, upheld) cleared the cheater. Now the honest dispute
    opens beside the sham one, its committee finds against the cheater, and the cheater is slashed once.
    """
    cheater, sybil, honest = actors.bob, actors.dave, actors.val1
    for account in (cheater, sybil):
        await clients_for(conn, account).staking.stake(MIN)
    await clients_for(conn, cheater).staking.attest(TASK, FALSE_RESULT)
    sybil_staking = clients_for(conn, sybil).staking
    await sybil_staking.attest(TASK, SHAM_RESULT)
    sham = (await sybil_staking.open_dispute(TASK, cheater.address, SHAM_RESULT)).dispute_id

    honest_staking = clients_for(conn, honest).staking
    await honest_staking.attest(TASK, TRUE_RESULT)
    real = (await honest_staking.open_dispute(TASK, cheater.address, TRUE_RESULT)).dispute_id
    assert real != sham
    committee = await _draw(conn, honest, real)
    await _honest_committee_votes(conn, actors, committee, real)
    if committee.includes(sybil.address):
        await sybil_staking.vote(real, FALSE_RESULT)

    chain.increase_time(STAKING_CONFIG.dispute_window)
    outsider = clients_for(conn, actors.outsider).staking
    lapsed = await outsider.resolve(sham)  # never drawn: nobody is slashed over it
    assert (lapsed.decided, lapsed.slashed) == (False, 0)
    resolved = await outsider.resolve(real)
    assert (resolved.decided, resolved.upheld) == (True, False)
    assert [s.validator for s in resolved.slashes if s.validator == cheater.address] == [cheater.address]
    assert (await outsider.stake_of(honest.address)).active == VALIDATOR_STAKE  # not slashed...
    assert resolved.per_winner > 0  # ...and paid from the cheater's stake


async def test_stale_attestation_cannot_be_disputed_after_its_window(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    """A challenger disputes an honest seller's attestation weeks later, when the seller no longer keeps the call.

    Before: an attestation could be disputed forever. Now disputes open only within attestationWindow of
    the attestation, which together with the dispute window is shorter than unbonding.
    """
    seller = actors.bob
    await clients_for(conn, seller).staking.stake(MIN)
    await clients_for(conn, seller).staking.attest(TASK, TRUE_RESULT)
    chain.increase_time(30 * 24 * 3600)
    challenger = clients_for(conn, actors.val1).staking
    await challenger.attest(TASK, FALSE_RESULT)
    await expect_revert("AttestationWindowClosed", challenger.open_dispute(TASK, seller.address, FALSE_RESULT))
