"""ValidatorStaking on anvil: stake/unbond/withdraw, selection, attestations, disputes and slashing."""

from __future__ import annotations

from collections import Counter

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain import ChainConnection, LocalChain, StakeInfo, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from tests.contracts.conftest import AGT, MAX_ALLOWANCE, VALIDATOR_STAKE, Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain

TASK = b"\x07" * 32
GOOD = b"\xaa" * 32
BAD = b"\xbb" * 32
WEEK = STAKING_CONFIG.unbonding_period
DAY = STAKING_CONFIG.dispute_window


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


async def test_stake_belowMinimumIsNotValidator(conn: ChainConnection, actors: Actors) -> None:
    carol = clients_for(conn, actors.carol)
    await carol.staking.stake(99 * AGT)
    assert not await carol.staking.is_validator(actors.carol.address)
    assert await carol.staking.min_stake() == 100 * AGT


async def test_requestUnstake_movesStakeIntoUnbonding(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    release_at = await val.staking.request_unstake(400 * AGT)
    info = await val.staking.stake_of(actors.val1.address)
    assert (info.active, info.unbonding, info.release_at) == (600 * AGT, 400 * AGT, release_at)


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


async def test_selectValidators_skipsAccountsBelowMinimum(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.carol).staking.stake(AGT)
    await clients_for(conn, actors.val3).staking.request_unstake(VALIDATOR_STAKE)
    staking = clients_for(conn, actors.alice).staking
    error = await expect_revert("NotEnoughValidators", staking.select_validators(b"\x01" * 32, 3))
    assert error.args_values == (3, 2)


async def test_attest_recordsResult(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    await val.staking.attest(TASK, GOOD)
    assert await val.staking.attestation_of(TASK, actors.val1.address) == GOOD


async def test_attest_revertsTwice(conn: ChainConnection, actors: Actors) -> None:
    val = clients_for(conn, actors.val1)
    await val.staking.attest(TASK, GOOD)
    await expect_revert("AlreadyAttested", val.staking.attest(TASK, BAD))


async def test_attest_revertsForNonValidator(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("NotValidator", clients_for(conn, actors.outsider).staking.attest(TASK, GOOD))
    assert error.args_values == (actors.outsider.address,)


async def _dispute(conn: ChainConnection, actors: Actors) -> int:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    opened = await clients_for(conn, actors.val2).staking.open_dispute(TASK, actors.val1.address, GOOD)
    return opened.dispute_id


async def test_openDispute_putsAccusedAndChallengerOnOppositeSides(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    dispute = await clients_for(conn, actors.alice).staking.dispute_of(dispute_id)
    assert (dispute.accused, dispute.accused_result, dispute.resolved) == (actors.val1.address, BAD, False)
    assert (dispute.supporters, dispute.opponents) == ((actors.val1.address,), (actors.val2.address,))


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


async def test_openDispute_revertsWhenAlreadyDisputed(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    call = clients_for(conn, actors.val3).staking.open_dispute(TASK, actors.val1.address, GOOD)
    error = await expect_revert("DisputeExists", call)
    assert error.args_values == (dispute_id,)


async def test_openDispute_revertsForNonValidator(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.val1).staking.attest(TASK, BAD)
    call = clients_for(conn, actors.outsider).staking.open_dispute(TASK, actors.val1.address, GOOD)
    await expect_revert("NotValidator", call)


async def test_vote_sortsVoterBySide(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    assert await clients_for(conn, actors.val3).staking.vote(dispute_id, BAD) is True
    dispute = await clients_for(conn, actors.alice).staking.dispute_of(dispute_id)
    assert dispute.supporters == (actors.val1.address, actors.val3.address)


async def test_vote_revertsTwice(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    val3 = clients_for(conn, actors.val3)
    await val3.staking.vote(dispute_id, GOOD)
    await expect_revert("AlreadyVoted", val3.staking.vote(dispute_id, GOOD))
    await expect_revert("AlreadyVoted", clients_for(conn, actors.val1).staking.vote(dispute_id, GOOD))


async def test_vote_revertsAfterWindow(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    await expect_revert("VotingClosed", clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD))


async def test_vote_revertsForNonValidator(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    await expect_revert("NotValidator", clients_for(conn, actors.outsider).staking.vote(dispute_id, GOOD))


async def test_vote_revertsOnUnknownDispute(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownDispute", clients_for(conn, actors.val3).staking.vote(1, GOOD))


async def _new_validator(conn: ChainConnection, funder: ChainConnection) -> LocalAccount:
    account: LocalAccount = Account.create()
    await funder.send_value(account.address, 10**17)
    await TokenClient(funder).transfer(account.address, 100 * AGT)
    fresh = clients_for(conn, account)
    await fresh.token.approve(fresh.staking.address, MAX_ALLOWANCE)
    await fresh.staking.stake(100 * AGT)
    return account


async def test_vote_revertsWhenDisputeFull(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    funder = conn.with_account(chain.treasury)
    for _ in range(30):
        voter = await _new_validator(conn, funder)
        await clients_for(conn, voter).staking.vote(dispute_id, GOOD)
    await expect_revert("DisputeFull", clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD))


async def test_resolve_slashesAccusedWhenMajorityDisagrees(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    dispute_id = await _dispute(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)
    token = clients_for(conn, actors.alice).token
    before = {a.address: await token.balance_of(a.address) for a in (actors.val2, actors.val3, chain.treasury)}
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    slash = VALIDATOR_STAKE // 10
    assert (resolved.upheld, resolved.slashed, resolved.to_treasury) == (False, slash, slash // 5)
    assert resolved.per_winner == (slash - slash // 5) // 2
    assert [(s.validator, s.amount) for s in resolved.slashes] == [(actors.val1.address, slash)]
    assert (await token.balance_of(actors.val2.address)) - before[actors.val2.address] == resolved.per_winner
    assert (await token.balance_of(actors.val3.address)) - before[actors.val3.address] == resolved.per_winner
    assert (await token.balance_of(chain.treasury.address)) - before[chain.treasury.address] == slash // 5
    staking = clients_for(conn, actors.alice).staking
    assert (await staking.stake_of(actors.val1.address)).active == VALIDATOR_STAKE - slash
    assert (await staking.dispute_of(dispute_id)).resolved


async def test_resolve_slashesLoneChallengerOnTie(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    resolved = await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    assert resolved.upheld
    assert [s.validator for s in resolved.slashes] == [actors.val2.address]
    staking = clients_for(conn, actors.alice).staking
    assert (await staking.stake_of(actors.val2.address)).active == VALIDATOR_STAKE * 9 // 10


async def test_resolve_slashesUnbondingStakeToo(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    await clients_for(conn, actors.val3).staking.vote(dispute_id, GOOD)
    await clients_for(conn, actors.val1).staking.request_unstake(VALIDATOR_STAKE)
    chain.increase_time(DAY)
    await clients_for(conn, actors.outsider).staking.resolve(dispute_id)
    info = await clients_for(conn, actors.alice).staking.stake_of(actors.val1.address)
    assert (info.active, info.unbonding) == (0, VALIDATOR_STAKE * 9 // 10)


async def test_resolve_revertsWhileVotingOpen(conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    await expect_revert("VotingOpen", clients_for(conn, actors.outsider).staking.resolve(dispute_id))


async def test_resolve_revertsTwice(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    dispute_id = await _dispute(conn, actors)
    chain.increase_time(DAY)
    outsider = clients_for(conn, actors.outsider)
    await outsider.staking.resolve(dispute_id)
    await expect_revert("DisputeResolvedAlready", outsider.staking.resolve(dispute_id))


async def test_resolve_revertsOnUnknownDispute(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownDispute", clients_for(conn, actors.outsider).staking.resolve(0))
