"""Attacks on audits and dispute votes bound to what was paid for, on anvil with real agents and real contracts.

The honest parties are roles built as the economy runner builds them (agents.roles.seller / validator.build);
the attacker is a buyer double (a Probe with its own channels and keys) or a bare staked account, and sends
whatever it likes. Each test checks that the honest party loses nothing: the validator sends no transaction
(its nonce and ETH balance do not move) and attests nothing it was not asked to by the payer of a call the
seller stood by; the seller is neither disputed nor slashed; a voter votes only in a dispute it sits on,
about the call disputed. Findings are those of issue 10 (`issues show 10`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from agents.base import AgoraAgent
from agents.capabilities.inference import ServedCall, sign_task, task_id
from agents.capabilities.validation import Validation
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.base import GAS_USED, GasUse
from agents.roles.selling import CLAIM, Claimed
from agents.settlement import to_bytes32
from agents.state import Repository
from agents.wallet import Wallet
from marketplace.chain import Ballot, Committee, StakingClient, sign_voucher
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain.deploy import STAKING_CONFIG
from protocols.commitment import output_commitment
from protocols.disputes import DisputeVoteRequest
from protocols.errors import ErrorCode, ErrorReply
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.payment import ChannelOpened, Receipt, Voucher
from protocols.validation import Attestation, ValidationRequest
from tests.attacks.agent_world import chain, economy
from tests.roles.world import CLASSIFIER, MIN_STAKE, Buyer, PaidCall, World

pytestmark = pytest.mark.chain

ZERO = bytes(32)
OTHER_ROWS = [[0.0] * 16, [0.3] * 16]
BOGUS = b"\xbb" * 32
"""A result nobody computed: what a rogue challenger attests to dispute an honest seller."""


async def _market(economy: World, validators: int = 1) -> tuple[AgoraAgent, list[AgoraAgent]]:
    """An honest seller of the classifier with the minimum bond, and staked validators."""
    seller = await economy.seller_with_model(seller_role)
    await economy.stake(seller)
    staked = [await economy.validator(validator_role, f"validator-{i}") for i in range(validators)]
    return seller, staked


async def _footprint(economy: World, agent: AgoraAgent) -> tuple[int, int]:
    """What an agent's account spent on chain: (transactions sent, ETH left)."""
    w3, account = economy.conn.w3, to_checksum_address(agent.keys.eth_address)
    return int(await w3.eth.get_transaction_count(account)), int(await w3.eth.get_balance(account))


def _validations(validator: AgoraAgent) -> Repository[Validation]:
    return Repository(validator.store, "validator.validation", Validation)


def _task(call: PaidCall, request: ValidationRequest) -> bytes:
    """The task id a request claims to be about."""
    return task_id(call.model_chain_id, request.claimed_commitment, request.channel_id, request.cumulative_amount)


async def _unharmed(economy: World, seller: AgoraAgent, challengers: list[AgoraAgent], *tasks: bytes) -> None:
    """The seller keeps its whole bond and nobody disputed its attestations of `tasks`."""
    staking = StakingClient(economy.conn)
    account = seller.keys.eth_address
    assert (await staking.stake_of(account)).total == MIN_STAKE
    for task in tasks:
        assert not (await staking.attestation_info(task, account)).slashed
        for challenger in challengers:
            assert await staking.challenge_of(task, account, challenger.keys.eth_address) == 0


