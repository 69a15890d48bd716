"""Hypothesis drives random sequences of escrow, channel, staking and federated-reward actions across several actors
on anvil.

After every step: token conservation (the holders' balances sum to a constant) and each contract's
holdings equal its outstanding obligations. After every example: all deadlines pass and everything
left is withdrawn, so every contract ends empty (no stuck funds). Block time is pinned (one second
per block, explicit jumps) so outcomes at deadlines are predicted exactly and runs are reproducible.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from marketplace.chain import (
    ChainConnection,
    ContractRevert,
    EscrowTerms,
    FederatedTerms,
    JobStatus,
    Lineage,
    LocalChain,
    ModelListing,
    RewardClaim,
    RewardTree,
)
from marketplace.chain.deploy import CHANNELS_CONFIG, ESCROW_CONFIG, FEDERATED_CONFIG, STAKING_CONFIG
from marketplace.chain.federated import verify_claim
from marketplace.chain.node import rpc_call
from tests.contracts.conftest import AGT, Actors, Clients, clients_for

pytestmark = pytest.mark.chain

T = TypeVar("T")
LIVE = (JobStatus.OPEN, JobStatus.FUNDED, JobStatus.SUBMITTED)
GOOD, BAD, OTHER = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
MIN_STAKE = STAKING_CONFIG.min_stake
MIN_CLAIM_WINDOW = FEDERATED_CONFIG.min_claim_window
SPONSOR_AGGREGATES = 3
"""FederatedJobModel.aggregator value meaning the sponsor aggregates its own job (0-2 are the validators)."""


@dataclass
class JobModel:
    """What the test expects of one job."""

    client: int
    evaluator: int
    budget: int
    deadline: int
    status: JobStatus = JobStatus.OPEN


@dataclass
class ChannelModel:
    """What the test expects of one channel."""

    sender: int
    recipient: int
    deposit: int
    expiry: int
    claimed: int = 0
    closed: bool = False


@dataclass
class RoundModel:
    """What the test expects of one posted round of a federated job."""

    tree: RewardTree
    total: int
    """The total posted with the root (may be below the tree's sum: a faulty aggregator)."""
    paid: int = 0
    claimed: set[str] = field(default_factory=set)


@dataclass
class FederatedJobModel:
    """What the test expects of one federated job."""

    sponsor: int
    aggregator: int
    budget: int
    deadline: int
    claim_deadline: int
    posted: int = 0
    claimed: int = 0
    refunded: int = 0
    rounds: dict[int, RoundModel] = field(default_factory=dict)

    @property
    def escrowed(self) -> int:
        """What FederatedRewards must still hold for this job."""
        return self.budget - self.claimed - self.refunded


@dataclass
class Counters:
    """Steps run across all examples of one test (the suite asserts a floor)."""

    steps: int = 0
    examples: int = 0
    federated: int = 0
    """Steps on FederatedRewards (transactions and deadline jumps)."""


@dataclass
class Env:
    """What every example shares: the chain, actors, models, one event loop and one connection."""

    chain: LocalChain
    actors: Actors
    model_ids: list[int]
    loop: asyncio.AbstractEventLoop
    conn: ChainConnection
    users: list[Clients]
    validators: list[Clients]
    counters: Counters = field(default_factory=Counters)


class Economy(RuleBasedStateMachine):
    """A model of the settlement contracts checked against the real ones after every action."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        self.loop = env.loop
        self.snapshot = env.chain.snapshot()
        self.conn = env.conn
        actors = env.actors
        self.users: list[LocalAccount] = [actors.alice, actors.bob, actors.carol, actors.dave, actors.outsider]
        self.validators: list[LocalAccount] = list(actors.validators)
        self.u, self.v = env.users, env.validators
        self.any = self.u[0]
        self.holders = [a.address for a in (env.chain.treasury, *actors.everyone)]
        self.holders += [self.any.escrow.address, self.any.channels.address, self.any.staking.address]
        self.holders += [self.any.federated.address]
        self.contributors: list[LocalAccount] = [*self.users, *self.validators]
        self.contributor_index = {a.address: i for i, a in enumerate(self.contributors)}
        token, staking = self.any.token.address, self.any.staking.address
        self.balance_calls = [(token, _calldata("balanceOf(address)", h)) for h in self.holders]
        self.stake_calls = [(staking, _calldata("stakeOf(address)", v.address)) for v in self.validators]
        self.total = sum(self._balances())
        self.jobs: dict[int, JobModel] = {}
        self.channels: dict[int, ChannelModel] = {}
        self.fed_jobs: dict[int, FederatedJobModel] = {}
        self.tasks = 0
        env.counters.examples += 1

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def _balances(self) -> list[int]:
        return [int(r, 16) for r in self._raw_calls(self.balance_calls)]

    def _stakes(self) -> list[int]:
        """Active plus unbonding stake of each validator (the first two words of stakeOf)."""
        return [int(r[2:66], 16) + int(r[66:130], 16) for r in self._raw_calls(self.stake_calls)]

    def _raw_calls(self, calls: list[tuple[str, str]]) -> list[str]:
        """eth_calls with precomputed calldata in one JSON-RPC batch, bypassing web3's per-call
        ABI machinery (the invariants run after every step and dominated the run time)."""
        body = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"to": to, "data": data}, "latest"]}
            for i, (to, data) in enumerate(calls)
        ]
        request = urllib.request.Request(  # noqa: S310 - the loopback anvil URL
            self.env.chain.rpc_url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            replies = sorted(json.loads(response.read()), key=lambda r: r["id"])
        return [str(r["result"]) for r in replies]

    def now(self) -> int:
        """Timestamp the next transaction's block will carry (one second per block)."""
        block = rpc_call(self.env.chain.rpc_url, "eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16) + 1  # type: ignore[index]

    def jump(self, seconds: int) -> None:
        latest = self.now() - 1
        rpc_call(self.env.chain.rpc_url, "evm_setNextBlockTimestamp", [latest + seconds])
        rpc_call(self.env.chain.rpc_url, "evm_mine")

    def expect(self, call: Awaitable[T], error: str | None) -> T | None:
        """Run a transaction and check it succeeds (error None) or reverts with `error`."""
        self.env.counters.steps += 1
        reverted: ContractRevert | None = None
        result: T | None = None
        try:
            result = self.run(call)  # type: ignore[arg-type]
        except ContractRevert as exc:
            reverted = exc
        outcome = reverted.name if reverted else None
        assert outcome == error, f"expected {error or 'success'}, got {reverted or 'success'}"
        return result

    def expect_federated(self, call: Awaitable[T], error: str | None, at_boundary: str | None = None) -> T | None:
        """expect() for a FederatedRewards transaction (counted apart: the suite asserts a floor).

        `at_boundary`: the verdict one second earlier, also accepted. anvil estimates gas (where reverts surface)
        on the latest block's timestamp but mines one second later, so on a deadline's exact second a revert
        may reflect either side of it.
        """
        self.env.counters.federated += 1
        if at_boundary is None or at_boundary == error:
            return self.expect(call, error)
        self.env.counters.steps += 1
        reverted: ContractRevert | None = None
        result: T | None = None
        try:
            result = self.run(call)  # type: ignore[arg-type]
        except ContractRevert as exc:
            reverted = exc
        outcome = reverted.name if reverted else None
        assert outcome in (error, at_boundary), f"expected {error} or {at_boundary}, got {reverted or 'success'}"
        return result

    # --- escrow ---------------------------------------------------------------------------

    @rule(
        client=st.integers(0, 4),
        provider=st.integers(0, 4),
        evaluator=st.integers(0, 2),
        budget=st.integers(1, 50 * AGT),
        model=st.integers(0, 3),
        ttl=st.sampled_from([900, 2_700, 5_400]),
        fee=st.integers(0, 2_000),
    )
    def create_job(
        self, client: int, provider: int, evaluator: int, budget: int, model: int, ttl: int, fee: int
    ) -> None:
        provider = provider if provider != client else (provider + 1) % 5
        deadline = self.now() + ttl
        active = self.run(self.v[evaluator].staking.stake_of(self.validators[evaluator].address)).active
        spec = EscrowTerms(
            self.users[provider].address,
            self.validators[evaluator].address,
            deadline,
            budget,
            self.env.model_ids[model - 1] if model else 0,
            fee,
        )
        error = None if active >= MIN_STAKE else "EvaluatorNotValidator"
        created = self.expect(self.u[client].escrow.create_job(spec), error)
        if created is not None:
            self.jobs[created.job_id] = JobModel(client, evaluator, budget, deadline)

    def _pick_job(self, pick: int) -> tuple[int, JobModel] | None:
        if not self.jobs:
            return None
        job_id = sorted(self.jobs)[pick % len(self.jobs)]
        return job_id, self.jobs[job_id]

    @rule(pick=st.integers(0, 10**6), wrong_price=st.booleans())
    def fund(self, pick: int, wrong_price: bool) -> None:
        chosen = self._pick_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        expected = job.budget + 1 if wrong_price else job.budget
        if job.status is not JobStatus.OPEN:
            error: str | None = "WrongStatus"
        elif self.now() >= job.deadline:
            error = "DeadlinePassed"
        else:
            error = "BudgetMismatch" if wrong_price else None
        if self.expect(self.u[job.client].escrow.fund(job_id, expected), error) is not None:
            job.status = JobStatus.FUNDED

    @rule(pick=st.integers(0, 10**6))
    def submit(self, pick: int) -> None:
        chosen = self._pick_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        provider = self.run(self.any.escrow.get_job(job_id)).provider
        signer = self.u[[a.address for a in self.users].index(provider)]
        now = self.now()
        if job.status is not JobStatus.FUNDED:
            error: str | None = "WrongStatus"
        else:
            error = "DeadlinePassed" if now >= job.deadline else None
        submitted = self.expect(signer.escrow.submit(job_id, b"\x01" * 32), error)
        if submitted is not None:
            job.status = JobStatus.SUBMITTED
            # The evaluator gets its window: no refund before it ends.
            job.deadline = max(job.deadline, now + ESCROW_CONFIG.evaluation_window)
            assert submitted.deadline == job.deadline

    @rule(pick=st.integers(0, 10**6), score=st.integers(0, 100))
    def complete(self, pick: int, score: int) -> None:
        chosen = self._pick_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        error = None if job.status is JobStatus.SUBMITTED else "WrongStatus"
        if self.expect(self.v[job.evaluator].escrow.complete(job_id, b"\x02" * 32, score), error) is not None:
            job.status = JobStatus.COMPLETED

    @rule(pick=st.integers(0, 10**6))
    def reject(self, pick: int) -> None:
        chosen = self._pick_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        signer = self.u[job.client] if job.status is JobStatus.OPEN else self.v[job.evaluator]
        error = None if job.status in LIVE else "WrongStatus"
        if self.expect(signer.escrow.reject(job_id, b"\x03" * 32), error) is not None:
            job.status = JobStatus.REJECTED

    @rule(pick=st.integers(0, 10**6), caller=st.integers(0, 4))
    def expire(self, pick: int, caller: int) -> None:
        chosen = self._pick_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        if job.status not in LIVE:
            error: str | None = "WrongStatus"
        else:
            error = "NotExpired" if self.now() < job.deadline else None
        if self.expect(self.u[caller].escrow.claim_refund(job_id), error) is not None:
            job.status = JobStatus.EXPIRED

    # --- channels -------------------------------------------------------------------------

    @rule(
        sender=st.integers(0, 4),
        recipient=st.integers(0, 4),
        deposit=st.integers(1, 20 * AGT),
        ttl=st.sampled_from([900, 1_800, 2_700, 5_400]),
        model=st.integers(0, 3),
    )
    def open_channel(self, sender: int, recipient: int, deposit: int, ttl: int, model: int) -> None:
        recipient = recipient if recipient != sender else (recipient + 1) % 5
        expiry = self.now() + ttl
        model_id = self.env.model_ids[model - 1] if model else 0
        call = self.u[sender].channels.open_channel(self.users[recipient].address, deposit, expiry, model_id)
        error = "ExpiryTooSoon" if ttl < CHANNELS_CONFIG.min_channel_duration else None
        opened = self.expect(call, error)
        if opened is not None:
            self.channels[opened.channel_id] = ChannelModel(sender, recipient, deposit, expiry)

    def _pick_channel(self, pick: int) -> tuple[int, ChannelModel] | None:
        if not self.channels:
            return None
        channel_id = sorted(self.channels)[pick % len(self.channels)]
        return channel_id, self.channels[channel_id]

    def _claim_error(self, ch: ChannelModel, cumulative: int) -> str | None:
        if ch.closed:
            return "ChannelIsClosed"
        if cumulative <= ch.claimed:
            return "VoucherNotIncreasing"
        return "VoucherExceedsDeposit" if cumulative > ch.deposit else None

    @rule(pick=st.integers(0, 10**6), increment=st.integers(0, 8 * AGT))
    def claim(self, pick: int, increment: int) -> None:
        chosen = self._pick_channel(pick)
        if chosen is None:
            return
        channel_id, ch = chosen
        cumulative = ch.claimed + increment
        signed = self.run(self.u[ch.sender].channels.sign(self.users[ch.sender], channel_id, cumulative))
        if self.expect(self.u[ch.recipient].channels.claim(signed), self._claim_error(ch, cumulative)) is not None:
            ch.claimed = cumulative

    @rule(
        recipient=st.integers(0, 4),
        picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
        fraction=st.integers(0, 100),
    )
    def claim_many(self, recipient: int, picks: list[int], fraction: int) -> None:
        """A batch over any of the recipient's channels: refunded ones, spent vouchers and repeats are skipped."""
        mine = [(i, c) for i, c in sorted(self.channels.items()) if c.recipient == recipient]
        if not mine:
            return
        batch = [mine[p % len(mine)] for p in picks]
        targets = [c.claimed + (c.deposit - c.claimed) * fraction // 100 for _, c in batch]
        signed = [
            self.run(self.u[c.sender].channels.sign(self.users[c.sender], i, t))
            for (i, c), t in zip(batch, targets, strict=True)
        ]
        result = self.expect(self.u[recipient].channels.claim_batch(signed), None)
        assert result is not None
        paid, skipped = [], []
        for (channel_id, c), target in zip(batch, targets, strict=True):
            if c.closed or target <= c.claimed:
                skipped.append(channel_id)
            else:
                paid.append((channel_id, target - c.claimed))
                c.claimed = target
        assert [(x.channel_id, x.amount) for x in result.claimed] == paid
        assert [x.channel_id for x in result.skipped] == skipped

    @rule(pick=st.integers(0, 10**6), caller=st.integers(0, 4))
    def refund(self, pick: int, caller: int) -> None:
        chosen = self._pick_channel(pick)
        if chosen is None:
            return
        channel_id, ch = chosen
        if ch.closed:
            error: str | None = "ChannelIsClosed"
        else:
            error = "ChannelNotExpired" if self.now() < ch.expiry else None
        if self.expect(self.u[caller].channels.refund(channel_id), error) is not None:
            ch.closed = True

    @rule(pick=st.integers(0, 10**6), amount=st.integers(1, 5 * AGT), extra=st.sampled_from([0, 1_800]))
    def top_up_and_extend(self, pick: int, amount: int, extra: int) -> None:
        chosen = self._pick_channel(pick)
        if chosen is None:
            return
        channel_id, ch = chosen
        sender = self.u[ch.sender].channels
        error = "ChannelIsClosed" if ch.closed else None
        if self.expect(sender.top_up(channel_id, amount), error) is not None or error is None:
            ch.deposit += amount
        if extra and not ch.closed:
            self.expect(sender.extend(channel_id, ch.expiry + extra), None)
            ch.expiry += extra

    # --- staking --------------------------------------------------------------------------

    @rule(validator=st.integers(0, 2), amount=st.integers(1, 300 * AGT))
    def stake(self, validator: int, amount: int) -> None:
        self.expect(self.v[validator].staking.stake(amount), None)

    @rule(validator=st.integers(0, 2), amount=st.integers(1, 1_500 * AGT))
    def request_unstake(self, validator: int, amount: int) -> None:
        active = self.run(self.v[validator].staking.stake_of(self.validators[validator].address)).active
        error = "InsufficientStake" if amount > active else None
        self.expect(self.v[validator].staking.request_unstake(amount), error)

    @rule(validator=st.integers(0, 2))
    def withdraw(self, validator: int) -> None:
        info = self.run(self.v[validator].staking.stake_of(self.validators[validator].address))
        error = "NothingToWithdraw" if info.unbonding == 0 or self.now() < info.release_at else None
        self.expect(self.v[validator].staking.withdraw(), error)

    @rule(
        accused=st.integers(0, 2),
        shift=st.integers(1, 2),
        voter_agrees=st.none() | st.booleans(),
        second=st.booleans(),
        outsider_votes=st.booleans(),
    )
    def slash_round(
        self, accused: int, shift: int, voter_agrees: bool | None, second: bool, outsider_votes: bool
    ) -> None:
        """Whole disputes: attest, challenge, draw, committee vote, window passes, resolve.

        With three validators the committee of a dispute is the one validator that is neither party
        (if eligible). With `second`, that validator also challenges the same attestation and the first
        challenger sits on its committee and votes against the accused: the accused is slashed at most once.
        """
        challenger, voter = (accused + shift) % 3, (accused + 3 - shift) % 3
        eligible = [self.run(self.any.staking.is_validator(a.address)) for a in self.validators]
        if not (eligible[accused] and eligible[challenger]):
            return
        self.tasks += 1
        task = self.tasks.to_bytes(32, "big")
        accused_address = self.validators[accused].address
        self.expect(self.v[accused].staking.attest(task, BAD), None)
        self.expect(self.v[challenger].staking.attest(task, GOOD), None)
        opened = self.expect(self.v[challenger].staking.open_dispute(task, accused_address, GOOD), None)
        assert opened is not None
        disputes = [opened.dispute_id]
        if second and eligible[voter]:
            self.expect(self.v[voter].staking.attest(task, OTHER), None)
            again = self.expect(self.v[voter].staking.open_dispute(task, accused_address, OTHER), None)
            assert again is not None
            disputes.append(again.dispute_id)
        committees = [self.expect(self.u[0].staking.draw_committee(d), None) for d in disputes]
        assert committees[0] is not None
        assert committees[0].members == ((self.validators[voter].address,) if eligible[voter] else ())
        if outsider_votes:  # neither a party nor drawn: refused
            self.expect(self.u[1].staking.vote(opened.dispute_id, GOOD), "NotCommitteeMember")
        voted = voter_agrees is not None and eligible[voter]
        if voted:
            self.expect(self.v[voter].staking.vote(opened.dispute_id, BAD if voter_agrees else GOOD), None)
        if len(disputes) == 2:
            self.expect(self.v[challenger].staking.vote(disputes[1], GOOD), None)
        self.jump(STAKING_CONFIG.dispute_window)
        resolved = [self.expect(self.any.staking.resolve(d), None) for d in disputes]
        first = resolved[0]
        assert first is not None
        assert (first.decided, first.upheld) == (voted, voted and voter_agrees is True)
        slashes_of_accused = [s for r in resolved if r is not None for s in r.slashes if s.validator == accused_address]
        assert len(slashes_of_accused) <= 1

    # --- federated rewards ----------------------------------------------------------------

    @initialize(
        sponsor=st.integers(0, 4),
        budget=st.integers(10 * AGT, 40 * AGT),
        rewards=st.dictionaries(st.integers(0, 7), st.integers(1, 8 * AGT), min_size=1, max_size=6),
    )
    def seed_federated_job(self, sponsor: int, budget: int, rewards: dict[int, int]) -> None:
        """Every example starts with a federated job (its sponsor aggregating) with round 0 posted, so the claim,
        refund and deadline rules always have leaves to work on whichever rules the example enables."""
        deadline = self.now() + 10_800
        sponsor_address = self.users[sponsor].address
        terms = FederatedTerms(sponsor_address, budget, deadline, MIN_CLAIM_WINDOW)
        created = self.expect_federated(self.u[sponsor].federated.create_job(terms), None)
        assert created is not None
        job = FederatedJobModel(sponsor, SPONSOR_AGGREGATES, budget, deadline, deadline + MIN_CLAIM_WINDOW)
        self.fed_jobs[created.job_id] = job
        tree = RewardTree(created.job_id, 0, {self.contributors[i].address: a for i, a in rewards.items()})
        total = min(tree.total, budget)  # a tree worth more than the budget is posted short
        self.expect_federated(self.u[sponsor].federated.post_root(created.job_id, 0, tree.root, total), None)
        job.rounds[0] = RoundModel(tree, total)
        job.posted = total

    @rule(
        sponsor=st.integers(0, 4),
        aggregator=st.integers(0, SPONSOR_AGGREGATES),
        budget=st.integers(1, 40 * AGT),
        ttl=st.sampled_from([2_700, 5_400, 10_800]),
        window=st.sampled_from([MIN_CLAIM_WINDOW, MIN_CLAIM_WINDOW + 3_600]),
    )
    def create_federated_job(self, sponsor: int, aggregator: int, budget: int, ttl: int, window: int) -> None:
        deadline = self.now() + ttl
        error = None
        if aggregator == SPONSOR_AGGREGATES:
            address = self.users[sponsor].address
        else:
            address = self.validators[aggregator].address
            active = self.run(self.v[aggregator].staking.stake_of(address)).active
            error = None if active >= MIN_STAKE else "AggregatorNotValidator"
        terms = FederatedTerms(address, budget, deadline, window)
        created = self.expect_federated(self.u[sponsor].federated.create_job(terms), error)
        if created is not None:
            assert created.claim_deadline == deadline + window
            self.fed_jobs[created.job_id] = FederatedJobModel(sponsor, aggregator, budget, deadline, deadline + window)

    def _pick_fed_job(self, pick: int) -> tuple[int, FederatedJobModel] | None:
        if not self.fed_jobs:
            return None
        job_id = sorted(self.fed_jobs)[pick % len(self.fed_jobs)]
        return job_id, self.fed_jobs[job_id]

    def _fed_signer(self, job: FederatedJobModel, intruder: bool) -> Clients:
        """The job's aggregator, or with `intruder` someone who is not."""
        if job.aggregator == SPONSOR_AGGREGATES:
            return self.u[(job.sponsor + 1) % 5] if intruder else self.u[job.sponsor]
        return self.v[(job.aggregator + 1) % 3] if intruder else self.v[job.aggregator]

    @rule(
        pick=st.integers(0, 10**6),
        round_no=st.integers(0, 3),
        rewards=st.dictionaries(st.integers(0, 7), st.integers(1, 8 * AGT), min_size=1, max_size=5),
        shortfall=st.sampled_from([0, 0, 0, 1, 3 * AGT]),
        intruder=st.sampled_from([False, False, False, True]),
    )
    def post_root(self, pick: int, round_no: int, rewards: dict[int, int], shortfall: int, intruder: bool) -> None:
        """A round's root; with `shortfall` the posted total is below what the tree's leaves add up to."""
        chosen = self._pick_fed_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        tree = RewardTree(job_id, round_no, {self.contributors[i].address: a for i, a in rewards.items()})
        total = max(tree.total - shortfall, 1)
        if intruder:
            error: str | None = "NotAggregator"
        elif self.now() >= job.deadline:
            error = "DeadlinePassed"
        elif round_no in job.rounds:
            error = "RoundAlreadyPosted"
        else:
            error = "ExceedsBudget" if total > job.budget - job.posted else None
        signer = self._fed_signer(job, intruder)
        if self.expect_federated(signer.federated.post_root(job_id, round_no, tree.root, total), error) is not None:
            job.rounds[round_no] = RoundModel(tree, total)
            job.posted += total

    def _posted_rounds(self) -> list[tuple[int, int]]:
        return [(j, r) for j, job in sorted(self.fed_jobs.items()) for r in sorted(job.rounds)]

    def _reward_claim_error(self, claim: RewardClaim, now: int) -> str | None:
        """The contract's verdict on one claim, in the order it checks."""
        job = self.fed_jobs[claim.job_id]
        posted = job.rounds.get(claim.round)
        if posted is not None and claim.account in posted.claimed:
            return "AlreadyClaimed"
        if posted is None:
            return "UnknownRound"
        if now >= job.claim_deadline:
            return "ClaimWindowClosed"
        if not verify_claim(posted.tree.root, claim):  # the Python tree is the oracle the chain must agree with
            return "InvalidProof"
        return "ExceedsRoundTotal" if claim.amount > posted.total - posted.paid else None

    def _book_reward(self, claim: RewardClaim) -> None:
        job = self.fed_jobs[claim.job_id]
        posted = job.rounds[claim.round]
        posted.claimed.add(claim.account)
        posted.paid += claim.amount
        job.claimed += claim.amount

    @rule(
        pick=st.integers(0, 10**6),
        leaf=st.integers(0, 10**6),
        tamper=st.sampled_from(["none", "none", "none", "amount", "account", "round"]),
        relayer=st.integers(0, 4),
    )
    def claim_reward(self, pick: int, leaf: int, tamper: str, relayer: int) -> None:
        """One leaf, submitted by anyone; tampered leaves (amount, account, round) must not pay."""
        posted = self._posted_rounds()
        if not posted:
            return
        job_id, round_no = posted[pick % len(posted)]
        tree = self.fed_jobs[job_id].rounds[round_no].tree
        accounts = sorted(tree.rewards)
        claim = tree.claim(accounts[leaf % len(accounts)])
        if tamper == "amount":
            claim = replace(claim, amount=claim.amount + 1)
        elif tamper == "account":
            other = (self.contributor_index[claim.account] + 1) % len(self.contributors)
            claim = replace(claim, account=self.contributors[other].address)
        elif tamper == "round":
            claim = replace(claim, round=(round_no + 1) % 4)
        now = self.now()
        error = self._reward_claim_error(claim, now)
        earlier = self._reward_claim_error(claim, now - 1)
        paid = self.expect_federated(self.u[relayer].federated.claim(claim), error, earlier)
        if paid is not None:
            assert (paid.account, paid.amount) == (claim.account, claim.amount)
            self._book_reward(claim)

    @rule(
        picks=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=5),
        relayer=st.integers(0, 4),
    )
    def claim_rewards_many(self, picks: list[tuple[int, int]], relayer: int) -> None:
        """A batch of genuine leaves (repeats allowed): claimed ones are skipped; a closed window or an exhausted
        round reverts the whole batch."""
        posted = self._posted_rounds()
        if not posted:
            return
        claims = []
        for pick, leaf in picks:
            job_id, round_no = posted[pick % len(posted)]
            tree = self.fed_jobs[job_id].rounds[round_no].tree
            claims.append(tree.claim(sorted(tree.rewards)[leaf % len(tree.rewards)]))
        now = self.now()
        error: str | None = None
        paid: list[RewardClaim] = []
        skipped: list[RewardClaim] = []
        seen: set[tuple[int, int, str]] = set()
        extra: dict[tuple[int, int], int] = {}
        for claim in claims:
            key = (claim.job_id, claim.round)
            job = self.fed_jobs[claim.job_id]
            posted_round = job.rounds[claim.round]
            if claim.account in posted_round.claimed or (*key, claim.account) in seen:
                skipped.append(claim)
                continue
            if now >= job.claim_deadline:
                error = "ClaimWindowClosed"
                break
            if claim.amount > posted_round.total - posted_round.paid - extra.get(key, 0):
                error = "ExceedsRoundTotal"
                break
            extra[key] = extra.get(key, 0) + claim.amount
            seen.add((*key, claim.account))
            paid.append(claim)
        batch = self.expect_federated(self.u[relayer].federated.claim_many(claims), error)
        if batch is None:
            return
        assert [(c.job_id, c.round, c.account, c.amount) for c in batch.claimed] == [
            (c.job_id, c.round, c.account, c.amount) for c in paid
        ]
        assert [(s.job_id, s.round, s.account) for s in batch.skipped] == [
            (c.job_id, c.round, c.account) for c in skipped
        ]
        for claim in paid:
            self._book_reward(claim)

    @rule(pick=st.integers(0, 10**6), intruder=st.sampled_from([False, False, True]))
    def refund_federated(self, pick: int, intruder: bool) -> None:
        chosen = self._pick_fed_job(pick)
        if chosen is None:
            return
        job_id, job = chosen
        now = self.now()
        closed = now >= job.claim_deadline
        owed = job.budget - (job.claimed if closed else job.posted)
        if intruder:
            error: str | None = "NotSponsor"
        elif now < job.deadline:
            error = "DeadlineNotPassed"
        else:
            error = None if owed > job.refunded else "NothingToRefund"
        signer = self.u[(job.sponsor + 1) % 5] if intruder else self.u[job.sponsor]
        refunded = self.expect_federated(signer.federated.refund(job_id), error)
        if refunded is not None:
            assert (refunded.amount, refunded.closed) == (owed - job.refunded, closed)
            job.refunded = owed

    @rule(pick=st.integers(0, 10**6), to_claim_deadline=st.booleans(), offset=st.sampled_from([-1, 0]))
    def federated_time_travel(self, pick: int, to_claim_deadline: bool, offset: int) -> None:
        """Make the next transaction land exactly on (or one second before) a job's deadline or claim deadline."""
        chosen = self._pick_fed_job(pick)
        if chosen is None:
            return
        job = chosen[1]
        target = (job.claim_deadline if to_claim_deadline else job.deadline) + offset
        if target - self.now() >= 1:
            self.env.counters.steps += 1
            self.env.counters.federated += 1
            self.jump(target - self.now())
            assert self.now() == target

    @rule(seconds=st.sampled_from([60, 600, 1_800, 3_600]))
    def advance_time(self, seconds: int) -> None:
        self.env.counters.steps += 1
        self.jump(seconds)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def tokens_are_conserved_and_backed(self) -> None:
        balances = dict(zip(self.holders, self._balances(), strict=True))
        assert sum(balances.values()) == self.total
        escrowed = sum(j.budget for j in self.jobs.values() if j.status in (JobStatus.FUNDED, JobStatus.SUBMITTED))
        assert balances[self.any.escrow.address] == escrowed
        unclaimed = sum(c.deposit - c.claimed for c in self.channels.values() if not c.closed)
        assert balances[self.any.channels.address] == unclaimed
        assert balances[self.any.federated.address] == sum(j.escrowed for j in self.fed_jobs.values())
        assert balances[self.any.staking.address] == sum(self._stakes())

    def teardown(self) -> None:
        try:
            self._drain_everything()
        finally:
            self.env.chain.revert(self.snapshot)
            for clients in (*self.u, *self.v):
                clients.token.conn.reset_nonce()

    def _drain_everything(self) -> None:
        """After every deadline anyone can free every escrowed wei: nothing may stay stuck."""
        for client, validator in zip(self.v, self.validators, strict=True):
            active = self.run(client.staking.stake_of(validator.address)).active
            if active:
                self.run(client.staking.request_unstake(active))
        self.jump(STAKING_CONFIG.unbonding_period + 10_000)
        for job_id, job in self.jobs.items():
            if job.status in LIVE:
                self.run(self.any.escrow.claim_refund(job_id))
        for channel_id, ch in self.channels.items():
            if not ch.closed:
                self.run(self.any.channels.refund(channel_id))
        for client, validator in zip(self.v, self.validators, strict=True):
            if self.run(client.staking.stake_of(validator.address)).unbonding:
                self.run(client.staking.withdraw())
        for job_id, fed in self.fed_jobs.items():  # every claim window is over: the sponsor takes all the rest
            if fed.escrowed:
                refunded = self.run(self.u[fed.sponsor].federated.refund(job_id))
                assert (refunded.amount, refunded.closed) == (fed.escrowed, True)
        balances = dict(zip(self.holders, self._balances(), strict=True))
        for contract in (self.any.escrow, self.any.channels, self.any.staking, self.any.federated):
            assert balances[contract.address] == 0, f"{contract.contract_name} kept {balances[contract.address]}"
        assert sum(balances.values()) == self.total


def _calldata(signature: str, address: str) -> str:
    return "0x" + function_signature_to_4byte_selector(signature).hex() + address[2:].lower().rjust(64, "0")


async def _register_lineage(chain: LocalChain, actors: Actors) -> list[int]:
    """Three models, three generations, royalties to actors only (so conservation stays closed)."""
    async with chain.connect() as conn:
        carol, dave, bob = (clients_for(conn, a) for a in (actors.carol, actors.dave, actors.bob))
        base = (await carol.models.register_model(ModelListing(b"\x01" * 32))).model_id
        mid_lineage = Lineage(parents=((base, 2_000),), contributors=((actors.outsider.address, 500),))
        mid = (await dave.models.register_model(ModelListing(b"\x02" * 32), mid_lineage)).model_id
        top_lineage = Lineage(parents=((mid, 3_000),), contributors=((actors.alice.address, 1_000),))
        top = (await bob.models.register_model(ModelListing(b"\x03" * 32), top_lineage)).model_id
        return [base, mid, top]


def _run_economy(chain: LocalChain, actors: Actors, examples: int, steps: int) -> Counters:
    model_ids = asyncio.run(_register_lineage(chain, actors))
    loop = asyncio.new_event_loop()
    conn = chain.connect()
    loop.run_until_complete(conn.keep_alive())
    users = [clients_for(conn, a) for a in (actors.alice, actors.bob, actors.carol, actors.dave, actors.outsider)]
    env = Env(chain, actors, model_ids, loop, conn, users, [clients_for(conn, a) for a in actors.validators])
    rpc_call(chain.rpc_url, "anvil_setBlockTimestampInterval", [1])
    try:
        run_state_machine_as_test(
            lambda: Economy(env),
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        rpc_call(chain.rpc_url, "anvil_removeBlockTimestampInterval")
        loop.run_until_complete(conn.close())
        loop.close()
    return env.counters


@pytest.mark.slow
def test_economy_conservesTokensAndLeavesNoStuckFunds(chain: LocalChain, actors: Actors) -> None:
    counters = _run_economy(chain, actors, examples=40, steps=75)
    assert counters.steps >= 1_500, counters
    assert counters.federated >= 375, counters
