"""A model seller that is paid: negotiates, serves PyTorch inference against channel vouchers, trains for escrow.

Payment before service: a call runs only after a voucher raising the channel's cumulative amount by at least
the agreed price has been verified (EIP-712 signature by the channel's sender, on-chain channel facts) and
stored. Vouchers, channels and call commitments live in the agent's durable store, so a restarted seller
claims what it was paid before the restart.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

import torch
from uagents import Context, Protocol

from agents.base import AgentDeps
from agents.mods import Rejected
from agents.roles.market import (
    Market,
    model_uri,
    rows_to_inputs,
    task_id,
    to_bytes32,
)
from agents.roles.seller import SellerAgent, bind
from agents.settings import AgentSettings
from marketplace.chain import ChannelClaimed, JobStatus, Lineage, ModelSpec, SignedVoucher, Voucher, verify_voucher
from marketplace.ml import (
    AgoraModel,
    InferenceRunner,
    ModelKind,
    evaluate,
    fine_tune,
    load_dataset,
    serialize_model,
    split,
)
from marketplace.ml.inference import output_commitment, parse_inputs, quantize
from protocols import payment, validation
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult, TrainingRequest, TrainingResult
from protocols.negotiation import JobSpec
from protocols.payment import ChannelOpened, Receipt
from protocols.payment import Voucher as VoucherMessage
from protocols.validation import ValidationRequest

MAX_TRAINING_BLOB = 4 * 1024 * 1024
"""Largest training dataset a seller accepts (bytes)."""


@dataclass
class ServedModel:
    """A model this seller serves, with its list price and floor per inference call (base units)."""

    model_id: str
    kind: ModelKind
    model: AgoraModel
    price_per_call: int
    floor_per_call: int
    chain_id: int = 0
    runner: InferenceRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = InferenceRunner(self.model)


@dataclass(frozen=True)
class SellerTerms:
    """How a seller trades besides its models: training prices, royalty to parents, honesty (for experiments)."""

    training_price: int
    training_floor: int
    child_royalty_bps: int = 1_000
    """Share of revenue a model trained here routes to the model it was fine-tuned from."""
    dishonest_rate: float = 0.0
    """Fraction of calls answered with made-up outputs (and a commitment to them): validators catch it."""
    seed: int = 0
    claim_threshold: int | None = None
    """Claim policy: settle on chain as soon as this much (base units) is unclaimed; None claims only when asked."""


class CataloguePricing:
    """Quotes by job: inference on a model id or a model kind (per call × units), training per job."""

    def __init__(self, models: dict[str, ServedModel], terms: SellerTerms) -> None:
        self._models = models
        self._terms = terms

    def model_for(self, wanted: str) -> ServedModel | None:
        """The served model named `wanted`, or the cheapest served model of kind `wanted`."""
        if wanted in self._models:
            return self._models[wanted]
        of_kind = [m for m in self._models.values() if m.kind == wanted]
        return min(of_kind, key=lambda m: (m.price_per_call, m.model_id)) if of_kind else None

    def quote(self, job: JobSpec) -> tuple[int, int] | None:
        """(opening, reservation) for the job, or None if not offered."""
        served = self.model_for(job.model_id)
        if served is None or job.units <= 0:
            return None
        if job.kind == "training":
            return self._terms.training_price * job.units, self._terms.training_floor * job.units
        if job.kind == "inference":
            return served.price_per_call * job.units, served.floor_per_call * job.units
        return None


class ModelSellerAgent(SellerAgent):
    """Sells inference (paid per call through a payment channel) and fine-tuning (paid through JobEscrow)."""

    def __init__(self, settings: AgentSettings, deps: AgentDeps, market: Market, terms: SellerTerms) -> None:
        self.served: dict[str, ServedModel] = {}
        self.claim_log: list[tuple[list[ChannelClaimed], int]] = []
        """Every claimMany this agent sent since it started, with its gas."""
        self.terms = terms
        self.market = market
        super().__init__(settings, deps, pricing=CataloguePricing(self.served, terms))
        self._rng = random.Random(f"{terms.seed}:{settings.name}")
        pay = Protocol(spec=payment.SPEC, role="payee")
        bind(pay, payment.SPEC, ChannelOpened, self._on_channel_opened)
        bind(pay, payment.SPEC, VoucherMessage, self._on_voucher)
        self.include(pay)
        audit = Protocol(spec=validation.SPEC, role="validator")
        bind(audit, validation.SPEC, ValidationRequest, self._on_audit)
        self.include(audit)

    # --- catalogue --------------------------------------------------------------------------------
    async def publish_model(self, served: ServedModel, parent: str | None = None, royalty_bps: int = 0) -> int:
        """Put the weights in the blob store and register the model (with its parent) in ModelRegistry."""
        artifact = serialize_model(served.model)
        self.market.blobs.put(artifact.data)
        lineage = Lineage()
        if parent is not None:
            lineage = Lineage(parents=(((await self.market.models.get(parent)).chain_id, royalty_bps),))
        spec = ModelSpec(
            content_hash=to_bytes32(artifact.artifact_hash),
            uri=model_uri(served.kind, served.model_id),
            price_per_call=served.price_per_call,
            price_per_job=self.terms.training_price,
        )
        registered = await self.market.model_registry.register_model(spec, lineage)
        served.chain_id = registered.model_id
        self.served[served.model_id] = served
        return registered.model_id

    async def serve_registered(self, served: ServedModel) -> int:
        """Serve a model registered earlier (e.g. after a restart), found on chain by its content hash."""
        chain_id = await self.market.model_registry.model_by_content(
            to_bytes32(serialize_model(served.model).artifact_hash)
        )
        if chain_id == 0:
            raise KeyError(f"model {served.model_id} is not registered; use publish_model")
        served.chain_id = chain_id
        self.served[served.model_id] = served
        return chain_id

    # --- payment ----------------------------------------------------------------------------------
    async def _on_channel_opened(self, ctx: Context, sender: str, msg: ChannelOpened) -> None:
        try:
            channel = await self.market.channels.get_channel(int(msg.channel_id))
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, "channel_id must be a decimal channel number") from exc
        if channel.recipient.lower() != self.market.account.lower():
            raise Rejected(ErrorCode.REJECTED, "channel does not pay this seller")
        if channel.sender.lower() != msg.payer.lower() or channel.closed:
            raise Rejected(ErrorCode.REJECTED, "channel sender mismatch or channel closed")
        if channel.expiry <= await self.market.chain_time() + 60:
            raise Rejected(ErrorCode.REJECTED, "channel expires too soon")
        if channel.model_id not in {m.chain_id for m in self.served.values()}:
            raise Rejected(ErrorCode.REJECTED, "channel is not for a model sold here")
        price = self._price_per_call(sender, channel.model_id)
        data = {
            "peer": sender,
            "payer": channel.sender,
            "deposit": channel.deposit,
            "expiry": channel.expiry,
            "nonce": channel.nonce,
            "model_chain_id": channel.model_id,
            "price": price,
            "cumulative": 0,
        }
        self.store.put(f"channel:{channel.channel_id}", data)
        known = self.store.get("channels", [])
        if str(channel.channel_id) not in known:
            self.store.put("channels", [*known, str(channel.channel_id)])
        await ctx.send(sender, Receipt(channel_id=msg.channel_id, job_id="", amount=0, cumulative_amount=0, nonce=0))

    def _price_per_call(self, buyer: str, model_chain_id: int) -> int:
        """The per-call price agreed with this buyer in its latest inference negotiation for this model."""
        for job in reversed(self.store.list_jobs("agreed")):
            deal = job["data"]
            if deal.get("buyer") != buyer or deal["job"]["kind"] != "inference":
                continue
            served = self.pricing_model(deal["job"]["model_id"])
            if served is not None and served.chain_id == model_chain_id:
                return int(deal["price"]) // max(int(deal["job"]["units"]), 1)
        raise Rejected(ErrorCode.REJECTED, "no agreed inference price with this buyer for that model")

    def pricing_model(self, wanted: str) -> ServedModel | None:
        """The served model a negotiation for `wanted` (model id or kind) is about."""
        return CataloguePricing(self.served, self.terms).model_for(wanted)

    async def _on_voucher(self, ctx: Context, sender: str, msg: VoucherMessage) -> None:
        data = self.store.get(f"channel:{msg.channel_id}")
        if data is None or data["peer"] != sender:
            raise Rejected(ErrorCode.REJECTED, "unknown channel")
        increase = msg.cumulative_amount - data["cumulative"]
        if msg.nonce != data["nonce"]:
            raise Rejected(ErrorCode.REJECTED, f"voucher nonce {msg.nonce}, channel nonce {data['nonce']}")
        if increase < data["price"]:
            raise Rejected(ErrorCode.REJECTED, f"voucher adds {increase}, a call costs {data['price']}")
        if msg.cumulative_amount > data["deposit"]:
            raise Rejected(ErrorCode.REJECTED, "voucher exceeds the channel deposit")
        signed = SignedVoucher(
            Voucher(int(msg.channel_id), msg.nonce, msg.cumulative_amount), bytes.fromhex(msg.signature[2:])
        )
        if not verify_voucher(signed, data["payer"], self.market.channels.domain):
            raise Rejected(ErrorCode.BAD_SIGNATURE, "voucher not signed by the channel's sender")
        if not msg.job_id or self.store.get(f"credit:{msg.job_id}") is not None:
            raise Rejected(ErrorCode.REJECTED, "voucher job id missing or already paid")
        data["cumulative"] = msg.cumulative_amount
        data["voucher"] = {"nonce": msg.nonce, "amount": msg.cumulative_amount, "signature": msg.signature}
        self.store.put(f"channel:{msg.channel_id}", data)
        self.store.put(f"credit:{msg.job_id}", {"buyer": sender, "model_chain_id": data["model_chain_id"]})
        if self.terms.claim_threshold is not None and self.unclaimed() >= self.terms.claim_threshold:
            await self.claim_vouchers()
        receipt = Receipt(
            channel_id=msg.channel_id,
            job_id=msg.job_id,
            amount=increase,
            cumulative_amount=msg.cumulative_amount,
            nonce=msg.nonce,
        )
        await ctx.send(sender, receipt)

    def unclaimed(self) -> int:
        """Base units promised by stored vouchers and not yet claimed on chain."""
        total = 0
        for channel_id in self.store.get("channels", []):
            voucher = self.store.get(f"channel:{channel_id}", {}).get("voucher")
            if voucher is not None:
                total += max(0, voucher["amount"] - self.store.get(f"claimed:{channel_id}", 0))
        return total

    async def claim_vouchers(self) -> list[ChannelClaimed]:
        """Claim the latest voucher of every channel with unclaimed money, in one claimMany transaction."""
        pending: list[SignedVoucher] = []
        for channel_id in self.store.get("channels", []):
            voucher = self.store.get(f"channel:{channel_id}", {}).get("voucher")
            if voucher is None or voucher["amount"] <= self.store.get(f"claimed:{channel_id}", 0):
                continue
            signature = bytes.fromhex(voucher["signature"][2:])
            pending.append(SignedVoucher(Voucher(int(channel_id), voucher["nonce"], voucher["amount"]), signature))
        if not pending:
            return []
        claims = await self.market.channels.claim_many(pending)
        for signed in pending:
            self.store.put(f"claimed:{signed.voucher.channel_id}", signed.voucher.amount)
        receipt = self.market.channels.last_receipt
        self.claim_log.append((claims, int(receipt["gasUsed"]) if receipt is not None else 0))
        return claims

    # --- inference --------------------------------------------------------------------------------
    async def _on_inference(self, ctx: Context, sender: str, msg: InferenceRequest) -> None:
        served = self.served.get(msg.model_id)
        if served is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.model_id} not sold here")
        credit = self.store.get(f"credit:{msg.job_id}")
        if credit is None or credit["buyer"] != sender or credit["model_chain_id"] != served.chain_id:
            raise Rejected(ErrorCode.REJECTED, "call not paid: send a voucher for this job first")
        if self.store.get(f"call:{msg.job_id}") is not None:
            raise Rejected(ErrorCode.REPLAYED, "this job was already served")
        try:
            inputs = rows_to_inputs(served.model.spec, msg.inputs)
            output = served.runner.run(inputs)
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        outputs, commitment = output.outputs, output.commitment
        if self._rng.random() < self.terms.dishonest_rate:
            outputs, commitment = self._made_up(served, inputs, outputs)
        self.store.put(f"call:{msg.job_id}", {"buyer": sender, "commitment": commitment})
        result = InferenceResult(
            job_id=msg.job_id, model_id=msg.model_id, outputs=outputs, output_commitment=commitment
        )
        await ctx.send(sender, result)

    @staticmethod
    def _made_up(served: ServedModel, inputs: dict[str, object], outputs: list[list[float]]) -> tuple[Any, str]:
        """Outputs a cheating seller invents (skipping the model), with a commitment that matches them."""
        fake = (
            torch.tensor(outputs, dtype=torch.float32).flip(-1)
            if served.kind == "classifier"
            else (1.0 - torch.tensor(outputs, dtype=torch.float32))
        )
        quantized = quantize(fake)
        parsed = parse_inputs(served.model.spec, inputs)
        return (quantized / 1_000_000).tolist(), output_commitment(parsed.inputs_hash, quantized)

    async def _on_audit(self, ctx: Context, sender: str, msg: ValidationRequest) -> None:
        """A buyer asks this seller to stand by a call's commitment on chain (the basis of any dispute)."""
        call = self.store.get(f"call:{msg.job_id}")
        if call is None or call["buyer"] != sender:
            raise Rejected(ErrorCode.REJECTED, "no such call served to you")
        if call["commitment"] != msg.claimed_commitment.lower():
            raise Rejected(ErrorCode.REJECTED, "that is not the commitment this seller returned")
        if not self.store.get(f"attested:{msg.job_id}"):
            await self.market.staking.attest(task_id(msg.job_id), to_bytes32(call["commitment"]))
            self.store.put(f"attested:{msg.job_id}", True)
        await ctx.send(sender, self.market.attestation(msg.job_id, True, call["commitment"]))

    # --- training ---------------------------------------------------------------------------------
    async def _on_training(self, ctx: Context, sender: str, msg: TrainingRequest) -> None:
        served = self.served.get(msg.base_model_id)
        if served is None:
            raise Rejected(ErrorCode.REJECTED, f"model {msg.base_model_id} not sold here")
        job = await self.market.escrow.get_job(msg.escrow_job_id)
        if job.provider.lower() != self.market.account.lower() or job.status != JobStatus.FUNDED:
            raise Rejected(ErrorCode.REJECTED, "escrow job is not funded for this seller")
        if job.budget < self.terms.training_floor or msg.price != job.budget:
            raise Rejected(ErrorCode.REJECTED, "escrow budget differs from the agreed price")
        try:
            dataset = load_dataset(
                self.market.blobs.get(msg.dataset_ref, MAX_TRAINING_BLOB), msg.dataset_ref, MAX_TRAINING_BLOB
            )
            train, check = split(dataset, 0.1, self.terms.seed)  # type: ignore[type-var]  # either kind splits
            tuned, _ = fine_tune(served.model, train, epochs=msg.epochs, lr=0.01, seed=self.terms.seed)
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        child = ServedModel(
            f"{served.model_id}-ft-{msg.escrow_job_id}",
            served.kind,
            tuned,
            served.price_per_call,
            served.floor_per_call,
        )
        artifact = serialize_model(tuned)
        await self.publish_model(child, parent=served.model_id, royalty_bps=self.terms.child_royalty_bps)
        await self.market.escrow.submit(msg.escrow_job_id, to_bytes32(artifact.artifact_hash))
        metrics = evaluate(tuned, check)
        self.store.put_job(
            msg.job_id,
            "training",
            "submitted",
            {"escrow_job_id": msg.escrow_job_id, "artifact": artifact.artifact_hash},
            self.clock.now(),
        )
        result = TrainingResult(
            job_id=msg.job_id,
            artifact_hash=artifact.artifact_hash,
            metrics={"score": metrics.score, "loss": metrics.loss},
        )
        await ctx.send(sender, result)


def new_job_id() -> str:
    """A fresh job id."""
    return uuid.uuid4().hex


ROLE = ModelSellerAgent
"""The agent class the simulator instantiates for this role (see marketplace/sim/roles.py)."""
