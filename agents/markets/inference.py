"""The inference market: sellers serve models per call through payment channels, users buy and audit calls,
validators re-execute a sample and dispute sellers that lie.

Scenario section `markets.inference`; phases: models (setup), inference (trade), claims (settle),
disputes and refunds (after deadlines).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.capabilities.control import Empty
from agents.capabilities.inference import InferencePlan
from agents.markets.plugin import EconomyContext, Market, Participant, Phase, Refund, each
from agents.roles import seller, selling, user, validator
from agents.roles.seller import BuildModels, ModelOffer
from marketplace.chain import ChannelsClient, ModelRegistryClient
from marketplace.chain.deploy import STAKING_CONFIG

AGT = 10**18


def seed_of(*parts: object) -> int:
    """A 32-bit seed derived from parts (scenario seed, names)."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SellerSpec(_Strict):
    """One model seller."""

    name: str
    models: list[ModelOffer]
    dishonest_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of inference calls answered with a wrong output (to exercise validation)."""
    claim_threshold: int | None = Field(default=None, gt=0)
    """Claim vouchers on chain whenever this much is unclaimed; None: one claimMany at settlement."""


class InferenceSection(_Strict):
    """The inference market of a scenario."""

    sellers: list[SellerSpec]
    users: int = Field(default=10, ge=1, le=10_000)
    validators: int = Field(default=3, ge=1, le=1_000)
    calls_per_user: int = Field(default=10, ge=1, le=1_000)
    user_budget: int = Field(default=AGT, gt=0)
    """AGT (base units) each user deposits for inference."""
    user_opening_per_call: int = Field(default=5 * 10**15, gt=0)
    user_max_per_call: int = Field(default=22 * 10**15, gt=0)
    sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Fraction of paid inference calls a validator re-executes."""
    channel_ttl: int = Field(default=3_600, gt=0)

    @model_validator(mode="after")
    def _models_resolve(self) -> InferenceSection:
        model_ids = [m.id for s in self.sellers for m in s.models]
        if len(set(model_ids)) != len(model_ids):
            raise ValueError("model ids must be unique across sellers")
        for spec in self.sellers:
            for offer in spec.models:
                if offer.parent is not None and offer.parent not in model_ids:
                    raise ValueError(f"model {offer.id!r}: parent {offer.parent!r} is not offered by any seller")
                if offer.reserve_price > offer.price_per_call:
                    raise ValueError(f"model {offer.id!r}: reserve_price above price_per_call")
        return self


