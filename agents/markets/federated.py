"""The federated-learning market: a sponsor escrows rewards for training a fresh recommender on users' own
shopping histories; an aggregator (a staked validator) runs DP-SGD rounds under secure aggregation; users are
paid per round through FederatedRewards and share the new versions' royalties.

Scenario section `markets.federated`; phases: federated (trade: sponsor, then every round), rewards (settle:
users claim), federated refunds (after deadlines: the sponsor takes back what nobody earned or claimed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agents.capabilities.control import Empty
from agents.capabilities.federated.client import ClientOptions
from agents.capabilities.federated.sponsor import Sponsorship
from agents.markets.plugin import EconomyContext, Market, MarketPanel, Participant, Phase, Refund
from agents.roles import seller, user, validator
from agents.roles.seller import Sponsor
from agents.roles.validator import JobId
from marketplace.chain.deploy import STAKING_CONFIG
from protocols.federated import FederatedPlan

AGT = 10**18


class FederatedSection(BaseModel):
    """The federated market of a scenario (amounts in AGT base units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sponsor: str = "seller-a"
    """The model seller that funds the job and registers its versions (a seller of another market, or a new one)."""
    model_id: str = "rec-fl"
    users: int = Field(default=10, ge=2, le=1_000)
    """Users user-01 … take part (the same agents as the inference market's users, when both run)."""
    rounds: int = Field(default=3, ge=1, le=100)
    clients_per_round: int = Field(default=10, ge=2, le=1_000)
    min_participants: int = Field(default=3, ge=2)
    neighbours: int | None = Field(default=None, ge=2)
    """Secure-aggregation neighbour degree (SecAgg+, even); None: every participant is every other's neighbour."""
    noise_multiplier: float = Field(default=0.8, ge=0.3, le=10.0)
    clip_norm: float = Field(default=1.0, gt=0.0)
    delta: float = Field(default=1e-5, gt=0.0, lt=1.0)
    local_steps: int = Field(default=8, ge=1, le=1_000)
    batch_size: int = Field(default=64, ge=1, le=4_096)
    lr: float = Field(default=1.0, gt=0.0, le=10.0)
    update_clip: float = Field(default=2.0, gt=0.0)
    events_per_user: int = Field(default=128, ge=16, le=100_000)
    epsilon_budget: float = Field(default=60.0, gt=0.0)
    """Each user's total privacy budget; a user refuses rounds beyond it."""
    reward_per_round: int = Field(default=5 * AGT, gt=0)
    max_samples: int = Field(default=128, ge=1)
    price_per_call: int = Field(default=15 * 10**15, gt=0)
    ttl: int = Field(default=3_600, ge=60)
    claim_window: int = Field(default=86_400, ge=86_400)
    drop: dict[str, list[int]] = {}
    """Users that leave given rounds after sharing their keys (dropouts the rounds must survive)."""

    def plan(self) -> FederatedPlan:
        """The plan the sponsor commits to (its model hash is filled in when version 0 exists)."""
        return FederatedPlan(
            model_id=self.model_id, model_hash="", rounds=self.rounds, clients_per_round=self.clients_per_round,
            min_participants=self.min_participants, clip_norm=self.clip_norm, noise_multiplier=self.noise_multiplier,
            delta=self.delta, local_steps=self.local_steps, batch_size=self.batch_size, lr=self.lr,
            update_clip=self.update_clip, reward_per_round=self.reward_per_round, max_samples=self.max_samples,
        )  # fmt: skip


def user_name(i: int) -> str:
    """The name of the i-th user (0-based), shared with the inference market."""
    return f"user-{i + 1:02d}"


class FederatedMarket(Market):
    """Federated learning with paid, private contributions (see module docstring)."""

    name: ClassVar[str] = "federated"
    section: ClassVar[type[BaseModel]] = FederatedSection

    def participants(self, section: FederatedSection, seed: int) -> list[Participant]:
        """The sponsor (funded with the reward budget), the users, and one staked aggregator."""
        stake = STAKING_CONFIG.min_stake
        found = [
            Participant(
                name=section.sponsor, role=seller.ROLE, factory="agents.roles.seller:build",
                funding=section.rounds * section.reward_per_round,
            ),
            Participant(
                name="aggregator-1", role=validator.ROLE, factory="agents.roles.validator:build", funding=stake,
                stake=stake, options={"neighbours": section.neighbours},
            ),
        ]  # fmt: skip
        for i in range(section.users):
            options = ClientOptions(
                enabled=True,
                shopper_id=i, events=section.events_per_user, epsilon_budget=section.epsilon_budget,
                world_seed=seed, drop_rounds=section.drop.get(user_name(i), []),
            )  # fmt: skip
            found.append(
                Participant(
                    name=user_name(i),
                    role=user.ROLE,
                    factory="agents.roles.user:build",
                    options={"federated": options.model_dump(), "seed": seed},
                )
            )
        return found

    def phases(self, section: FederatedSection) -> list[Phase]:
        """federated (trade) → rewards (settle) → federated refunds (after deadlines)."""

        async def federated(ctx: EconomyContext) -> None:
            request = Sponsor(
                sponsorship=Sponsorship(plan=section.plan().dict(), ttl=section.ttl, claim_window=section.claim_window,
                                        seed=ctx.seed, population=section.users, world_seed=ctx.seed),
                price_per_call=section.price_per_call, reserve_price=section.price_per_call // 2,
            )  # fmt: skip
            ctx.progress("federated", 0, section.rounds)
            job = await ctx.call(section.sponsor, seller.SPONSOR_FEDERATED, request, wait=300)
            names = {ctx.address(n): n for n in ctx.names(validator.ROLE)}
            aggregator = names[job.aggregator]
            report = await ctx.call(aggregator, validator.RUN_FEDERATED, JobId(job_id=job.job_id), wait=1_800)
            ctx.progress("federated", section.rounds, section.rounds)
            owners = ctx.owner_names()
            agents = {ctx.address(n): n for n in ctx.names(user.ROLE)}
            epsilon = {}
            for name in ctx.names(user.ROLE):
                if ctx.alive(name):
                    epsilon[name] = (await ctx.call(name, user.PRIVACY_SPENT, Empty())).epsilon
            ctx.ledger.sections[self.name] = {
                "job": job.job_id,
                "sponsor": section.sponsor,
                "aggregator": aggregator,
                "base_model": job.model_id,
                "initial_metric": report.initial_metric,
                "joined": len(report.joined),
                "refused": {agents.get(a, a): why for a, why in report.refused.items()},
                "rounds": [
                    {**r.model_dump(), "rewards": {owners.get(a.lower(), a): v for a, v in r.rewards.items()}}
                    for r in report.rounds
                ],
                "epsilon": epsilon,
                "claimed": {},
            }

        async def rewards(ctx: EconomyContext) -> None:
            claimed = ctx.ledger.sections.setdefault(self.name, {}).setdefault("claimed", {})
            for name in ctx.names(user.ROLE):
                if not ctx.alive(name):
                    continue
                amounts = (await ctx.call(name, user.CLAIM_REWARDS, Empty())).amounts
                if amounts:
                    claimed[name] = sum(amounts)
                    ctx.ledger.flows["sponsor→users (federated rewards)"] += sum(amounts)

        async def refunds(ctx: EconomyContext) -> None:
            if not ctx.alive(section.sponsor):
                return
            for amount in (await ctx.call(section.sponsor, seller.REFUND_FEDERATED, Empty())).amounts:
                ctx.ledger.refunds.append(
                    Refund(
                        kind="federated", payer=section.sponsor, amount=amount, reason="rewards not earned or claimed"
                    )
                )

        return [
            Phase("federated", "trade", federated),
            Phase("rewards", "settle", rewards),
            Phase("federated refunds", "after-deadlines", refunds),
        ]

    def settle_window(self, section: FederatedSection) -> int:
        """Rounds close at the deadline and claims at the end of the claim window."""
        return section.ttl + section.claim_window

    def labels(self) -> dict[str, str]:
        """Progress-bar labels."""
        return {"federated": "federated training rounds"}

    def plot(self, data: dict[str, Any], out_dir: Path) -> list[Path]:
        """The global model's held-out AUC per round; ε spent and rewards claimed per user."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rounds = data.get("rounds", [])
        fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4))
        xs = [0] + [r["round"] for r in rounds if r["completed"]]
        ys = [data.get("initial_metric", 0.0)] + [r["metric"] for r in rounds if r["completed"]]
        left.plot(xs, ys, marker="o", color="#3b7dd8")
        for r in rounds:
            if not r["completed"]:
                left.axvline(r["round"], color="#b42318", linestyle="--", linewidth=1)
        left.set_xticks(range(len(rounds) + 1))
        left.set_xlabel("round (0: version 0; dashed: aborted)")
        left.set_ylabel("held-out AUC")
        left.set_title("Global model per round")
        epsilon = data.get("epsilon", {})
        names = sorted(epsilon)
        middle.bar(names, [epsilon[n] for n in names], color="#6a4fb3")
        middle.set_title("Privacy spent per user (ε)")
        middle.tick_params(axis="x", rotation=70)
        claimed = data.get("claimed", {})
        right.bar(names, [claimed.get(n, 0) / AGT for n in names], color="#2f9e6a")
        right.set_title("Federated rewards claimed (AGT)")
        right.tick_params(axis="x", rotation=70)
        fig.tight_layout()
        path = out_dir / "federated.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [path]

    def summary(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """Rounds completed, the model's AUC from version 0 to the last, the most ε any user spent."""
        rounds = data.get("rounds", [])
        done = [r for r in rounds if r["completed"]]
        auc = f"{data.get('initial_metric', 0.0):.3f} → {done[-1]['metric']:.3f}" if done else "no round completed"
        dropped = sum(r["dropped"] for r in rounds)
        return [
            ("federated rounds (completed / aborted)", f"{len(done)} / {len(rounds) - len(done)}"),
            ("federated held-out AUC", auc),
            ("federated dropouts survived", str(dropped)),
            ("most ε spent by a user", f"{max(data.get('epsilon', {}).values(), default=0.0):.2f}"),
        ]

    def panel(self, data: dict[str, Any]) -> MarketPanel | None:
        """One row per round: participants, survivors, dropouts, held-out AUC and rewards paid (AGT)."""
        if not data.get("rounds"):
            return None
        rows: list[list[str | int | float]] = [[0, "version 0", "", "", round(data.get("initial_metric", 0.0), 4), ""]]
        for r in data["rounds"]:
            status = "completed" if r["completed"] else f"aborted: {r['reason']}"
            paid = f"{sum(r['rewards'].values()) / AGT:g}"
            rows.append([r["round"], status, r["participants"], r["dropped"], round(r["metric"], 4), paid])
        note = f"job {data.get('job')} sponsored by {data.get('sponsor')}, aggregated by {data.get('aggregator')}"
        columns = ["round", "status", "participants", "dropped", "held-out AUC", "rewards (AGT)"]
        return MarketPanel(title="Federated rounds", columns=columns, rows=rows, note=note)


MARKET = FederatedMarket()
"""The instance registered under the `agora.markets` entry point `federated`."""