async def test_auditOfDifferentInputs_refusedAndHonestSellerNotDisputed(economy: World) -> None:
    """Finding 2 (an audit is bound to nothing): a buyer makes real calls, then asks a validator to re-execute
    other inputs under one call's commitment and payment, hoping for a verdict against the honest seller.

    Before the binding the task id was keccak(job id) alone: the validator re-executed and attested whatever
    inputs came with a job id (here call 2's inputs and result, or made-up outputs, under call 1's job id),
    spending gas and putting a result on chain for call 1 that is not call 1's. Now the task id commits to the
    model, the commitment and the payment, and the seller must have attested exactly that task: refused with
    chain reads only, and the real call still audits as valid.
    """
    seller, (validator,) = await _market(economy)
    mallory = await economy.buyer("mallory")
    channel, price = await mallory.open_channel(seller)
    real = await mallory.paid_call(seller, channel, "job-1", price)
    other = await mallory.paid_call(seller, channel, "job-2", price, OTHER_ROWS)
    for call in (real, other):
        await mallory.have_attested(call)
    made_up = [row[::-1] for row in other.result.outputs]
    crafted = [
        real.audit(inputs=OTHER_ROWS),  # other inputs, this call's commitment and payment
        real.audit(inputs=OTHER_ROWS, outputs=other.result.outputs, claimed_commitment=other.commitment),
        real.audit(
            inputs=OTHER_ROWS, outputs=made_up, claimed_commitment=output_commitment(CLASSIFIER.id, OTHER_ROWS, made_up)
        ),
    ]
    before = await _footprint(economy, validator)

    answers = [await mallory.probe.ask(validator.address, request, (Attestation,)) for request in crafted]

    assert all(isinstance(a, ErrorReply) and a.code == ErrorCode.REJECTED for a in answers), answers
    assert await _footprint(economy, validator) == before
    assert len(_validations(validator)) == 0
    staking = StakingClient(economy.conn)
    for request in crafted:
        assert await staking.attestation_of(_task(real, request), validator.keys.eth_address) == ZERO
    await _unharmed(economy, seller, [validator], real.task, other.task)
    verdict = await mallory.probe.ask(validator.address, real.audit(), (Attestation,), wait=30)
    assert isinstance(verdict, Attestation), verdict
    assert (verdict.valid, verdict.recomputed_commitment) == (True, real.commitment)
    await _unharmed(economy, seller, [validator], real.task, other.task)


async def test_auditNotSignedByPayer_refusedWithoutGas(economy: World) -> None:
    """Findings 2 and 8 (unauthenticated work requests cost the validator gas and CPU): a third party, or the
    seller's rival, sends validation requests for Alice's call, signed by itself, by nobody, or by Alice over
    another task, or paid from its own channel to the same seller.

    Before the binding a ValidationRequest carried no signature: the validator re-executed and attested any
    call anyone named. Now only the channel's payer can have a call audited; the refusals cost the validator
    no transaction, and Alice's own request is still served.
    """
    seller, (validator,) = await _market(economy)
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    call = await economy.attested_call(alice, seller)
    own_channel, price = await mallory.open_channel(seller)
    alice_key = alice.settlement.conn.account
    unsigned = {
        "mallory": call.audit(signer=mallory.settlement.conn.account),
        "rival": call.audit(signer=Wallet.from_seed("the seller's rival").account),
        "nobody": call.audit(signature="0x"),
        "garbage": call.audit(signature="0x" + "00" * 65),
        "alice, over another task": call.audit(signature=sign_task(alice_key, keccak(text="another task"))),
    }
    mallory_key = mallory.settlement.conn.account
    not_hers = [
        # Mallory pays the same seller herself and audits Alice's result as if it were her call,
        call.audit(signer=mallory_key, channel_id=own_channel, cumulative_amount=price),
        # or names a channel that does not exist.
        call.audit(signer=mallory_key, channel_id=own_channel + 1_000),
    ]
    before = await _footprint(economy, validator)

    refused = {name: await mallory.probe.ask(validator.address, r, (Attestation,)) for name, r in unsigned.items()}
    borrowed = [await mallory.probe.ask(validator.address, r, (Attestation,)) for r in not_hers]

    for name, answer in refused.items():
        assert isinstance(answer, ErrorReply), name
        assert answer.code == ErrorCode.UNAUTHORIZED, (name, answer)
    assert all(isinstance(a, ErrorReply) and a.code == ErrorCode.REJECTED for a in borrowed), borrowed
    assert await _footprint(economy, validator) == before
    assert await StakingClient(economy.conn).attestation_of(call.task, validator.keys.eth_address) == ZERO
    assert len(_validations(validator)) == 0
    await _unharmed(economy, seller, [validator], call.task)
    verdict = await alice.probe.ask(validator.address, call.audit(), (Attestation,), wait=30)
    assert isinstance(verdict, Attestation), verdict
    assert verdict.valid