class InferenceMarket(Market):
    """Paid, audited inference (see module docstring)."""

    name: ClassVar[str] = "inference"
    section: ClassVar[type[BaseModel]] = InferenceSection

    def participants(self, section: InferenceSection, seed: int) -> list[Participant]:
        """Sellers and validators bond the minimum stake; users hold their inference budget."""
        stake = STAKING_CONFIG.min_stake
        found = [
            Participant(
                name=spec.name,
                role=seller.ROLE,
                factory="agents.roles.seller:build",
                funding=stake,
                stake=stake,  # sellers post a bond: their on-chain attestations are slashable
                options={"dishonest_rate": spec.dishonest_rate, "claim_threshold": spec.claim_threshold, "seed": seed},
            )
            for spec in section.sellers
        ]
        found += [
            Participant(
                name=f"validator-{i + 1}",
                role=validator.ROLE,
                factory="agents.roles.validator:build",
                funding=stake,
                stake=stake,
            )
            for i in range(section.validators)
        ]
        found += [
            Participant(
                name=f"user-{i + 1:02d}",
                role=user.ROLE,
                factory="agents.roles.user:build",
                funding=section.user_budget,
                options={"seed": seed},
            )
            for i in range(section.users)
        ]
        return found

    def phases(self, section: InferenceSection) -> list[Phase]:
        """models → inference → claims → (deadlines pass) → disputes, refunds."""

        async def models(ctx: EconomyContext) -> None:
            total = sum(len(spec.models) for spec in section.sellers)
            done = 0
            for spec in section.sellers:
                await ctx.call(spec.name, seller.BUILD_MODELS, BuildModels(models=spec.models, world_seed=ctx.seed))
                done += len(spec.models)
                ctx.progress("models", done, total)

        async def inference(ctx: EconomyContext) -> None:
            users = ctx.names(user.ROLE)
            ctx.ledger.jobs.setdefault("inference", Counter())
            done = 0

            async def buy(index: int) -> None:
                nonlocal done
                plan = InferencePlan(
                    kind="recommender" if index % 2 == 0 else "classifier",
                    calls=section.calls_per_user,
                    opening_per_call=section.user_opening_per_call,
                    max_per_call=section.user_max_per_call,
                    deposit=section.user_budget,
                    sample_rate=section.sample_rate,
                    channel_ttl=section.channel_ttl,
                )
                outcome = await ctx.call(users[index], user.BUY_INFERENCE, plan, wait=600)
                ctx.ledger.calls.update(paid=outcome.paid_calls, refused=outcome.refused_calls, bad=outcome.bad_results)
                ctx.ledger.jobs["inference"].update(paid=outcome.paid_calls, refused=outcome.refused_calls)
                tally = ctx.ledger.validations
                tally.sampled += outcome.sampled
                tally.agreed += outcome.agreed
                tally.disputed += outcome.disputed
                tally.attestations += outcome.sampled
                done += 1
                ctx.progress("inference", done, len(users))

            await each(ctx.concurrency, range(len(users)), buy)

        async def claims(ctx: EconomyContext) -> None:
            channels, registry = ChannelsClient(ctx.conn), ModelRegistryClient(ctx.conn)
            owners = ctx.owner_names()
            for name in ctx.names(seller.ROLE):
                if not ctx.alive(name):
                    continue
                claimed = await ctx.call(name, selling.CLAIM, Empty())
                for pairs, gas in claimed.claims:  # threshold claims made during the run, then this one
                    amount = sum(a for _, a in pairs)
                    ctx.ledger.claims.append({"seller": name, "channels": len(pairs), "amount": amount, "gas": gas})
                    for channel_id, paid in pairs:
                        model_id = (await channels.get_channel(channel_id)).model_id
                        for payout in await registry.split(model_id, paid, ctx.account(name)):
                            if payout.recipient.lower() == ctx.account(name).lower():
                                ctx.ledger.flows["users→sellers (inference)"] += payout.amount
                            else:
                                who = owners.get(payout.recipient.lower(), payout.recipient)
                                ctx.ledger.royalties[who] += payout.amount
                                ctx.ledger.flows["users→upstream creators (royalties)"] += payout.amount

        async def disputes(ctx: EconomyContext) -> None:
            owners = ctx.owner_names()
            record = ctx.ledger.sections.setdefault(self.name, {}).setdefault("disputes", [])
            for name in ctx.names(validator.ROLE):
                if not ctx.alive(name):
                    continue
                for resolved in (await ctx.call(name, validator.RESOLVE_DISPUTES, Empty())).resolved:
                    ctx.ledger.validations.slashed += resolved.slashes
                    ctx.ledger.flows["slashed stakers→winners"] += resolved.slashed - resolved.to_treasury
                    ctx.ledger.flows["slashed stakers→treasury"] += resolved.to_treasury
                    committee = {owners.get(s.member.lower(), s.member): s.ballot for s in resolved.committee}
                    slashed = sorted(owners.get(a.lower(), a) for a in resolved.slashed_accounts)
                    record.append(
                        {
                            "dispute": resolved.dispute_id,
                            "challenger": name,
                            "committee": committee,
                            "decided": resolved.decided,
                            "upheld": resolved.upheld,
                            "slashed": slashed,
                        }
                    )

        async def refunds(ctx: EconomyContext) -> None:
            async def refund(name: str) -> None:
                for amount in (await ctx.call(name, user.REFUND_CHANNELS, Empty())).amounts:
                    ctx.ledger.refunds.append(
                        Refund(kind="channel", payer=name, amount=amount, reason="unspent deposit after expiry")
                    )

            await each(ctx.concurrency, ctx.names(user.ROLE), refund)

        return [
            Phase("models", "setup", models),
            Phase("inference", "trade", inference),
            Phase("claims", "settle", claims),
            Phase("disputes", "after-deadlines", disputes),
            Phase("refunds", "after-deadlines", refunds),
        ]

    def settle_window(self, section: InferenceSection) -> int:
        """Channels expire and dispute windows close."""
        return max(section.channel_ttl, STAKING_CONFIG.dispute_window)

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"models": "training sellers' models", "inference": "users buying inference"}


MARKET = InferenceMarket()
"""The instance registered under the `agora.markets` entry point `inference`."""
