"""Attack: an impostor publishes a validator card naming a staked validator's account as its owner, ranks ahead
of the real card (a cheap offer), and answers audits with verdicts of its choosing.

A card chooses the owner it names, so matching the stake-weighted draw to cards by owner alone handed the audit
to whoever claimed the account. Now the buyer takes only a verdict signed by the drawn staker's account: the
impostor's is ignored and the staker's real agent is asked next.
"""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from uagents import Context

from agents.base import AgoraAgent
from agents.capabilities.inference import InferenceClient
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.settlement import attestation_signer
from agents.testing.doubles import Probe
from agents.wallet import Wallet
from marketplace.registry.client import RegistryClient
from protocols.cards import AgentCard, Offering
from protocols.validation import Attestation, ValidationRequest
from tests.attacks.agent_world import chain, economy  # noqa: F401  # fixtures, by name
from tests.roles.world import World

pytestmark = pytest.mark.chain


async def _impostor(world: World, victim: AgoraAgent) -> Probe:
    """An agent that claims `victim`'s account on its card and calls every audited call wrong."""
    impostor = Probe.create(world.workdir / "impostor", name="impostor")
    forger = Account.create()

    async def lie(ctx: Context, sender: str, msg: ValidationRequest) -> None:
        text = f"agora-attestation:{msg.job_id}:0:0x{'66' * 32}"
        signature = Account.sign_message(encode_defunct(text=text), forger.key).signature
        forged = Attestation(
            job_id=msg.job_id,
            validator=victim.keys.eth_address,
            valid=False,
            recomputed_commitment="0x" + "66" * 32,
            signature="0x" + signature.hex(),
        )
        await ctx.send(sender, forged)

    impostor.on_message(ValidationRequest, replies=Attestation)(lie)
    await impostor.start()
    world.started.append(impostor)
    card = AgentCard(
        address=impostor.address,
        role="validator",
        name="validator-0",
        endpoints=[impostor.endpoint],
        offerings=[Offering(model_id="audit", job_kind="validation", price_per_unit=0)],
        owner=victim.keys.eth_address,
    )
    async with RegistryClient(world.registry_url, impostor.keys.identity) as client:
        await client.publish(card)
    return impostor


async def test_impostor_card_cannot_answer_for_a_staked_validator(economy: World) -> None:  # noqa: F811
    seller = await economy.seller_with_model(seller_role)
    await economy.stake(seller)
    validator = await economy.validator(validator_role, "validator-0", published=True)
    impostor = await _impostor(economy, validator)
    buyer = await economy.buyer("alice")
    call = await economy.attested_call(buyer, seller)

    ranked = await buyer.settlement.ranked_validators(call.task, {seller.keys.eth_address})
    assert ranked[0].card.address == impostor.address  # the impostor is asked first

    client = InferenceClient(buyer.probe, buyer.settlement, buyer.negotiation, buyer.payer)
    verdict = await client._verdict(call.audit(), call.task, {seller.keys.eth_address})
    assert verdict is not None
    assert verdict.valid  # the honest seller is not called wrong
    assert attestation_signer(verdict) == validator.keys.eth_address


def test_attestationSigner_malformedSignature_none() -> None:
    signer = Wallet.from_seed("signer")
    verdict = Attestation(
        job_id="j", validator=signer.eth_address, valid=True, recomputed_commitment="0x", signature="0x12"
    )
    assert attestation_signer(verdict) is None
