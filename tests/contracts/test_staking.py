"""ValidatorStaking on anvil: stake/unbond/withdraw, the eligible set, selection, attestations, committee
disputes and slashing.

In the fixtures val1, val2 and val3 hold 1,000 AGT each. Most disputes here have val1 as the accused
and val2 as the challenger, so the committee is drawn from val3 plus whoever else a test stakes.
"""

from __future__ import annotations

from collections import Counter

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain import Ballot, ChainConnection, Committee, LocalChain, StakeInfo, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from tests.contracts.conftest import AGT, MAX_ALLOWANCE, VALIDATOR_STAKE, Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain

TASK = b"\x07" * 32
GOOD = b"\xaa" * 32
BAD = b"\xbb" * 32
OTHER = b"\xcc" * 32
WEEK = STAKING_CONFIG.unbonding_period
DAY = STAKING_CONFIG.dispute_window
MIN = STAKING_CONFIG.min_stake
SLASH = VALIDATOR_STAKE * STAKING_CONFIG.slash_bps // 10_000


async def test_stake_addsActiveStakeAndListsValidator(conn: ChainConnection, actors: Actors) -> None:
    carol = clients_for(conn, actors.carol)
    before = await carol.token.balance_of(carol.staking.address)
    await carol.staking.stake(150 * AGT)
    assert await carol.staking.stake_of(actors.carol.address) == StakeInfo(150 * AGT, 0, 0)
    assert await carol.staking.is_validator(actors.carol.address)
    assert actors.carol.address in await carol.staking.validators()
    assert await carol.token.balance_of(carol.staking.address) == before + 150 * AGT