async def test_auditOfUnattestedCall_refused(economy: World) -> None:
    """Findings 2 and 8: a buyer asks a validator to audit a call the seller never stood by on chain (a real
    paid call it did not ask the seller to attest, and a call it never made, paid with its next voucher).

    Before the binding the validator re-executed and attested such calls (it looked at the seller's
    attestation only when about to dispute): gas and CPU for an audit that could never slash anyone. Now it
    is refused with chain reads only; once the seller attests, the same request is served.
    """
    seller, (validator,) = await _market(economy)
    alice = await economy.buyer("alice")
    channel, price = await alice.open_channel(seller)
    call = await alice.paid_call(seller, channel, "job-1", price)
    outputs = [[0.5, 0.5], [0.5, 0.5]]
    never_made = call.audit(
        job_id="job-2",
        inputs=OTHER_ROWS,
        outputs=outputs,
        claimed_commitment=output_commitment(CLASSIFIER.id, OTHER_ROWS, outputs),
        cumulative_amount=2 * price,
    )
    before = await _footprint(economy, validator)

    answers = [await alice.probe.ask(validator.address, r, (Attestation,)) for r in (call.audit(), never_made)]

    for answer in answers:
        assert isinstance(answer, ErrorReply), answer
        assert (answer.code, "not attested" in answer.detail) == (ErrorCode.REJECTED, True)
    assert await _footprint(economy, validator) == before
    staking = StakingClient(economy.conn)
    assert await staking.attestation_of(call.task, validator.keys.eth_address) == ZERO
    assert len(_validations(validator)) == 0
    await alice.have_attested(call)
    verdict = await alice.probe.ask(validator.address, call.audit(), (Attestation,), wait=30)
    assert isinstance(verdict, Attestation), verdict
    assert verdict.valid
    assert await staking.attestation_of(call.task, validator.keys.eth_address) == to_bytes32(call.commitment)


async def test_repeatedAudit_attestsOnce(economy: World) -> None:
    """Finding 8 (work requests cost gas and CPU): the payer, or anyone who saw its signed request, floods a
    validator with the same audit.

    Before the binding every copy was re-executed and attested again (the second attestation reverts
    AlreadyAttested: an error for the requester, CPU for the validator). Now the first copy is attested and
    every other one answered from the validator's record: one attestation, one transaction, the same verdict.
    """
    seller, (validator,) = await _market(economy)
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    call = await economy.attested_call(alice, seller)
    request = call.audit()
    before = await _footprint(economy, validator)

    flood = [alice.probe.ask(validator.address, request, (Attestation,), wait=60) for _ in range(5)]
    answers = [*await asyncio.gather(*flood), await mallory.probe.ask(validator.address, request, (Attestation,))]

    assert all(isinstance(a, Attestation) for a in answers), answers
    assert {(a.valid, a.recomputed_commitment) for a in answers if isinstance(a, Attestation)} == {
        (True, call.commitment)
    }
    sent, _ = await _footprint(economy, validator)
    assert sent == before[0] + 1
    used: GasUse = await economy.call(validator, GAS_USED)
    assert used.gas["attest"][0] == 1
    assert [task for task, _ in _validations(validator).items()] == [call.task.hex()]
    await _unharmed(economy, seller, [validator], call.task)


async def _rogue_dispute(economy: World, call: PaidCall) -> tuple[Buyer, int, Committee]:
    """A staked rogue attests a result nobody computed for the seller's attested call and disputes it."""
    rogue = await economy.buyer("rogue", tokens=MIN_STAKE)
    staking = rogue.settlement.staking
    await rogue.settlement.token.approve(staking.address, MIN_STAKE)
    await staking.stake(MIN_STAKE)
    await staking.attest(call.task, BOGUS)
    opened = await staking.open_dispute(call.task, call.seller.keys.eth_address, BOGUS)
    committee = await staking.draw_committee(opened.dispute_id)
    assert committee is not None
    return rogue, opened.dispute_id, committee


def _vote(dispute_id: int, call: PaidCall, **changes: Any) -> DisputeVoteRequest:
    """A request to vote in `dispute_id` about `call`, with `changes` to its fields."""
    fields: dict[str, Any] = {
        "dispute_id": dispute_id,
        "job_id": call.job_id,
        "model_id": call.result.model_id,
        "inputs": call.inputs,
        "outputs": call.result.outputs,
        "channel_id": call.channel,
        "cumulative_amount": call.cumulative,
        **changes,
    }
    return DisputeVoteRequest(**fields)


