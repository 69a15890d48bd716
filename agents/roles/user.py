"""A user agent buying inference: discover sellers, negotiate, open a channel, pay per call, audit a sample.

Raw user data never leaves this agent except as the inputs of calls the user chose to make. Each call
is paid with a fresh EIP-712 voucher for the cumulative amount; a sampled call is re-executed by a
stake-selected validator, and a seller caught lying is dropped (and slashed through a dispute).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from agents.base import AgentDeps, RemoteError
from agents.roles.buyer import BuyerAgent, BuyerLimits
from agents.roles.market import Market, kind_spec, rows_to_inputs, task_id
from agents.settings import AgentSettings
from agents.transport import DeliveryError
from marketplace.chain import ChannelRefunded, sign_voucher
from marketplace.chain import Voucher as ChainVoucher
from marketplace.ml import ModelKind, RecommenderSpec, verify_commitment
from marketplace.registry.models import AgentEntry
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec
from protocols.payment import ChannelOpened, Receipt, Voucher
from protocols.validation import Attestation, ValidationRequest


@dataclass(frozen=True)
class InferencePlan:
    """What a user wants: calls to a model kind, per-call price limits, a deposit ceiling and an audit rate."""

    kind: ModelKind
    calls: int
    opening_per_call: int
    max_per_call: int
    deposit: int
    sample_rate: float
    channel_ttl: int


@dataclass
class InferenceOutcome:
    """What happened to a user's plan."""

    paid_calls: int = 0
    refused_calls: int = 0
    bad_results: int = 0
    sampled: int = 0
    agreed: int = 0
    disputed: int = 0
    spent: int = 0
    channels: list[int] = field(default_factory=list)
    sellers_dropped: list[str] = field(default_factory=list)
    negotiated_prices: list[int] = field(default_factory=list)


