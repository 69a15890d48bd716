"""The inference market's capabilities: a seller serves paid calls and stands by them; a buyer runs the whole
flow (discover, negotiate, open a channel, pay per call, verify, audit a sample through a validator).

One output-commitment scheme (protocols/commitment.py) is used by seller, buyer and validators alike.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import torch
from eth_abi.abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils.crypto import keccak
from pydantic import BaseModel
from uagents import Context

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.catalogue import ModelCatalogue
from agents.capabilities.kit import Capability, Handlers
from agents.capabilities.mandate import MandateExceeded
from agents.capabilities.negotiation import BuyerLimits, NegotiationBuyer
from agents.capabilities.payment import ChannelPayee, ChannelPayer
from agents.mods import Rejected
from agents.settlement import Settlement, attestation_signer, kind_spec, to_bytes32
from agents.state import Record, Repository, key
from agents.transport import DeliveryError
from marketplace.ml import InferenceRunner, ModelKind, ModelSpec, RecommenderSpec
from marketplace.ml.inference import InvalidInferenceInput
from marketplace.registry.models import AgentEntry
from protocols import jobs, validation
from protocols.commitment import output_commitment, quantize_outputs, verify_output_commitment
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec
from protocols.validation import Attestation, ValidationRequest


def task_id(model_chain_id: int, commitment: str, channel_id: int, cumulative: int) -> bytes:
    """The ValidatorStaking task id of a paid inference call: model token id, output commitment and payment."""
    fields = ["string", "uint256", "bytes32", "uint256", "uint256"]
    values = ["agora:inference:v2", model_chain_id, to_bytes32(commitment), channel_id, cumulative]
    return keccak(encode(fields, values))


def sign_task(account: LocalAccount, task: bytes) -> str:
    """The payer's EIP-191 signature of an audit task id (0x-hex), which validators check against the channel."""
    signature: bytes = Account.sign_message(encode_defunct(primitive=task), account.key).signature
    return "0x" + signature.hex()


def task_signer(task: bytes, signature: str) -> str | None:
    """Who signed an audit task id, or None for a malformed signature."""
    try:
        raw = bytes.fromhex(signature[2:])
        if len(raw) != 65:
            return None
        return str(Account.recover_message(encode_defunct(primitive=task), signature=raw))
    except (BadSignature, ValueError, TypeError):  # not hex, or no key recovers from it
        return None


def rows_to_inputs(spec: ModelSpec, rows: list[list[float]]) -> dict[str, object]:
    """Wire rows → the ML runner's inputs: recommender rows are [user_id, item_id]; classifier rows are features."""
    if spec.kind == "recommender":
        if any(len(row) != 2 for row in rows):
            raise InvalidInferenceInput("recommender rows must be [user_id, item_id]")
        for row in rows:
            if any(not float(v).is_integer() for v in row):
                raise InvalidInferenceInput("user and item ids must be whole numbers")
        return {"user_ids": [int(r[0]) for r in rows], "item_ids": [int(r[1]) for r in rows]}
    return {"features": [list(row) for row in rows]}


def run_call(runner: InferenceRunner, model_id: str, rows: list[list[float]]) -> tuple[list[list[float]], str]:
    """Run one call and commit to it: (outputs on the 10⁻⁶ grid, commitment). Raises ValueError on bad rows."""
    outputs = runner.run(rows_to_inputs(runner.spec, rows)).outputs
    return outputs, output_commitment(model_id, rows, outputs)


class ServedCall(Record):
    """A call this seller answered: to whom, and the commitment it returned."""

    buyer: str
    model_id: str
    commitment: str
    model_chain_id: int
    channel_id: int
    cumulative: int
    attested: bool = False