async def _ballot(economy: World, dispute_id: int, member: AgoraAgent) -> Ballot:
    committee = await StakingClient(economy.conn).committee_of(dispute_id)
    return next(s.ballot for s in committee.seats if s.member.lower() == member.keys.eth_address.lower())


async def _honest_votes_decide(economy: World, asker: Buyer, dispute_id: int, call: PaidCall) -> None:
    """Anyone hands the committee the disputed call; its members vote, and the dispute resolves for the seller."""
    committee = await StakingClient(economy.conn).committee_of(dispute_id)
    members = {s.member.lower() for s in committee.seats}
    for agent in economy.started:
        if agent.keys.eth_address.lower() in members and await _ballot(economy, dispute_id, agent) is Ballot.ABSENT:
            answer = await asker.probe.ask(agent.address, _vote(dispute_id, call), (Attestation,), wait=30)
            assert isinstance(answer, Attestation), answer
            assert answer.recomputed_commitment == call.commitment
    economy.chain.increase_time(STAKING_CONFIG.dispute_window)
    resolved = await asker.settlement.staking.resolve(dispute_id)
    assert (resolved.decided, resolved.upheld) == (True, True)
    assert call.seller.keys.eth_address not in {s.validator for s in resolved.slashes}


async def test_voteRequestForAnotherTask_refused(economy: World) -> None:
    """Finding 1 (vote requests are unauthenticated, voters recompute on whatever the requester sends): a rogue
    disputes an honest seller's attested call, then hands a committee member another call to re-execute:
    another paid call of the same buyer, that call's inputs under the disputed payment, or the disputed call
    under another payment. Voting on any of them would oppose the seller's result and slash it.

    The member must rebuild the disputed task id from the request (model, the accused commitment, channel,
    cumulative amount) and the inputs and outputs must match the accused commitment; otherwise it refuses
    before re-executing or sending a transaction. Handed the disputed call, the committee upholds the seller.
    """
    seller, (member, other_member) = await _market(economy, validators=2)
    alice = await economy.buyer("alice")
    channel, price = await alice.open_channel(seller)
    call = await alice.paid_call(seller, channel, "job-1", price)
    second = await alice.paid_call(seller, channel, "job-2", price, OTHER_ROWS)
    for paid in (call, second):
        await alice.have_attested(paid)
    rogue, dispute_id, committee = await _rogue_dispute(economy, call)
    assert set(committee.members) == {member.keys.eth_address, other_member.keys.eth_address}
    crafted = [
        _vote(dispute_id, second),
        _vote(dispute_id, call, inputs=second.inputs, outputs=second.result.outputs),
        _vote(dispute_id, call, cumulative_amount=second.cumulative),
        _vote(dispute_id, call, channel_id=channel + 1),
        _vote(dispute_id + 1, call),  # no such dispute
    ]
    before = await _footprint(economy, member)

    answers = [await rogue.probe.ask(member.address, request, (Attestation,)) for request in crafted]

    assert all(isinstance(a, ErrorReply) and a.code == ErrorCode.REJECTED for a in answers), answers
    assert await _footprint(economy, member) == before
    assert await _ballot(economy, dispute_id, member) is Ballot.ABSENT
    await _honest_votes_decide(economy, alice, dispute_id, call)
    assert (await StakingClient(economy.conn).stake_of(seller.keys.eth_address)).total == MIN_STAKE


async def test_voteRequestToNonMember_refused(economy: World) -> None:
    """Finding 1 (any staker could vote; vote requests are unauthenticated): a rogue disputes an honest seller
    and asks agents that do not sit on the committee to vote on the disputed call: a validator staked after
    the draw, and the accused seller itself (a staked seller runs a DisputeVoter too).

    The voter checks the committee on chain before re-executing: a non-member answers UNAUTHORIZED and sends
    no transaction (before the binding the voter re-executed for anyone and sent its vote, which the committee
    contract refuses). The members, handed the same call, vote and uphold the seller.
    """
    seller, members = await _market(economy, validators=2)
    alice = await economy.buyer("alice")
    call = await economy.attested_call(alice, seller)
    rogue, dispute_id, committee = await _rogue_dispute(economy, call)
    assert set(committee.members) == {m.keys.eth_address for m in members}
    latecomer = await economy.validator(validator_role, "latecomer")
    request = _vote(dispute_id, call)
    before = {agent.name: await _footprint(economy, agent) for agent in (latecomer, seller)}

    answers = [await rogue.probe.ask(agent.address, request, (Attestation,)) for agent in (latecomer, seller)]

    for answer in answers:
        assert isinstance(answer, ErrorReply), answer
        assert answer.code == ErrorCode.UNAUTHORIZED
    assert {agent.name: await _footprint(economy, agent) for agent in (latecomer, seller)} == before
    after = await StakingClient(economy.conn).committee_of(dispute_id)
    assert after.seats == committee.seats  # nobody voted, nobody joined
    await _honest_votes_decide(economy, alice, dispute_id, call)
    await _unharmed(economy, seller, members, call.task)