class UserAgent(BuyerAgent):
    """Buys inference on behalf of a user; `await user.buy_inference(plan)` runs the whole market flow."""

    def __init__(self, settings: AgentSettings, deps: AgentDeps, market: Market, seed: int = 0) -> None:
        super().__init__(settings, deps)
        self.market = market
        self._rng = random.Random(f"{seed}:{settings.name}")
        self._calls = 0

    async def _candidates(self, kind: ModelKind, excluded: set[str]) -> dict[str, tuple[AgentEntry, str]]:
        """Live sellers offering inference on a model of `kind`: address → (entry, model id)."""
        assert self.market.registry is not None, "a user discovers sellers through the registry"
        page = await self.market.registry.search(role="seller", job_kind="inference", limit=100)
        found: dict[str, tuple[AgentEntry, str]] = {}
        for entry in page.results:
            if entry.card.address in excluded:
                continue
            offers = []
            for offering in entry.card.offerings:
                if offering.job_kind != "inference":
                    continue
                try:
                    listed = await self.market.models.get(offering.model_id)
                except KeyError:
                    continue
                if listed.kind == kind:
                    offers.append((offering.price_per_unit, offering.model_id))
            if offers:
                found[entry.card.address] = (entry, min(offers)[1])
        return found

    async def buy_inference(self, plan: InferencePlan) -> InferenceOutcome:
        """Negotiate, pay and audit `plan.calls` inference calls, switching sellers if one is caught cheating."""
        outcome = InferenceOutcome()
        excluded: set[str] = set()
        remaining, deposit_left = plan.calls, plan.deposit
        while remaining > 0:
            candidates = await self._candidates(plan.kind, excluded)
            if not candidates:
                break
            limits = BuyerLimits(opening=plan.opening_per_call * remaining, budget=plan.max_per_call * remaining)
            job = JobSpec(kind="inference", model_id=plan.kind, units=remaining)
            deal = await self.negotiate(sorted(candidates), job, limits)
            if deal is None:
                break
            entry, model_id = candidates[deal.seller]
            per_call = deal.price // remaining
            outcome.negotiated_prices.append(per_call)
            deposit = min(deposit_left, max(per_call * remaining, plan.deposit // 2))
            served, caught = await self._use_channel(
                deal.seller, entry, model_id, per_call, remaining, deposit, plan, outcome
            )
            remaining -= served
            deposit_left -= deposit
            if caught:
                excluded.add(deal.seller)
                outcome.sellers_dropped.append(entry.card.name or deal.seller)
            elif served == 0:
                break
        return outcome

    async def _use_channel(
        self,
        seller: str,
        entry: AgentEntry,
        model_id: str,
        per_call: int,
        calls: int,
        deposit: int,
        plan: InferencePlan,
        outcome: InferenceOutcome,
    ) -> tuple[int, bool]:
        """Open a channel to `seller` and make up to `calls` paid calls; returns (calls served, seller caught)."""
        listed = await self.market.models.get(model_id)
        expiry = await self.market.chain_time() + plan.channel_ttl
        await self.market.token.approve(self.market.channels.address, deposit)
        opened = await self.market.channels.open_channel(entry.card.owner, deposit, expiry, listed.chain_id)
        outcome.channels.append(opened.channel_id)
        nonce = (await self.market.channels.get_channel(opened.channel_id)).nonce  # the sender's channel counter
        notice = ChannelOpened(
            channel_id=str(opened.channel_id),
            chain_id=self.market.conn.deployment.chain_id,
            contract=self.market.channels.address,
            payer=self.market.account,
            payee=entry.card.owner,
            deposit=deposit,
            expiry=expiry,
        )
        await self.request(seller, notice, Receipt)
        spec, cumulative, served = kind_spec(plan.kind), 0, 0
        for _ in range(calls):
            if cumulative + per_call > deposit:
                break
            self._calls += 1
            job_id = f"{self.name}-call-{self._calls}"
            voucher = sign_voucher(
                self.market.conn.account,
                ChainVoucher(opened.channel_id, nonce, cumulative + per_call),
                self.market.channels.domain,
            )
            paid = Voucher(
                channel_id=str(opened.channel_id),
                cumulative_amount=cumulative + per_call,
                nonce=nonce,
                signature="0x" + voucher.signature.hex(),
                job_id=job_id,
            )
            try:
                await self.request(seller, paid, Receipt)
                rows = self._inputs(plan.kind)
                request = InferenceRequest(job_id=job_id, model_id=model_id, inputs=rows, price=per_call)
                result = await self.request(seller, request, InferenceResult)
            except (RemoteError, DeliveryError, TimeoutError):
                outcome.refused_calls += 1
                return served, False
            cumulative += per_call
            served += 1
            outcome.paid_calls += 1
            outcome.spent += per_call
            if not verify_commitment(spec, rows_to_inputs(spec, rows), result.outputs, result.output_commitment):
                outcome.bad_results += 1
                return served, True
            if self._rng.random() < plan.sample_rate and not await self._audit(
                seller, entry, job_id, model_id, rows, result, outcome
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
        self, seller: str, entry: AgentEntry, job_id: str, model_id: str, rows: list[list[float]],
        result: InferenceResult, outcome: InferenceOutcome,
    ) -> bool:  # fmt: skip
        """Have the seller stand by the call on chain, then a stake-selected validator re-execute it."""
        outcome.sampled += 1
        request = ValidationRequest(
            job_id=job_id,
            model_id=model_id,
            inputs=rows,
            claimed_commitment=result.output_commitment,
            seller=entry.card.owner,
        )
        try:
            await self.request(seller, request, Attestation)
        except (RemoteError, DeliveryError, TimeoutError):
            outcome.disputed += 1
            return False
        validator = await self._validator_for(job_id, exclude=entry.card.owner)
        if validator is None:
            return True
        verdict = await self.request(validator, request, Attestation, wait=60)
        if verdict.valid:
            outcome.agreed += 1
            return True
        outcome.disputed += 1
        return False

    async def _validator_for(self, job_id: str, exclude: str) -> str | None:
        """The first validator (stake-weighted, seeded by the call) that is registered as one and is not the seller."""
        ranked = await self.market.ranked_validators(task_id(job_id), {exclude})
        return ranked[0].card.address if ranked else None

    async def refund_channels(self, channels: list[int]) -> list[ChannelRefunded]:
        """After expiry, take back what the sellers did not claim."""
        refunds = []
        for channel_id in channels:
            channel = await self.market.channels.get_channel(channel_id)
            if not channel.closed and channel.unclaimed > 0:
                refunds.append(await self.market.channels.refund(channel_id))
        return refunds


ROLE = UserAgent
"""The agent class the simulator instantiates for this role (see marketplace/sim/roles.py)."""
