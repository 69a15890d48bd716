"""The validator role (agents.roles.validator.build) on the real contracts, auditing real calls: a buyer double
pays a real seller (agents.roles.seller.build) through a channel, makes the call, has the seller attest it, then
asks the validator. It re-executes only a request bound to that paid, attested call, attests what it recomputed,
disputes a seller that attested otherwise, and grades only escrow jobs that name it as evaluator."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from agents.base import AgoraAgent
from agents.capabilities.escrow import heldout_commitment, terms_hash
from agents.capabilities.inference import run_call
from agents.capabilities.validation import Validation
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.settlement import to_bytes32
from agents.state import Repository
from agents.testing.doubles import Probe
from marketplace.chain import EscrowClient, EscrowTerms, JobStatus, StakingClient, TokenClient
from marketplace.ml import (
    InferenceRunner,
    build_model,
    load_model,
    make_interactions,
    serialize_dataset,
    serialize_model,
)
from marketplace.ml.zoo import RecommenderSpec
from protocols.errors import ErrorCode, ErrorReply
from protocols.evaluation import EvaluationRequest, EvaluationResult, EvaluationTerms, TermsAccepted
from protocols.validation import Attestation
from tests.roles.world import AGT, CLASSIFIER, MIN_STAKE, PaidCall, World

pytestmark = pytest.mark.chain

ZERO = bytes(32)
BUDGET = 10 * AGT
OTHER_ROWS = [[0.0] * 16, [0.3] * 16]


async def _audited(economy: World, **seller_options: Any) -> tuple[AgoraAgent, PaidCall]:
    """A staked validator, and a call a buyer paid a staked seller for and had it attest."""
    seller = await economy.seller_with_model(seller_role, **seller_options)
    await economy.stake(seller)  # a seller's attestation is slashable only with a bond
    validator = await economy.validator(validator_role)
    call = await economy.attested_call(await economy.buyer("alice"), seller)
    return validator, call


async def _honest_commitment(call: PaidCall, seller: AgoraAgent) -> str:
    """What the listed model (weights from the seller's store) really gives for the call's inputs."""
    listed = await call.buyer.settlement.models.get(CLASSIFIER.id)
    model = load_model(seller.blobs.get(listed.content_hash), listed.content_hash)
    return run_call(InferenceRunner(model), CLASSIFIER.id, call.inputs)[1]


async def _attested(economy: World, validator: AgoraAgent, call: PaidCall) -> bytes:
    return await StakingClient(economy.conn).attestation_of(call.task, validator.keys.eth_address)


async def _transactions(economy: World, agent: AgoraAgent) -> int:
    return int(await economy.conn.w3.eth.get_transaction_count(to_checksum_address(agent.keys.eth_address)))


async def test_validation_requestNotMatchingCommitmentRefusedBeforeAttesting(economy: World) -> None:
    validator, call = await _audited(economy)
    sent = await _transactions(economy, validator)
    wrong_outputs = call.audit(outputs=[row[::-1] for row in call.result.outputs])
    wrong_inputs = call.audit(inputs=OTHER_ROWS)

    answers = [await call.buyer.probe.ask(validator.address, r, (Attestation,)) for r in (wrong_outputs, wrong_inputs)]

    assert all(isinstance(a, ErrorReply) and a.code == ErrorCode.REJECTED for a in answers), answers
    assert await _attested(economy, validator, call) == ZERO
    assert await _transactions(economy, validator) == sent
    assert len(Repository(validator.store, "validator.validation", Validation)) == 0


async def test_validation_honestCallAttestedValidOnChain(economy: World) -> None:
    validator, call = await _audited(economy)

    verdict = await call.buyer.probe.ask(validator.address, call.audit(), (Attestation,), wait=30)

    assert isinstance(verdict, Attestation), verdict
    assert (verdict.valid, verdict.recomputed_commitment) == (True, call.commitment)
    assert await _attested(economy, validator, call) == to_bytes32(call.commitment)
    signed = encode_defunct(text=f"agora-attestation:job-1:1:{call.commitment}")
    assert Account.recover_message(signed, signature=verdict.signature) == validator.keys.eth_address
    staking = StakingClient(economy.conn)
    assert await staking.challenge_of(call.task, call.seller.keys.eth_address, validator.keys.eth_address) == 0


async def test_validation_madeUpOutputsAttestedInvalid(economy: World) -> None:
    validator, call = await _audited(economy, dishonest_rate=1.0)  # the seller attested outputs it made up
    honest = await _honest_commitment(call, call.seller)
    assert honest != call.commitment

    verdict = await call.buyer.probe.ask(validator.address, call.audit(), (Attestation,), wait=30)

    assert isinstance(verdict, Attestation), verdict
    assert not verdict.valid
    assert verdict.recomputed_commitment == honest
    assert await _attested(economy, validator, call) == to_bytes32(honest)
    staking = StakingClient(economy.conn)
    dispute_id = await staking.challenge_of(call.task, call.seller.keys.eth_address, validator.keys.eth_address)
    assert dispute_id != 0  # and it challenged the seller's attestation on chain
    assert (await staking.dispute_of(dispute_id)).accused_result == to_bytes32(call.commitment)


async def _requester(economy: World) -> Probe:
    probe = Probe.create(economy.workdir / "requester", name="requester")
    await probe.start()
    economy.started.append(probe)
    await economy.list_card(probe)  # the validator fetches the data and weights it grants from its endpoint
    return probe


async def _submitted_job(
    economy: World, evaluator: str, client: LocalAccount, holder: Probe, reader: AgoraAgent
) -> tuple[EvaluationTerms, EvaluationRequest]:
    """An escrow job funded by `client`, graded by `evaluator` by terms committed in its spec hash, whose provider
    submitted a real deliverable; the terms the client sends the evaluator, and the request to grade (the held-out
    set and the weights held by `holder`, granted to `reader`)."""
    provider = economy.chain.accounts[3]
    spec = RecommenderSpec()
    model, heldout = build_model(spec, seed=5), serialize_dataset(make_interactions(spec, 400, seed=9))
    artifact = serialize_model(model)
    holder.blobs.put(artifact.data)
    holder.blobs.put(heldout.data)
    terms = EvaluationTerms(
        escrow_job_id=0, dataset_ref="training-data", epochs=1, salt="salt", metric="auc", min_score=0,
        heldout=holder.blobs.grant(heldout.content_id, reader.address),
    )  # fmt: skip
    committed = heldout_commitment(terms.heldout.blob_id, terms.salt)
    spec_hash = terms_hash(0, terms.dataset_ref, terms.epochs, committed, terms.metric, terms.min_score, evaluator)
    await TokenClient(economy.conn).transfer(client.address, BUDGET)
    as_client = economy.conn.with_account(client)
    escrow = EscrowClient(as_client)
    deadline = int((await economy.conn.w3.eth.get_block("latest"))["timestamp"]) + 3_600
    job = EscrowTerms(provider.address, evaluator, deadline, BUDGET, evaluator_fee_bps=500, spec_hash=spec_hash)
    created = await escrow.create_job(job)
    await TokenClient(as_client).approve(escrow.address, BUDGET)
    await escrow.fund(created.job_id, BUDGET)
    await EscrowClient(economy.conn.with_account(provider)).submit(created.job_id, to_bytes32(artifact.artifact_hash))
    terms.escrow_job_id = created.job_id
    weights = holder.blobs.grant(artifact.artifact_hash, reader.address)
    return terms, EvaluationRequest(
        escrow_job_id=created.job_id, artifact_hash=artifact.artifact_hash, artifact=weights
    )


async def _staked_outsider(economy: World) -> str:
    """Another staked validator (a dev account that is no agora agent)."""
    other = economy.chain.accounts[1]
    await TokenClient(economy.conn).transfer(other.address, MIN_STAKE)
    await TokenClient(economy.conn.with_account(other)).approve(
        economy.chain.deployment.address("ValidatorStaking"), MIN_STAKE
    )
    await StakingClient(economy.conn.with_account(other)).stake(MIN_STAKE)
    return str(other.address)


async def test_evaluation_jobNamingAnotherEvaluatorRefused(economy: World) -> None:
    validator, probe = await economy.validator(validator_role), await _requester(economy)
    outsider = await _staked_outsider(economy)
    terms, request = await _submitted_job(economy, outsider, economy.chain.accounts[2], probe, validator)

    kept = await probe.ask(validator.address, terms, (TermsAccepted,), wait=30)
    answer = await probe.ask(validator.address, request, (EvaluationResult,), wait=30)

    assert isinstance(kept, ErrorReply)
    assert kept.code == ErrorCode.REJECTED
    assert "evaluator" in kept.detail
    assert isinstance(answer, ErrorReply)
    assert answer.code == ErrorCode.REJECTED
    job = await EscrowClient(economy.conn).get_job(request.escrow_job_id)
    assert job.status == JobStatus.SUBMITTED


async def test_evaluation_jobNamingThisValidatorGradedAndSettled(economy: World) -> None:
    validator, probe = await economy.validator(validator_role), await _requester(economy)
    terms, request = await _submitted_job(
        economy, validator.keys.eth_address, economy.chain.accounts[2], probe, validator
    )
    token = TokenClient(economy.conn)
    before = await token.balance_of(validator.keys.eth_address)

    kept = await probe.ask(validator.address, terms, (TermsAccepted,), wait=30)
    answer = await probe.ask(validator.address, request, (EvaluationResult,), wait=30)

    assert isinstance(kept, TermsAccepted), kept
    assert isinstance(answer, EvaluationResult), answer
    assert answer.completed
    assert answer.metric == "auc"
    assert 0 < answer.score < 1_000_000
    assert (await EscrowClient(economy.conn).get_job(request.escrow_job_id)).status == JobStatus.COMPLETED
    assert await token.balance_of(validator.keys.eth_address) - before == BUDGET * 500 // 10_000
