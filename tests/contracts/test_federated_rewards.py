"""FederatedRewards on anvil: escrow, per-round roots, Merkle claims (one and many), refunds, every revert,
and parity of the Python RewardTree with OpenZeppelin's StandardMerkleTree and the contract's MerkleProof."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_utils.crypto import keccak

from marketplace.chain import (
    ChainConnection,
    FederatedTerms,
    LocalChain,
    RewardClaim,
    RewardTree,
    StandardMerkleTree,
)
from marketplace.chain.deploy import FEDERATED_CONFIG
from marketplace.chain.federated import reward_leaf, verify_claim
from tests.contracts.conftest import AGT, Actors, Clients, block_time, clients_for, expect_revert

pytestmark = pytest.mark.chain

BUDGET = 100 * AGT
TTL = 3_600
WINDOW = FEDERATED_CONFIG.min_claim_window
MAX_CLAIM_WINDOW = 365 * 24 * 3600
SPEC = b"\x5e" * 32


async def _job(conn: ChainConnection, actors: Actors, **overrides: int | str) -> int:
    """A job sponsored by alice with val1 (a staked validator) as aggregator."""
    terms = FederatedTerms(
        aggregator=str(overrides.pop("aggregator", actors.val1.address)),
        budget=int(overrides.pop("budget", BUDGET)),
        deadline=int(overrides.pop("deadline", await block_time(conn) + TTL)),
        claim_window=int(overrides.pop("claim_window", WINDOW)),
        spec_hash=SPEC,
    )
    return (await clients_for(conn, actors.alice).federated.create_job(terms)).job_id


def _rewards(actors: Actors, *amounts: int) -> dict[str, int]:
    """Rewards for bob, carol, dave and outsider, in that order, as many as amounts given."""
    accounts = (actors.bob, actors.carol, actors.dave, actors.outsider)
    return {a.address: amount for a, amount in zip(accounts, amounts, strict=False)}


async def _posted(conn: ChainConnection, actors: Actors, job_id: int, round: int, *amounts: int) -> RewardTree:
    tree = RewardTree(job_id, round, _rewards(actors, *amounts))
    await clients_for(conn, actors.val1).federated.post_tree(tree)
    return tree


def _roles(conn: ChainConnection, actors: Actors) -> tuple[Clients, Clients, Clients]:
    """Sponsor (alice), aggregator (val1), relayer (outsider: submits claims for others)."""
    return clients_for(conn, actors.alice), clients_for(conn, actors.val1), clients_for(conn, actors.outsider)


# --- createJob ------------------------------------------------------------------------------


async def test_createJob_escrowsBudgetAndRecordsTerms(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    before = await alice.token.balance_of(actors.alice.address)
    deadline = await block_time(conn) + TTL
    created = await alice.federated.create_job(FederatedTerms(actors.val1.address, BUDGET, deadline, WINDOW, SPEC))
    assert (created.sponsor, created.aggregator, created.budget) == (actors.alice.address, actors.val1.address, BUDGET)
    assert (created.deadline, created.claim_deadline, created.spec_hash) == (deadline, deadline + WINDOW, SPEC)
    job = await alice.federated.get_job(created.job_id)
    assert (job.sponsor, job.aggregator, job.deadline, job.claim_deadline) == (
        actors.alice.address,
        actors.val1.address,
        deadline,
        deadline + WINDOW,
    )
    assert (job.budget, job.posted, job.claimed, job.refunded, job.spec_hash) == (BUDGET, 0, 0, 0, SPEC)
    assert await alice.token.balance_of(actors.alice.address) == before - BUDGET
    assert await alice.token.balance_of(alice.federated.address) == BUDGET
    assert await alice.federated.job_count() == 1
    assert await alice.federated.remaining_budget(created.job_id) == BUDGET
    assert await alice.federated.min_claim_window() == WINDOW


async def test_createJob_numbersJobsSequentially(conn: ChainConnection, actors: Actors) -> None:
    # Ids are assigned by the contract, so nobody can take the id a sponsor's pending job will get.
    assert [await _job(conn, actors) for _ in range(3)] == [1, 2, 3]


async def test_createJob_letsSponsorAggregateItself(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors, aggregator=actors.alice.address)
    assert (await clients_for(conn, actors.alice).federated.get_job(job_id)).aggregator == actors.alice.address


async def test_createJob_revertsWhenAggregatorNotValidator(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("AggregatorNotValidator", _job(conn, actors, aggregator=actors.outsider.address))
    assert error.args_values == (actors.outsider.address,)


async def test_createJob_revertsOnZeroAggregator(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroAddress", _job(conn, actors, aggregator="0x" + "00" * 20))


async def test_createJob_revertsOnZeroBudget(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroBudget", _job(conn, actors, budget=0))


async def test_createJob_revertsOnPastDeadline(conn: ChainConnection, actors: Actors) -> None:
    now = await block_time(conn)
    error = await expect_revert("InvalidDeadline", _job(conn, actors, deadline=now))
    assert error.args_values == (now,)


@pytest.mark.parametrize("window", [WINDOW - 1, MAX_CLAIM_WINDOW + 1])
async def test_createJob_revertsOnClaimWindowOutOfRange(conn: ChainConnection, actors: Actors, window: int) -> None:
    error = await expect_revert("InvalidClaimWindow", _job(conn, actors, claim_window=window))
    assert error.args_values == (window,)


async def test_createJob_revertsWithoutAllowance(conn: ChainConnection, actors: Actors) -> None:
    alice = clients_for(conn, actors.alice)
    await alice.token.approve(alice.federated.address, 0)
    await expect_revert("ERC20InsufficientAllowance", _job(conn, actors))


# --- postRoot -------------------------------------------------------------------------------


async def test_postRoot_recordsRoundAndReservesTotal(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = RewardTree(job_id, 1, _rewards(actors, 10 * AGT, 20 * AGT, 5 * AGT))
    posted = await clients_for(conn, actors.val1).federated.post_tree(tree)
    assert (posted.job_id, posted.round, posted.root, posted.total) == (job_id, 1, tree.root, 35 * AGT)
    federated = clients_for(conn, actors.carol).federated
    stored = await federated.get_round(job_id, 1)
    assert (stored.posted, stored.root, stored.total, stored.claimed) == (True, tree.root, 35 * AGT, 0)
    assert not (await federated.get_round(job_id, 2)).posted
    assert await federated.remaining_budget(job_id) == BUDGET - 35 * AGT
    assert (await federated.get_job(job_id)).posted == 35 * AGT


async def test_postRoot_revertsForNonAggregator(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = RewardTree(job_id, 1, _rewards(actors, AGT))
    for intruder in (actors.alice, actors.val2, actors.bob):  # the sponsor, another validator, a contributor
        error = await expect_revert("NotAggregator", clients_for(conn, intruder).federated.post_tree(tree))
        assert error.args_values == (intruder.address,)


async def test_postRoot_revertsAfterDeadline(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    deadline = (await clients_for(conn, actors.val1).federated.get_job(job_id)).deadline
    chain.increase_time(TTL + 1)
    error = await expect_revert("DeadlinePassed", _posted(conn, actors, job_id, 1, AGT))
    assert error.args_values == (deadline,)


async def test_postRoot_revertsOnSecondRootForRound(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await _posted(conn, actors, job_id, 1, AGT)
    error = await expect_revert("RoundAlreadyPosted", _posted(conn, actors, job_id, 1, 2 * AGT))
    assert error.args_values == (job_id, 1)


async def test_postRoot_revertsWhenTotalsExceedBudget(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    await _posted(conn, actors, job_id, 1, 30 * AGT, 30 * AGT)
    error = await expect_revert("ExceedsBudget", _posted(conn, actors, job_id, 2, 40 * AGT + 1))
    assert error.args_values == (40 * AGT, 40 * AGT + 1)
    await _posted(conn, actors, job_id, 2, 40 * AGT)  # exactly the rest still fits
    assert await clients_for(conn, actors.val1).federated.remaining_budget(job_id) == 0
    await expect_revert("ExceedsBudget", _posted(conn, actors, job_id, 3, 1))


async def test_postRoot_revertsOnZeroRootOrTotal(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    aggregator = clients_for(conn, actors.val1).federated
    await expect_revert("ZeroRoot", aggregator.post_root(job_id, 1, b"\x00" * 32, AGT))
    await expect_revert("ZeroTotal", aggregator.post_root(job_id, 1, b"\x01" * 32, 0))


async def test_postRoot_revertsOnUnknownJob(conn: ChainConnection, actors: Actors) -> None:
    error = await expect_revert("UnknownJob", clients_for(conn, actors.val1).federated.post_root(9, 1, b"\x01" * 32, 1))
    assert error.args_values == (9,)


# --- claim ----------------------------------------------------------------------------------


async def test_claim_paysAccountExactly(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 7 * AGT + 3, 11 * AGT, 13 * AGT)
    _, _, relayer = _roles(conn, actors)
    bob_before = await relayer.token.balance_of(actors.bob.address)
    relayer_before = await relayer.token.balance_of(actors.outsider.address)
    claimed = await relayer.federated.claim(tree.claim(actors.bob.address))  # anyone submits; bob is paid
    assert (claimed.job_id, claimed.round, claimed.account, claimed.amount) == (
        job_id,
        1,
        actors.bob.address,
        7 * AGT + 3,
    )
    assert await relayer.token.balance_of(actors.bob.address) == bob_before + 7 * AGT + 3
    assert await relayer.token.balance_of(actors.outsider.address) == relayer_before
    assert await relayer.token.balance_of(relayer.federated.address) == BUDGET - 7 * AGT - 3
    assert await relayer.federated.is_claimed(job_id, 1, actors.bob.address)
    assert not await relayer.federated.is_claimed(job_id, 1, actors.carol.address)
    assert (await relayer.federated.get_round(job_id, 1)).claimed == 7 * AGT + 3
    assert (await relayer.federated.get_job(job_id)).claimed == 7 * AGT + 3


async def test_claim_revertsOnSecondClaimOfLeaf(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT)
    bob = clients_for(conn, actors.bob)
    await bob.federated.claim(tree.claim(actors.bob.address))
    error = await expect_revert("AlreadyClaimed", bob.federated.claim(tree.claim(actors.bob.address)))
    assert error.args_values == (job_id, 1, actors.bob.address)


async def test_claim_revertsWhenLeafOfRound1ProvenAgainstRound2(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    first = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT, 7 * AGT)
    second = await _posted(conn, actors, job_id, 2, 5 * AGT, 6 * AGT, 7 * AGT)  # the same rewards again
    assert first.root != second.root  # the round is in every leaf
    replayed = replace(first.claim(actors.bob.address), round=2)
    bob = clients_for(conn, actors.bob).federated
    assert not await bob.verify_claim(replayed)
    error = await expect_revert("InvalidProof", bob.claim(replayed))
    assert error.args_values == (job_id, 2, actors.bob.address)
    # Nor does the round-1 proof of the leaf rewritten for round 2 lead to round 2's root.
    rewritten = RewardClaim(job_id, 2, actors.bob.address, 5 * AGT, first.proof(actors.bob.address))
    await expect_revert("InvalidProof", bob.claim(rewritten))
    await bob.claim(second.claim(actors.bob.address))  # its own round's proof pays


async def test_claim_revertsWhenLeafOfOneJobProvenAgainstAnother(conn: ChainConnection, actors: Actors) -> None:
    job_a, job_b = await _job(conn, actors), await _job(conn, actors)
    tree_a = await _posted(conn, actors, job_a, 1, 5 * AGT, 6 * AGT)
    await _posted(conn, actors, job_b, 1, 5 * AGT, 6 * AGT)
    moved = replace(tree_a.claim(actors.bob.address), job_id=job_b)
    await expect_revert("InvalidProof", clients_for(conn, actors.bob).federated.claim(moved))


async def test_claim_revertsWhenLeafMovedToAnotherAccount(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT, 7 * AGT)
    stolen = replace(tree.claim(actors.bob.address), account=actors.outsider.address)
    outsider = clients_for(conn, actors.outsider).federated
    error = await expect_revert("InvalidProof", outsider.claim(stolen))
    assert error.args_values == (job_id, 1, actors.outsider.address)


async def test_claim_revertsOnInflatedAmount(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT)
    inflated = replace(tree.claim(actors.bob.address), amount=6 * AGT)
    await expect_revert("InvalidProof", clients_for(conn, actors.bob).federated.claim(inflated))


async def test_claim_succeedsAfterDeadlineWithinClaimWindow(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT)
    chain.increase_time(TTL + WINDOW - 60)
    assert (await clients_for(conn, actors.carol).federated.claim(tree.claim(actors.carol.address))).amount == 6 * AGT


async def test_claim_revertsAfterClaimWindow(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT)
    claim_deadline = (await clients_for(conn, actors.bob).federated.get_job(job_id)).claim_deadline
    chain.increase_time(TTL + WINDOW + 1)
    error = await expect_revert(
        "ClaimWindowClosed", clients_for(conn, actors.bob).federated.claim(tree.claim(actors.bob.address))
    )
    assert error.args_values == (claim_deadline,)


async def test_claim_revertsOnUnknownRoundOrJob(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT)
    bob = clients_for(conn, actors.bob).federated
    error = await expect_revert("UnknownRound", bob.claim(replace(tree.claim(actors.bob.address), round=2)))
    assert error.args_values == (job_id, 2)
    error = await expect_revert("UnknownJob", bob.claim(replace(tree.claim(actors.bob.address), job_id=5)))
    assert error.args_values == (5,)


async def test_claim_capsRoundAtPostedTotal(conn: ChainConnection, actors: Actors) -> None:
    # A faulty aggregator posts a tree whose leaves sum to 18 AGT with a total of 12 AGT: the round pays at most
    # 12 AGT, so the excess can never come out of another round's reservation or the unposted budget.
    job_id = await _job(conn, actors)
    tree = RewardTree(job_id, 1, _rewards(actors, 5 * AGT, 6 * AGT, 7 * AGT))
    await clients_for(conn, actors.val1).federated.post_root(job_id, 1, tree.root, 12 * AGT)
    relayer = clients_for(conn, actors.outsider).federated
    await relayer.claim(tree.claim(actors.bob.address))
    await relayer.claim(tree.claim(actors.carol.address))
    error = await expect_revert("ExceedsRoundTotal", relayer.claim(tree.claim(actors.dave.address)))
    assert error.args_values == (AGT, 7 * AGT)
    assert (await relayer.get_job(job_id)).claimed == 11 * AGT


# --- claimMany ------------------------------------------------------------------------------


async def test_claimMany_paysEveryLeafAcrossRounds(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    first = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT, 7 * AGT)
    second = await _posted(conn, actors, job_id, 2, 1 * AGT, 2 * AGT, 3 * AGT, 4 * AGT)
    claims = [*first.claims(), *second.claims()]
    relayer = clients_for(conn, actors.outsider)
    accounts = (actors.bob, actors.carol, actors.dave, actors.outsider)
    before = {a.address: await relayer.token.balance_of(a.address) for a in accounts}
    batch = await relayer.federated.claim_many(claims)
    assert [(c.round, c.account, c.amount) for c in batch.claimed] == [(c.round, c.account, c.amount) for c in claims]
    assert (batch.amount, batch.skipped) == (28 * AGT, ())
    expected = {a: first.rewards.get(a, 0) + second.rewards.get(a, 0) for a in before}
    assert {a: await relayer.token.balance_of(a) - b for a, b in before.items()} == expected
    assert await relayer.token.balance_of(relayer.federated.address) == BUDGET - 28 * AGT


async def test_claimMany_skipsLeafClaimedBefore(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT, 7 * AGT)
    await clients_for(conn, actors.carol).federated.claim(tree.claim(actors.carol.address))  # front-runs the batch
    batch = await clients_for(conn, actors.outsider).federated.claim_many(tree.claims())
    assert [c.account for c in batch.claimed] == [actors.bob.address, actors.dave.address]
    assert [(s.job_id, s.round, s.account) for s in batch.skipped] == [(job_id, 1, actors.carol.address)]
    assert batch.amount == 12 * AGT
    assert (await clients_for(conn, actors.bob).federated.get_job(job_id)).claimed == 18 * AGT


async def test_claimMany_revertsWholeBatchOnInvalidProof(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 5 * AGT, 6 * AGT, 7 * AGT)
    claims = tree.claims()
    claims[1] = replace(claims[1], amount=claims[1].amount + 1)
    relayer = clients_for(conn, actors.outsider)
    await expect_revert("InvalidProof", relayer.federated.claim_many(claims))
    assert await relayer.token.balance_of(relayer.federated.address) == BUDGET
    assert not await relayer.federated.is_claimed(job_id, 1, actors.bob.address)


async def test_claimMany_revertsOnEmptyBatch(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("EmptyBatch", clients_for(conn, actors.bob).federated.claim_many([]))


# --- refund ---------------------------------------------------------------------------------


async def test_refund_revertsBeforeDeadline(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    sponsor = clients_for(conn, actors.alice).federated
    deadline = (await sponsor.get_job(job_id)).deadline
    error = await expect_revert("DeadlineNotPassed", sponsor.refund(job_id))
    assert error.args_values == (deadline,)
    assert await sponsor.refundable(job_id) == 0


async def test_refund_revertsForNonSponsor(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    chain.increase_time(TTL + WINDOW + 1)
    for intruder in (actors.val1, actors.bob):  # the aggregator, a contributor
        error = await expect_revert("NotSponsor", clients_for(conn, intruder).federated.refund(job_id))
        assert error.args_values == (intruder.address,)


async def test_refund_afterDeadlineReturnsExactlyUnpostedBudget(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 10 * AGT, 20 * AGT, 5 * AGT)
    await clients_for(conn, actors.bob).federated.claim(tree.claim(actors.bob.address))
    chain.increase_time(TTL + 1)
    alice = clients_for(conn, actors.alice)
    assert await alice.federated.refundable(job_id) == BUDGET - 35 * AGT
    before = await alice.token.balance_of(actors.alice.address)
    refunded = await alice.federated.refund(job_id)
    assert (refunded.job_id, refunded.sponsor, refunded.amount, refunded.closed) == (
        job_id,
        actors.alice.address,
        BUDGET - 35 * AGT,
        False,
    )
    assert await alice.token.balance_of(actors.alice.address) == before + BUDGET - 35 * AGT
    # What was posted stays claimable through the window; nothing more is refundable yet.
    await expect_revert("NothingToRefund", alice.federated.refund(job_id))
    await clients_for(conn, actors.carol).federated.claim(tree.claim(actors.carol.address))
    assert await alice.token.balance_of(alice.federated.address) == 5 * AGT


async def test_refund_afterClaimWindowReturnsUnclaimedRewards(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 10 * AGT, 20 * AGT, 5 * AGT)
    await clients_for(conn, actors.bob).federated.claim(tree.claim(actors.bob.address))
    chain.increase_time(TTL + 1)
    alice = clients_for(conn, actors.alice)
    assert (await alice.federated.refund(job_id)).amount == BUDGET - 35 * AGT
    chain.increase_time(WINDOW)
    refunded = await alice.federated.refund(job_id)
    assert (refunded.amount, refunded.closed) == (25 * AGT, True)  # carol's and dave's unclaimed rewards
    job = await alice.federated.get_job(job_id)
    assert (job.claimed, job.refunded, job.escrowed) == (10 * AGT, BUDGET - 10 * AGT, 0)
    assert await alice.token.balance_of(alice.federated.address) == 0
    await expect_revert("NothingToRefund", alice.federated.refund(job_id))


async def test_refund_afterClaimWindowReturnsEverythingUnclaimedAtOnce(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors)
    tree = await _posted(conn, actors, job_id, 1, 10 * AGT, 20 * AGT)
    await clients_for(conn, actors.carol).federated.claim(tree.claim(actors.carol.address))
    chain.increase_time(TTL + WINDOW + 1)
    refunded = await clients_for(conn, actors.alice).federated.refund(job_id)
    assert (refunded.amount, refunded.closed) == (BUDGET - 20 * AGT, True)


async def test_claimsAndRefunds_neverExceedEscrowedBudget(
    chain: LocalChain, conn: ChainConnection, actors: Actors
) -> None:
    job_id = await _job(conn, actors, budget=60 * AGT)
    trees = [
        await _posted(conn, actors, job_id, 1, 10 * AGT, 10 * AGT, 10 * AGT),
        await _posted(conn, actors, job_id, 2, 15 * AGT, 15 * AGT),
    ]
    await expect_revert("ExceedsBudget", _posted(conn, actors, job_id, 3, 1))
    relayer = clients_for(conn, actors.outsider).federated
    paid = (await relayer.claim_many([c for t in trees for c in t.claims()])).amount
    for tree in trees:  # every leaf again: all skipped, nothing more paid
        assert (await relayer.claim_many(tree.claims())).amount == 0
    chain.increase_time(TTL + WINDOW + 1)
    alice = clients_for(conn, actors.alice)
    await expect_revert("NothingToRefund", alice.federated.refund(job_id))
    assert paid == 60 * AGT
    assert await alice.token.balance_of(alice.federated.address) == 0


# --- RewardTree parity ----------------------------------------------------------------------

# OpenZeppelin/merkle-tree test/dumps/standard-v1.sorted.1_0_6.json: StandardMerkleTree.of([["a"], ..., ["f"]],
# ["string"]) as dumped by the JavaScript library (version 1.0.6).
OZ_DUMP_TREE = (
    "6deb52b5da8fd108f79fab00341f38d2587896634c646ee52e49f845680a70c8",
    "52426e0f1f65ff7e209a13b8c29cffe82e3acaf3dad0a9b9088f3b9a61a929c3",
    "fd3cf45654e88d1cc5d663578c82c76f4b5e3826bacaa1216441443504538f51",
    "8076923e76cf01a7c048400a2304c9a9c23bbbdac3a98ea3946340fdafbba34f",
    "965b92c6cf08303cc4feb7f3e0819c436c2cec17c6f0688a6af139c9a368707c",
    "eba909cf4bb90c6922771d7f126ad0fd11dfde93f3937a196274e1ac20fd2f5b",
    "c62a8cfa41edc0ef6f6ae27a2985b7d39c7fea770787d7e104696c6e81f64848",
    "9cf5a63718145ba968a01c1d557020181c5b252f665cf7386d370eddb176517b",
    "9c15a6a0eaeed500fd9eed4cbeab71f797cefcc67bfd46683e4d2e6ff7f06d1c",
    "9a4f64e953595df82d1b4f570d34c4f4f0cfaf729a61e9d60e83e579e1aa283e",
    "19ba6c6333e0e9a15bf67523e0676e2f23eb8e574092552d5e888c64a4bb3681",
)
OZ_DUMP_TREE_INDEX = {"a": 8, "b": 10, "c": 7, "d": 5, "e": 9, "f": 6}


def test_standardMerkleTree_matchesOpenZeppelinDump() -> None:
    letters = list(OZ_DUMP_TREE_INDEX)
    tree = StandardMerkleTree([[x] for x in letters], ["string"])
    assert tuple(node.hex() for node in tree.tree) == OZ_DUMP_TREE
    assert {x: tree.tree_index(i) for i, x in enumerate(letters)} == OZ_DUMP_TREE_INDEX


ALICE, BOB, CAROL = (f"0x{n:040x}" for n in (0xA11CE, 0xB0B, 0xCA201))


def test_rewardTree_rootIgnoresOrderAndAddressCase() -> None:
    forward = RewardTree(3, 1, {ALICE: 1, BOB: 2, CAROL: 3})
    backward = RewardTree(3, 1, {CAROL.upper().replace("0X", "0x"): 3, BOB: 2, ALICE: 1})
    assert forward.root == backward.root
    assert forward.total == 6
    assert all(verify_claim(forward.root, c) for c in backward.claims())
    assert RewardTree(3, 2, {ALICE: 1, BOB: 2, CAROL: 3}).root != forward.root


def test_rewardTree_rejectsMalformedRewards() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RewardTree(1, 1, {})
    with pytest.raises(ValueError, match="twice"):
        RewardTree(1, 1, {BOB: 1, BOB.upper().replace("0X", "0x"): 2})
    with pytest.raises(ValueError, match="nothing to claim"):
        RewardTree(1, 1, {BOB: 0})
    with pytest.raises(ValueError, match="zero address"):
        RewardTree(1, 1, {"0x" + "00" * 20: 1})
    with pytest.raises(KeyError):
        RewardTree(1, 1, {BOB: 1}).proof(ALICE)


async def test_rewardLeaf_matchesContractLeafHash(conn: ChainConnection, actors: Actors) -> None:
    federated = clients_for(conn, actors.bob).federated
    for job_id, round, amount in ((1, 0, 1), (7, 3, 12 * AGT), (2**64, 2**32 - 1, 2**96 - 1)):
        expected = reward_leaf(job_id, round, actors.bob.address, amount)
        assert await federated.leaf_hash(job_id, round, actors.bob.address, amount) == expected
    # The leaf is the OpenZeppelin standard leaf: keccak256 twice over abi.encode(jobId, round, account, amount).
    encoded = (7).to_bytes(32, "big") + (3).to_bytes(32, "big") + bytes.fromhex(actors.bob.address[2:]).rjust(32, b"\0")
    assert reward_leaf(7, 3, actors.bob.address, 12 * AGT) == keccak(keccak(encoded + (12 * AGT).to_bytes(32, "big")))


async def test_rewardTree_proofsVerifyOnChainForEveryTreeSize(conn: ChainConnection, actors: Actors) -> None:
    job_id = await _job(conn, actors)
    aggregator = clients_for(conn, actors.val1).federated
    accounts = [a.address for a in actors.everyone]
    for size in range(1, len(accounts) + 1):  # 1 leaf (empty proof) up to 8, balanced and not
        tree = RewardTree(job_id, size, {a: (i + 1) * 10**15 + size for i, a in enumerate(accounts[:size])})
        await aggregator.post_tree(tree)
        for claim in tree.claims():
            assert verify_claim(tree.root, claim)
            assert await aggregator.verify_claim(claim), (size, claim.account)
    single = RewardTree(job_id, 1, {accounts[0]: 10**15 + 1})
    assert single.proof(accounts[0]) == ()
    paid = await clients_for(conn, actors.outsider).federated.claim(single.claim(accounts[0]))
    assert paid.amount == 10**15 + 1