class InferenceProvider(Capability):
    """Serves InferenceRequest only after a voucher paid for it; can be told to make up answers (experiments)."""

    def __init__(
        self,
        agent: AgoraAgent,
        catalogue: ModelCatalogue,
        payee: ChannelPayee,
        dishonest_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(agent)
        self.catalogue = catalogue
        self.payee = payee
        self.dishonest_rate = dishonest_rate
        """Fraction of calls answered with made-up outputs (and a commitment to them): validators catch it."""
        self.calls = Repository(agent.store, "inference.served", ServedCall)
        self._rng = random.Random(f"{seed}:{agent.name}")

    def handlers(self) -> Iterable[Handlers]:
        """InferenceRequest, in the seller role of the jobs protocol."""
        return (Handlers(jobs.SPEC, "seller", {InferenceRequest: self._on_inference}),)

    async def _on_inference(self, ctx: Context, sender: str, msg: InferenceRequest) -> None:
        served = self.catalogue.get(msg.model_id)
        if served is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not sold here")
        if self.calls.get(key(sender, msg.job_id)) is not None:
            raise Rejected(ErrorCode.REPLAYED, "this job was already served")
        # Paid calls only reach the model; the credit is spent once the call produced a result, so a
        # malformed request does not cost the buyer its payment.
        self.payee.check_credit(sender, msg.job_id, served.chain_id)
        try:
            outputs, commitment = run_call(self.catalogue.runner(msg.model_id), msg.model_id, msg.inputs)
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        credit = self.payee.use_credit(sender, msg.job_id, served.chain_id)
        if self._rng.random() < self.dishonest_rate:
            outputs = _made_up(served.kind, outputs)
            commitment = output_commitment(msg.model_id, msg.inputs, outputs)
        call = ServedCall(
            buyer=sender,
            model_id=msg.model_id,
            commitment=commitment,
            model_chain_id=served.chain_id,
            channel_id=credit.channel_id,
            cumulative=credit.cumulative,
        )
        self.calls.put(key(sender, msg.job_id), call)
        result = InferenceResult(
            job_id=msg.job_id, model_id=msg.model_id, outputs=outputs, output_commitment=commitment
        )
        await ctx.send(sender, result)


def _made_up(kind: str, outputs: list[list[float]]) -> list[list[float]]:
    """Outputs a cheating seller invents instead of running the model (plausible-looking, wrong)."""
    real = torch.tensor(outputs, dtype=torch.float64)
    fake = real.flip(-1) if kind == "classifier" else 1.0 - real
    return quantize_outputs(fake.tolist())


class Attester(Capability):
    """A seller stands by a call it served: attests the commitment on chain when its buyer asks (basis of disputes)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, provider: InferenceProvider) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.provider = provider

    def handlers(self) -> Iterable[Handlers]:
        """ValidationRequest, in the validator role of the validation protocol (asked by the buyer)."""
        return (Handlers(validation.SPEC, "validator", {ValidationRequest: self._on_audit}),)

    async def _on_audit(self, ctx: Context, sender: str, msg: ValidationRequest) -> None:
        call = self.provider.calls.get(key(sender, msg.job_id))
        if call is None:
            raise Rejected(ErrorCode.REJECTED, "no such call served to you")
        if call.commitment != msg.claimed_commitment.lower():
            raise Rejected(ErrorCode.REJECTED, "that is not the commitment this seller returned")
        if (call.channel_id, call.cumulative) != (msg.channel_id, msg.cumulative_amount):
            raise Rejected(ErrorCode.REJECTED, "that is not the payment of this call")
        if not call.attested:
            task = task_id(call.model_chain_id, call.commitment, call.channel_id, call.cumulative)
            await self.settlement.staking.attest(task, to_bytes32(call.commitment))
            call.attested = True
            self.provider.calls.put(key(sender, msg.job_id), call)
        await ctx.send(sender, self.settlement.attestation(msg.job_id, True, call.commitment))


class InferencePlan(BaseModel):
    """What a user wants: calls to a model kind, per-call price limits, a deposit ceiling and an audit rate."""

    kind: ModelKind
    calls: int
    opening_per_call: int
    max_per_call: int
    deposit: int
    sample_rate: float
    channel_ttl: int


class InferenceOutcome(BaseModel):
    """What happened to a user's plan."""

    paid_calls: int = 0
    refused_calls: int = 0
    bad_results: int = 0
    sampled: int = 0
    agreed: int = 0
    disputed: int = 0
    spent: int = 0
    channels: list[int] = []
    sellers_dropped: list[str] = []
    negotiated_prices: list[int] = []


async def prepay_calls(
    negotiation: NegotiationBuyer, payer: ChannelPayer, seller: str, model_id: str, calls: int, max_per_call: int
) -> tuple[int, int]:
    """Negotiate `calls` calls of `model_id` with one seller and deposit their price in a new channel to it.

    Returns (channel id, price per call); raises LookupError when the seller does not sell within the limit.
    """
    listed = await payer.settlement.models.get(model_id)
    job = JobSpec(kind="inference", model_id=model_id, units=calls)
    deal = await negotiation.negotiate([seller], job, BuyerLimits(opening=0, budget=max_per_call * calls))
    if deal is None:
        raise LookupError(f"{seller[:16]}… would not sell {calls} calls of {model_id} within {max_per_call} each")
    channel = await payer.open(seller, listed.creator, deal.price, 3_600, listed.chain_id)
    return channel, deal.price // calls


class InferenceClient(Capability):
    """Buys inference: `await client.buy(plan)` runs discovery, negotiation, channel payments and audits."""

    def __init__(
        self,
        agent: AgoraAgent,
        settlement: Settlement,
        negotiation: NegotiationBuyer,
        payer: ChannelPayer,
        seed: int = 0,
    ) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.negotiation = negotiation
        self.payer = payer
        self._rng = random.Random(f"{seed}:{agent.name}")
        self._calls = 0

    async def candidates(
        self, kind: ModelKind, excluded: set[str], enough: int = 8
    ) -> dict[str, tuple[AgentEntry, str]]:
        """The cheapest `enough` live sellers offering inference on a model of `kind`: address → (entry, model id).
        Pages through the registry until that many are found, so cards of other kinds ranked first cannot hide
        them."""
        found: dict[str, tuple[AgentEntry, str]] = {}
        async for entry in self.settlement.cards("seller", "inference"):
            if len(found) >= enough:
                break
            if entry.card.address in excluded:
                continue
            offers = []
            for offering in entry.card.offerings:
                if offering.job_kind != "inference":
                    continue
                try:
                    listed = await self.settlement.models.get(offering.model_id, entry.card.owner)
                except KeyError:
                    continue
                if listed.kind == kind:
                    offers.append((offering.price_per_unit, offering.model_id))
            if offers:
                found[entry.card.address] = (entry, min(offers)[1])
        return found

    async def buy(self, plan: InferencePlan) -> InferenceOutcome:
        """Negotiate, pay and audit `plan.calls` calls, switching sellers if one is caught cheating."""
        outcome = InferenceOutcome()
        excluded: set[str] = set()
        remaining, deposit_left = plan.calls, plan.deposit
        while remaining > 0 and deposit_left > 0:
            candidates = await self.candidates(plan.kind, excluded)
            if not candidates:
                break
            limits = BuyerLimits(opening=plan.opening_per_call * remaining, budget=plan.max_per_call * remaining)
            job = JobSpec(kind="inference", model_id=plan.kind, units=remaining)
            deal = await self.negotiation.negotiate(sorted(candidates), job, limits)
            if deal is None:
                break
            entry, model_id = candidates[deal.seller]
            per_call = deal.price // remaining
            outcome.negotiated_prices.append(per_call)
            deposit = min(deposit_left, max(per_call * remaining, plan.deposit // 2))
            if deposit < max(per_call, 1):
                break  # what is left of the deposit cannot pay one more call (and PaymentChannels refuses 0)
            listed = await self.settlement.models.get(model_id, entry.card.owner)
            channel = await self.payer.open(deal.seller, entry.card.owner, deposit, plan.channel_ttl, listed.chain_id)
            outcome.channels.append(channel)
            served, caught = await self._calls_on(
                channel, deal.seller, entry, model_id, per_call, remaining, plan, outcome
            )
            remaining -= served
            deposit_left -= deposit
            if caught:
                excluded.add(deal.seller)
                outcome.sellers_dropped.append(entry.card.name or deal.seller)
            elif served == 0:
                break
        return outcome

    async def _calls_on(
        self, channel: int, seller: str, entry: AgentEntry, model_id: str, per_call: int, calls: int,
        plan: InferencePlan, outcome: InferenceOutcome,
    ) -> tuple[int, bool]:  # fmt: skip
        """Make up to `calls` paid calls on one channel; (calls served, seller caught)."""
        served = 0
        for _ in range(calls):
            record = self.payer.channels.get(str(channel))
            if record is None or record.cumulative + per_call > record.deposit:
                break
            self._calls += 1
            job_id = f"{self.agent.name}-call-{self._calls}"
            try:
                receipt = await self.payer.pay(channel, per_call, job_id)
                rows = self._inputs(plan.kind)
                request = InferenceRequest(job_id=job_id, model_id=model_id, inputs=rows, price=per_call)
                result = await self.agent.request(seller, request, InferenceResult)
            except MandateExceeded as exc:  # nothing was signed for this call: stop, keep what was bought
                self.agent.logger.info("the mandate stops the purchase: %s", exc)
                return served, False
            except (RemoteError, DeliveryError, TimeoutError):
                outcome.refused_calls += 1
                return served, False
            served += 1
            outcome.paid_calls += 1
            outcome.spent += per_call
            if not verify_output_commitment(model_id, rows, result.outputs, result.output_commitment):
                outcome.bad_results += 1
                return served, True
            paid = (channel, receipt.cumulative_amount)
            if self._rng.random() < plan.sample_rate and not await self._audit(
                seller, entry, paid, model_id, rows, result, outcome
            ):
                return served, True
        return served, False

    def _inputs(self, kind: ModelKind) -> list[list[float]]:
        """A small batch of this user's own requests (user/item pairs or feature rows)."""
        spec = kind_spec(kind)
        batch = self._rng.randint(1, 4)
        if isinstance(spec, RecommenderSpec):
            user = self._rng.randrange(spec.num_users)
            return [[float(user), float(self._rng.randrange(spec.num_items))] for _ in range(batch)]
        return [[round(self._rng.gauss(0.0, 1.0), 4) for _ in range(spec.num_features)] for _ in range(batch)]

    async def _audit(
        self, seller: str, entry: AgentEntry, paid: tuple[int, int], model_id: str, rows: list[list[float]],
        result: InferenceResult, outcome: InferenceOutcome,
    ) -> bool:  # fmt: skip
        """Have the seller stand by the call on chain, then a stake-selected validator re-execute it."""
        outcome.sampled += 1
        listed = await self.settlement.models.get(model_id, entry.card.owner)
        task = task_id(listed.chain_id, result.output_commitment, *paid)
        request = ValidationRequest(
            job_id=result.job_id,
            model_id=model_id,
            inputs=rows,
            outputs=result.outputs,
            claimed_commitment=result.output_commitment,
            seller=entry.card.owner,
            channel_id=paid[0],
            cumulative_amount=paid[1],
            signature=sign_task(self.settlement.conn.account, task),
        )
        try:
            await self.agent.request(seller, request, Attestation)
        except (RemoteError, DeliveryError, TimeoutError):
            outcome.disputed += 1
            return False
        verdict = await self._verdict(request, task, {entry.card.owner})
        if verdict is None or verdict.valid:
            outcome.agreed += verdict is not None
            return True
        outcome.disputed += 1
        return False

    async def _verdict(
        self, request: validation.ValidationRequest, task: bytes, exclude: set[str]
    ) -> Attestation | None:
        """The verdict of the validator the chain's stake-weighted draw names first, signed by its account. A card
        names any owner it likes: a verdict signed by another key is ignored, and the next candidate card of the
        same staker is asked. None: no staked validator answered."""
        ranked = await self.settlement.ranked_validators(task, exclude)
        if not ranked:
            return None
        first = ranked[0].card.owner.lower()
        for candidate in (entry for entry in ranked if entry.card.owner.lower() == first):
            try:
                verdict = await self.agent.request(candidate.card.address, request, Attestation, wait=60)
            except (RemoteError, DeliveryError, TimeoutError) as err:
                self.agent.logger.info("validator card %s did not answer: %s", candidate.card.address[:16], err)
                continue
            signer = attestation_signer(verdict)
            if verdict.job_id == request.job_id and signer is not None and signer.lower() == first:
                return verdict
            self.agent.logger.warning("verdict from %s not signed by the staker it names", candidate.card.address[:16])
        return None