async def test_channelOpenedResent_doesNotResetPaidAmount(economy: World) -> None:
    """Finding 5 (re-sending ChannelOpened reset a channel's cumulative amount: free calls, and any buyer with
    a deal could wipe another buyer's voucher): Mallory pays two calls, re-sends her channel's notice and one
    naming Alice's channel, then pays "again" from zero and asks for a call.

    The seller's book keeps the first record of each channel: Mallory's cheap voucher and the call it was
    meant to buy are refused, and the seller claims everything both buyers paid. (Fixed with the payment
    capability in 911512d, before the audit binding; 911512d^'s model seller rewrote the channel's record with
    a zero total and no voucher on every notice, so this would fail there.)
    """
    seller = await economy.seller_with_model(seller_role)
    alice, mallory = await economy.buyer("alice"), await economy.buyer("mallory")
    alice_channel, alice_price = await alice.open_channel(seller)
    await alice.paid_call(seller, alice_channel, "alice-1", alice_price)
    channel, price = await mallory.open_channel(seller)
    for job in ("job-1", "job-2"):
        await mallory.paid_call(seller, channel, job, price)
    notices = []
    for payer, paid_channel in ((mallory, channel), (alice, alice_channel)):
        record = payer.payer.channels.get(str(paid_channel))
        assert record is not None
        notices.append(
            ChannelOpened(
                channel_id=str(paid_channel),
                chain_id=payer.settlement.conn.deployment.chain_id,
                contract=payer.settlement.channels.address,
                payer=payer.account,
                payee=seller.keys.eth_address,
                deposit=record.deposit,
                expiry=record.expiry,
            )
        )

    resent = [await mallory.probe.ask(seller.address, notice, (Receipt,)) for notice in notices]
    unknown = ChannelOpened(**{**notices[0].dict(), "channel_id": str(channel + 1_000)})
    made_up = await mallory.probe.ask(seller.address, unknown, (Receipt,))
    record = mallory.payer.channels.get(str(channel))
    assert record is not None
    signed = sign_voucher(
        mallory.settlement.conn.account, SignedAmount(channel, record.nonce, price), mallory.settlement.channels.domain
    )
    again = Voucher(
        channel_id=str(channel),
        cumulative_amount=price,  # as if the book had been reset to zero
        nonce=record.nonce,
        signature="0x" + signed.signature.hex(),
        job_id="job-3",
    )
    cheap = await mallory.probe.ask(seller.address, again, (Receipt,))
    free = await mallory.probe.ask(
        seller.address, InferenceRequest(job_id="job-3", model_id=CLASSIFIER.id, inputs=OTHER_ROWS, price=price),
        (InferenceResult,),
    )  # fmt: skip

    assert [r.cumulative_amount for r in resent if isinstance(r, Receipt)] == [2 * price, alice_price]
    assert isinstance(made_up, ErrorReply)
    assert made_up.code == ErrorCode.REJECTED
    assert isinstance(cheap, ErrorReply), "a voucher below the running total bought a call"
    assert isinstance(free, ErrorReply)
    served = Repository(seller.store, "inference.served", ServedCall)
    assert len([c for _, c in served.items() if c.buyer == mallory.address]) == 2
    claimed: Claimed = await economy.call(seller, CLAIM)
    assert sorted(claimed.claims[0][0]) == sorted([(alice_channel, alice_price), (channel, 2 * price)])
    paid = await mallory.paid_call(seller, channel, "job-3", price, OTHER_ROWS)  # the next call costs a third voucher
    assert paid.cumulative == 3 * price