async def test_stake_revertsOnZeroAmount(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroAmount", clients_for(conn, actors.carol).staking.stake(0))


async def test_stake_belowMinimumIsNotListed(conn: ChainConnection, actors: Actors) -> None:
    carol = clients_for(conn, actors.carol)
    await carol.staking.stake(MIN - 1)
    assert not await carol.staking.is_validator(actors.carol.address)
    assert actors.carol.address not in await carol.staking.validators()
    assert await carol.staking.min_stake() == 100 * AGT


async def test_stake_listsOnceMinimumReached(conn: ChainConnection, actors: Actors) -> None:
    carol = clients_for(conn, actors.carol)
    await carol.staking.stake(1)
    await carol.staking.stake(MIN - 1)
    assert (await carol.staking.validators())[-1] == actors.carol.address
    assert len(await carol.staking.validators()) == 4


async def test_requestUnstake_movesStakeIntoUnbonding(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    release_at = await val.staking.request_unstake(400 * AGT)
    info = await val.staking.stake_of(actors.val1.address)
    assert (info.active, info.unbonding, info.release_at) == (600 * AGT, 400 * AGT, release_at)
    assert actors.val1.address in await val.staking.validators()


async def test_requestUnstake_delistsBelowMinimumBySwapAndPop(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    assert await val.staking.validators() == [v.address for v in actors.validators]
    await val.staking.request_unstake(VALIDATOR_STAKE - MIN + 1)
    assert await val.staking.validators() == [actors.val3.address, actors.val2.address]
    assert not await val.staking.is_validator(actors.val1.address)


async def test_requestUnstake_revertsAboveActiveStake(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.val1).staking.request_unstake(VALIDATOR_STAKE + 1)
    error = await expect_revert("InsufficientStake", call)
    assert error.args_values == (VALIDATOR_STAKE, VALIDATOR_STAKE + 1)


async def test_requestUnstake_revertsOnZeroAmount(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroAmount", clients_for(conn, actors.val1).staking.request_unstake(0))


async def test_withdraw_paysUnbondedStakeAfterDelay(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    before = await val.token.balance_of(actors.val1.address)
    await val.staking.request_unstake(VALIDATOR_STAKE)
    assert not await val.staking.is_validator(actors.val1.address)
    chain.increase_time(WEEK)
    assert await val.staking.withdraw() == VALIDATOR_STAKE
    assert await val.token.balance_of(actors.val1.address) == before + VALIDATOR_STAKE
    assert await val.staking.stake_of(actors.val1.address) == StakeInfo(0, 0, 0)


async def test_withdraw_revertsBeforeRelease(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    release_at = await val.staking.request_unstake(AGT)
    chain.increase_time(WEEK - 60)
    error = await expect_revert("NothingToWithdraw", val.staking.withdraw())
    assert error.args_values == (release_at,)


async def test_withdraw_revertsWithNothingUnbonding(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("NothingToWithdraw", clients_for(conn, actors.val1).staking.withdraw())


async def test_selectValidators_isDeterministicAndDistinct(conn: ChainConnection, actors: Actors) -> None:
    staking = clients_for(conn, actors.alice).staking
    picked = await staking.select_validators(b"\x01" * 32, 3)
    assert sorted(picked) == sorted(v.address for v in actors.validators)
    assert await staking.select_validators(b"\x01" * 32, 3) == picked
    assert len(set(await staking.select_validators(b"\x02" * 32, 2))) == 2


async def test_selectValidators_weightsByStake(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.stake(8_000 * AGT)  # 9,000 vs 1,000 and 1,000
    staking = clients_for(conn, actors.alice).staking
    firsts = Counter([(await staking.select_validators(i.to_bytes(32, "big"), 1))[0] for i in range(200)])
    assert firsts[actors.val1.address] > 150  # expectation 200 * 9/11 ≈ 164


async def test_selectValidators_returnsFewerWhenFewerEligible(conn: ChainConnection, actors: Actors) -> None:
    picked = await clients_for(conn, actors.alice).staking.select_validators(b"\x01" * 32, 10)
    assert sorted(picked) == sorted(v.address for v in actors.validators)


async def test_selectValidators_ignoresDustAndUnbondingStakers(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(AGT)
    await clients_for(conn, actors.val3).staking.request_unstake(VALIDATOR_STAKE)
    staking = clients_for(conn, actors.alice).staking
    listed = await staking.validators()
    assert sorted(listed) == sorted([actors.val1.address, actors.val2.address])
    assert sorted(await staking.select_validators(b"\x01" * 32, len(listed))) == sorted(listed)


async def test_selectValidators_returnsNothingWhenNobodyEligible(conn: ChainConnection, actors: Actors) -> None:
    for validator in actors.validators:
        await clients_for(conn, validator).staking.request_unstake(VALIDATOR_STAKE)
    staking = clients_for(conn, actors.alice).staking
    assert await staking.validators() == []
    assert await staking.select_validators(b"\x01" * 32, 3) == []


async def test_attest_recordsResultAndTime(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    await val.staking.attest(TASK, GOOD)
    assert await val.staking.attestation_of(TASK, actors.val1.address) == GOOD
    info = await val.staking.attestation_info(TASK, actors.val1.address)
    block = await conn.w3.eth.get_block("latest")
    assert (info.result_hash, info.attested_at, info.slashed) == (GOOD, block["timestamp"], False)


async def test_attest_revertsTwice(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    await val.staking.attest(TASK, GOOD)
    await expect_revert("AlreadyAttested", val.staking.attest(TASK, BAD))


async def test_attest_revertsForNonValidator(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("NotValidator", clients_for(conn, actors.outsider).staking.attest(TASK, GOOD))
    assert error.args_values == (actors.outsider.address,)


async def _dispute(conn: ChainConnection, actors: Actors) -> int:
    """val1 attests BAD; val2 attests GOOD and disputes val1's attestation."""
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    val2 = clients_for(conn, actors.val2)
    await val2.staking.attest(TASK, GOOD)
    return (await val2.staking.open_dispute(TASK, actors.val1.address, GOOD)).dispute_id


async def _drawn(conn: ChainConnection, actors: Actors) -> tuple[int, Committee]:
    """A dispute (see _dispute) with its committee drawn by a bystander."""
    dispute_id = await _dispute(conn, actors)
    committee = await clients_for(conn, actors.outsider).staking.draw_committee(dispute_id)
    assert committee is not None
    return dispute_id, committee


async def test_openDispute_recordsPartiesWindowAndSeedBlock(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    val2 = clients_for(conn, actors.val2)
    await val2.staking.attest(TASK, GOOD)
    opened = await val2.staking.open_dispute(TASK, actors.val1.address, GOOD)
    block = await conn.w3.eth.get_block("latest")
    assert (opened.draw_block, opened.deadline) == (block["number"], block["timestamp"] + DAY)
    dispute = await val2.staking.dispute_of(opened.dispute_id)
    assert (dispute.accused, dispute.challenger, dispute.accused_result) == (
        actors.val1.address,
        actors.val2.address,
        BAD,
    )
    assert (dispute.drawn, dispute.resolved, dispute.decided) == (False, False, False)
    assert (dispute.supporters, dispute.opponents) == ((actors.val1.address,), (actors.val2.address,))
    assert await val2.staking.challenge_of(TASK, actors.val1.address, actors.val2.address) == opened.dispute_id


async def test_openDispute_revertsAgainstSelf(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    await val.staking.attest(TASK, BAD)
    await expect_revert("CannotDisputeSelf", val.staking.open_dispute(TASK, actors.val1.address, GOOD))


async def test_openDispute_revertsWithoutAttestation(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.val2).staking.open_dispute(TASK, actors.val1.address, GOOD)
    error = await expect_revert("NoAttestation", call)
    assert error.args_values == (TASK, actors.val1.address)


async def test_openDispute_revertsOnMatchingResult(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, GOOD)
    call = clients_for(conn, actors.val2).staking.open_dispute(TASK, actors.val1.address, GOOD)
    await expect_revert("ResultMatchesAttestation", call)


async def test_openDispute_revertsWithoutChallengerAttestation(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    call = clients_for(conn, actors.val2).staking.open_dispute(TASK, actors.val1.address, GOOD)
    error = await expect_revert("ChallengerNotAttested", call)
    assert error.args_values == (TASK, GOOD)


async def test_openDispute_revertsOnResultOtherThanChallengersAttestation(
    conn: ChainConnection, actors: Actors
) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    val2 = clients_for(conn, actors.val2)
    await val2.staking.attest(TASK, OTHER)
    await expect_revert("ChallengerNotAttested", val2.staking.open_dispute(TASK, actors.val1.address, GOOD))


async def test_openDispute_revertsAfterAttestationWindow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    attested_at = (await conn.w3.eth.get_block("latest"))["timestamp"]
    chain.increase_time(STAKING_CONFIG.attestation_window)
    val2 = clients_for(conn, actors.val2)
    await val2.staking.attest(TASK, GOOD)
    error = await expect_revert("AttestationWindowClosed", val2.staking.open_dispute(TASK, actors.val1.address, GOOD))
    assert error.args_values == (attested_at + STAKING_CONFIG.attestation_window,)


async def test_openDispute_revertsWhenSameChallengerTwice(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    call = clients_for(conn, actors.val2).staking.open_dispute(TASK, actors.val1.address, GOOD)
    error = await expect_revert("AlreadyChallenged", call)
    assert error.args_values == (dispute_id,)


async def test_openDispute_letsAnotherChallengerDisputeTheSameAttestation(
    conn: ChainConnection, actors: Actors
) -> None:
    first = await _dispute(conn, actors)
    val3 = clients_for(conn, actors.val3)
    await val3.staking.attest(TASK, OTHER)
    second = (await val3.staking.open_dispute(TASK, actors.val1.address, OTHER)).dispute_id
    assert second == first + 1
    assert (await val3.staking.dispute_of(second)).challenger == actors.val3.address


async def test_openDispute_revertsOnceAttestationSlashed(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)
    chain.increase_time(DAY)
    await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    await clients_for(conn, actors.carol).staking.stake(MIN)
    carol = clients_for(conn, actors.carol)
    await carol.staking.attest(TASK, GOOD)
    error = await expect_revert(
        "AttestationAlreadySlashed", carol.staking.open_dispute(TASK, actors.val1.address, GOOD)
    )
    assert error.args_values == (TASK, actors.val1.address)


async def test_openDispute_revertsForNonValidator(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    call = clients_for(conn, actors.outsider).staking.open_dispute(TASK, actors.val1.address, GOOD)
    await expect_revert("NotValidator", call)


async def test_drawCommittee_drawsEligibleOthersWithTheirStake(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(MIN)
    await clients_for(conn, actors.dave).staking.stake(2 * MIN)
    await clients_for(conn, actors.alice).staking.stake(1)  # dust: never drawn
    dispute_id, committee = await _drawn(conn, actors)
    assert sorted((seat.member, seat.weight) for seat in committee.seats) == sorted(
        [(actors.val3.address, VALIDATOR_STAKE), (actors.carol.address, MIN), (actors.dave.address, 2 * MIN)]
    )
    assert committee == await clients_for(conn, actors.alice).staking.committee_of(dispute_id)
    assert (await clients_for(conn, actors.alice).staking.dispute_of(dispute_id)).drawn


async def test_drawCommittee_drawsAtMostCommitteeSize(conn: ChainConnection, actors: Actors) -> None:
    for account in (actors.alice, actors.bob, actors.carol, actors.dave):
        await clients_for(conn, account).staking.stake(MIN)
    _, committee = await _drawn(conn, actors)
    assert len(committee.seats) == STAKING_CONFIG.committee_size
    assert len(set(committee.members)) == len(committee.members)
    assert not {actors.val1.address, actors.val2.address} & set(committee.members)


async def test_drawCommittee_isFixedBySeedBlockNotByCaller(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    for account in (actors.alice, actors.bob, actors.carol, actors.dave):
        await clients_for(conn, account).staking.stake(MIN)
    dispute_id = await _dispute(conn, actors)
    chain.mine(5)
    snapshot = chain.snapshot()
    by_outsider = await clients_for(conn, actors.outsider).staking.draw_committee(dispute_id)
    chain.revert(snapshot)
    conn.reset_nonce()
    chain.mine(3)
    by_challenger = await clients_for(conn, actors.val2).staking.draw_committee(dispute_id)
    assert by_outsider is not None
    assert by_outsider == by_challenger


async def test_drawCommittee_revertsInTheOpenBlock(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    opened_in = (await conn.w3.eth.get_block("latest"))["number"]
    # A call against the latest block runs as if in the open's own block: the seed hash does not exist yet.
    draw = conn.contract("ValidatorStaking").functions.drawCommittee(dispute_id)
    error = await expect_revert("DrawTooEarly", conn.call(draw))
    assert error.args_values == (opened_in + 1,)


async def test_drawCommittee_revertsTwice(conn: ChainConnection, actors: Actors) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    await expect_revert("CommitteeAlreadyDrawn", clients_for(conn, actors.val2).staking.draw_committee(dispute_id))


async def test_drawCommittee_revertsAfterDeadline(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    await expect_revert("VotingClosed", clients_for(conn, actors.val2).staking.draw_committee(dispute_id))


async def test_drawCommittee_defersWhenSeedBlockTooOld(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.mine(300)
    staking = clients_for(conn, actors.outsider).staking
    assert await staking.draw_committee(dispute_id) is None
    deferred = await staking.dispute_of(dispute_id)
    assert (deferred.drawn, deferred.draw_block) == (False, (await conn.w3.eth.get_block("latest"))["number"])
    committee = await staking.draw_committee(dispute_id)
    assert committee is not None
    assert committee.members == (actors.val3.address,)


async def test_drawCommittee_isEmptyWithoutEligibleOthers(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val3).staking.request_unstake(VALIDATOR_STAKE)
    _, committee = await _drawn(conn, actors)
    assert committee.seats == ()


async def test_drawCommittee_revertsOnUnknownDispute(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownDispute", clients_for(conn, actors.val2).staking.draw_committee(7))


async def test_vote_countsMemberStakeBySide(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(3 * MIN)
    dispute_id, _ = await _drawn(conn, actors)
    assert await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD) is True
    assert await clients_for(conn, actors.carol).staking.vote(dispute_id, OTHER) is False
    staking = clients_for(conn, actors.alice).staking
    dispute = await staking.dispute_of(dispute_id)
    assert (dispute.support_weight, dispute.oppose_weight) == (VALIDATOR_STAKE, 3 * MIN)
    assert dispute.supporters == (actors.val1.address, actors.val3.address)
    assert dispute.opponents == (actors.val2.address, actors.carol.address)
    ballots = {seat.member: seat.ballot for seat in (await staking.committee_of(dispute_id)).seats}
    assert ballots == {actors.val3.address: Ballot.SUPPORTS, actors.carol.address: Ballot.OPPOSES}


async def test_vote_revertsForNonMember(conn: ChainConnection, actors: Actors) -> None:
    dispute_id, committee = await _drawn(conn, actors)
    assert committee.members == (actors.val3.address,)
    await clients_for(conn, actors.carol).staking.stake(MIN)  # eligible now, but not drawn
    for account in (actors.val1, actors.val2, actors.carol, actors.outsider):
        error = await expect_revert("NotCommitteeMember", clients_for(conn, account).staking.vote(dispute_id, GOOD))
        assert error.args_values == (account.address,)


async def test_vote_revertsBeforeDraw(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    await expect_revert("NotCommitteeMember", clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD))


async def test_vote_revertsTwice(conn: ChainConnection, actors: Actors) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    val3 = clients_for(conn, actors.val3)
    await val3.staking.vote(dispute_id, GOOD)
    await expect_revert("AlreadyVoted", val3.staking.vote(dispute_id, BAD))


async def test_vote_revertsAfterWindow(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    chain.increase_time(DAY)
    await expect_revert("VotingClosed", clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD))


async def test_vote_revertsOnUnknownDispute(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownDispute", clients_for(conn, actors.val3).staking.vote(1, GOOD))


async def test_resolve_slashesAccusedWhenCommitteeDisagrees(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)
    token = clients_for(conn, actors.alice).token
    before = {a.address: await token.balance_of(a.address) for a in (actors.val2, actors.val3, chain.treasury)}
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld, resolved.slashed, resolved.to_treasury) == (
        True,
        False,
        SLASH,
        SLASH // 5,
    )
    assert resolved.per_winner == (SLASH - SLASH // 5) // 2
    assert [(s.validator, s.amount) for s in resolved.slashes] == [(actors.val1.address, SLASH)]
    assert (await token.balance_of(actors.val2.address)) - before[actors.val2.address] == resolved.per_winner
    assert (await token.balance_of(actors.val3.address)) - before[actors.val3.address] == resolved.per_winner
    assert (await token.balance_of(chain.treasury.address)) - before[chain.treasury.address] == SLASH // 5
    staking = clients_for(conn, actors.alice).staking
    assert (await staking.stake_of(actors.val1.address)).active == VALIDATOR_STAKE - SLASH
    assert (await staking.attestation_info(TASK, actors.val1.address)).slashed
    dispute = await staking.dispute_of(dispute_id)
    assert (dispute.resolved, dispute.decided, dispute.upheld) == (True, True, False)


async def test_resolve_slashesChallengerAndMembersOnItsSideWhenCommitteeAgreesWithAccused(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    await clients_for(conn, actors.carol).staking.stake(MIN)
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD)
    await clients_for(conn, actors.carol).staking.vote(dispute_id, GOOD)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld) == (True, True)
    assert sorted((s.validator, s.amount) for s in resolved.slashes) == sorted(
        [(actors.val2.address, SLASH), (actors.carol.address, MIN // 10)]
    )
    staking = clients_for(conn, actors.alice).staking
    assert not await staking.is_validator(actors.carol.address)  # slashed below the minimum: delisted
    assert actors.carol.address not in await staking.validators()
    assert not (await staking.attestation_info(TASK, actors.val1.address)).slashed


async def test_resolve_weighsCommitteeVotesByStake(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(MIN)
    await clients_for(conn, actors.dave).staking.stake(MIN)
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD)  # 1,000 AGT with the accused
    await clients_for(conn, actors.carol).staking.vote(dispute_id, GOOD)  # 2 x 100 AGT against
    await clients_for(conn, actors.dave).staking.vote(dispute_id, GOOD)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert resolved.upheld
    assert {s.validator for s in resolved.slashes} == {actors.val2.address, actors.carol.address, actors.dave.address}


async def test_resolve_partiesCountEquallyWhateverTheirStake(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    await clients_for(conn, actors.val2).staking.stake(100 * VALIDATOR_STAKE)  # a rich challenger
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld) == (True, True)
    assert [s.validator for s in resolved.slashes] == [actors.val2.address]


async def test_resolve_tieUpholdsAccused(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(VALIDATOR_STAKE)
    dispute_id, committee = await _drawn(conn, actors)
    assert set(committee.members) == {actors.val3.address, actors.carol.address}
    await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD)
    await clients_for(conn, actors.carol).staking.vote(dispute_id, GOOD)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld) == (True, True)


async def test_resolve_slashesNobodyWithoutQuorum(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(VALIDATOR_STAKE)
    await clients_for(conn, actors.dave).staking.stake(VALIDATOR_STAKE)
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)  # a third of the committee's stake
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.slashed, resolved.slashes) == (False, 0, ())
    staking = clients_for(conn, actors.alice).staking
    assert (await staking.stake_of(actors.val1.address)).active == VALIDATOR_STAKE
    assert (await staking.stake_of(actors.val2.address)).active == VALIDATOR_STAKE
    assert not (await staking.attestation_info(TASK, actors.val1.address)).slashed


async def test_resolve_slashesNobodyWhenCommitteeNeverDrawn(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld, resolved.slashed) == (False, False, 0)


async def test_resolve_slashesAttestationOnlyOnce(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(MIN)
    first, committee = await _drawn(conn, actors)
    assert set(committee.members) == {actors.val3.address, actors.carol.address}
    val3 = clients_for(conn, actors.val3)
    await val3.staking.attest(TASK, GOOD)
    second = (await val3.staking.open_dispute(TASK, actors.val1.address, GOOD)).dispute_id
    second_committee = await clients_for(conn, actors.outsider).staking.draw_committee(second)
    assert second_committee is not None
    assert set(second_committee.members) == {actors.val2.address, actors.carol.address}
    for dispute_id, members in ((first, (actors.val3, actors.carol)), (second, (actors.val2, actors.carol))):
        for member in members:
            await clients_for(conn, member).staking.vote(dispute_id, GOOD)
    chain.increase_time(DAY)
    outsider = clients_for(conn, actors.outsider).staking
    assert [s.validator for s in (await outsider.resolve(first)).slashes] == [actors.val1.address]
    again = await outsider.resolve(second)
    assert (again.decided, again.upheld, again.slashed, again.slashes) == (True, False, 0, ())
    assert (await outsider.stake_of(actors.val1.address)).active == VALIDATOR_STAKE - SLASH


async def test_resolve_slashesUnbondingStakeToo(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)
    await clients_for(conn, actors.val1).staking.request_unstake(VALIDATOR_STAKE)
    chain.increase_time(DAY)
    await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    info = await clients_for(conn, actors.alice).staking.stake_of(actors.val1.address)
    assert (info.active, info.unbonding) == (0, VALIDATOR_STAKE - SLASH)


async def test_resolve_revertsWhileVotingOpen(conn: ChainConnection, actors: Actors) -> None:
    dispute_id, _ = await _drawn(conn, actors)
    await expect_revert("VotingOpen", clients_for(conn, actors.outsider).staking.resolve(dispute_id))


async def test_resolve_revertsTwice(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    outsider = clients_for(conn, actors.outsider)
    await outsider.staking.resolve(dispute_id)
    await expect_revert("DisputeResolvedAlready", outsider.staking.resolve(dispute_id))


async def test_resolve_revertsOnUnknownDispute(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownDispute", clients_for(conn, actors.outsider).staking.resolve(0))


async def _new_staker(conn: ChainConnection, funder: ChainConnection, amount: int) -> LocalAccount:
    """A fresh account with gas money that stakes `amount`."""
    account: LocalAccount = Account.create()
    await funder.send_value(account.address, 10**17)
    await TokenClient(funder).transfer(account.address, amount)
    fresh = clients_for(conn, account)
    await fresh.token.approve(fresh.staking.address, MAX_ALLOWANCE)
    await fresh.staking.stake(amount)
    return account


async def test_stake_dustNeverFillsTheSet(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    funder = conn.with_account(chain.treasury)
    for _ in range(5):
        await _new_staker(conn, funder, 1)
    assert len(await clients_for(conn, actors.alice).staking.validators()) == 3
