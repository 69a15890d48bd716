"""The economy runner: a scenario on a fresh chain with the registry and every agent, phase by phase, into a report.

All agents run in this process on one event loop (uAgents Bureau style): their messages go through the
uAgents dispatcher, their money through the real contracts on anvil, their discovery through the
registry service on a loopback port. Time on the agents' side is a simulated clock; time on chain
moves with `evm_increaseTime`, so expiry paths run in seconds and a seed fixes the whole run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from aiohttp import web

from marketplace.blobstore import BlobStore
from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from marketplace.chain.node import free_port, rpc_call
from marketplace.ml import ensure_deterministic, fine_tune, load_model, make_interactions, split, train_base_model
from marketplace.registry.app import RegistrySettings, create_app
from marketplace.registry.client import RegistryClient
from marketplace.sim.report import AgentBalance, EconomyReport, GasFigure, Refund, ValidationTally
from marketplace.sim.roles import load_roles, load_runtime
from marketplace.sim.scenario import Scenario
from protocols.cards import AgentCard, Offering

if TYPE_CHECKING:  # the SDK itself is loaded through the `agora.runtime` entry point, never imported here
    from agents.wallet import Wallet

GAS_MONEY = 10**20
"""Native currency (wei) given to every agent account for transaction fees."""

Progress = Callable[[str, int, int], None]
"""Called as (phase, done, total) while a phase runs."""


@dataclass
class Participant:
    """One agent of the run, with what the runner needs to drive and account for it."""

    name: str
    role: str
    agent: Any
    wallet: Wallet
    alive: bool = True


@dataclass
class Ledger:
    """What the runner observed, to be turned into the report."""

    balance_timeline: list[dict[str, int]] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    inference: Counter[str] = field(default_factory=Counter)
    validations: ValidationTally = field(default_factory=ValidationTally)
    jobs: dict[str, Counter[str]] = field(default_factory=lambda: {"inference": Counter(), "training": Counter()})
    claims: list[dict[str, Any]] = field(default_factory=list)
    royalties: Counter[str] = field(default_factory=Counter)
    flows: Counter[str] = field(default_factory=Counter)
    refunds: list[Refund] = field(default_factory=list)
    channels: dict[str, list[int]] = field(default_factory=dict)
    escrow_jobs: dict[str, int] = field(default_factory=dict)


def _seed_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


class Economy:
    """One run of a scenario on a LocalChain; `await Economy(...).run()` returns the report."""

    def __init__(
        self,
        scenario: Scenario,
        chain: LocalChain,
        workdir: Path,
        roles: dict[str, ModuleType],
        progress: Progress | None = None,
    ) -> None:
        self.scenario = scenario
        self.chain = chain
        self.workdir = workdir
        self.roles = roles
        self.progress = progress or (lambda phase, done, total: None)
        self.sdk = load_runtime()
        self.clock = self.sdk.SimulatedClock()
        self.blobs = BlobStore(workdir / "blobs")
        self.ledger = Ledger()
        self.people: dict[str, Participant] = {}
        self._registry_url = ""
        self.log_level = logging.WARNING

    # --- set-up -----------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _registry(self) -> AsyncIterator[str]:
        settings = RegistrySettings(database_url=f"sqlite+aiosqlite:///{self.workdir / 'registry.sqlite3'}", ttl=3600)
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

    def _wallet(self, name: str) -> Wallet:
        wallet: Wallet = self.sdk.Wallet.from_seed(f"agora-demo:{self.scenario.seed}:{name}")
        return wallet

    def _make(
        self, conn: ChainConnection, name: str, role: str, build: Callable[..., Any], **extra: Any
    ) -> Participant:
        wallet = self._wallet(name)
        settings = self.sdk.AgentSettings(
            name=name, seed=f"agora-demo:{self.scenario.seed}:{name}", data_dir=self.workdir / "agents" / name
        )
        market = self.sdk.Market(
            conn.with_account(wallet.account), self.blobs, RegistryClient(self._registry_url, wallet.identity)
        )
        agent = build(settings, self.sdk.AgentDeps(wallet=wallet, clock=self.clock), market, **extra)
        logging.getLogger(name).setLevel(self.log_level)
        participant = Participant(name, role, agent, wallet)
        self.people[name] = participant
        return participant

    async def _fund(self, treasury: TokenClient) -> None:
        s = self.scenario
        stake = STAKING_CONFIG.min_stake
        for p in self.people.values():
            rpc_call(self.chain.rpc_url, "anvil_setBalance", [p.wallet.eth_address, hex(GAS_MONEY)])
            amount = {"user": s.user_budget, "advertiser": s.training_budget, "validator": stake, "seller": stake}[
                p.role
            ]
            await treasury.transfer(p.wallet.eth_address, amount)

    async def _stake(self) -> None:
        for p in self.people.values():
            if p.role in ("validator", "seller"):  # sellers post a bond: their on-chain attestations are slashable
                market = p.agent.market
                await market.token.approve(market.staking.address, STAKING_CONFIG.min_stake)
                await market.staking.stake(STAKING_CONFIG.min_stake)

    async def _build_sellers(self) -> None:
        seller_mod = self.roles["seller"]
        ensure_deterministic()
        done = 0
        total = sum(len(spec.models) for spec in self.scenario.sellers)
        for spec in self.scenario.sellers:
            agent = self.people[spec.name].agent
            for offer in spec.models:
                seed = _seed_int(self.scenario.seed, offer.id)
                if offer.parent is not None:
                    parent = await agent.market.models.get(offer.parent)
                    base = load_model(self.blobs.get(parent.content_hash), parent.content_hash)
                    own = make_interactions(base.spec, 4_000, seed=seed)  # type: ignore[arg-type]  # parents are recommenders
                    model, _ = fine_tune(
                        base, split(own, 0.1, seed)[0], epochs=max(offer.fine_tune_epochs, 1), lr=0.01, seed=seed
                    )
                else:
                    model, _ = train_base_model(offer.kind, seed=seed)
                served = seller_mod.ServedModel(offer.id, offer.kind, model, offer.price_per_call, offer.reserve_price)
                await agent.publish_model(served, parent=offer.parent, royalty_bps=offer.royalty_bps)
                done += 1
                self.progress("models", done, total)

    async def _publish_cards(self) -> None:
        for p in self.people.values():
            offerings: list[Offering] = []
            if p.role == "seller":
                spec = next(s for s in self.scenario.sellers if s.name == p.name)
                offerings = [
                    Offering(model_id=m.id, job_kind="inference", price_per_unit=m.price_per_call) for m in spec.models
                ]
                offerings += [
                    Offering(model_id=m.id, job_kind="training", price_per_unit=spec.training_price, unit="job")
                    for m in spec.models
                    if m.kind == "recommender"
                ]
            card = AgentCard(
                address=p.agent.address,
                role=p.role,  # type: ignore[arg-type]  # one of ROLE_NAMES
                name=p.name,
                endpoints=[p.agent.endpoint],
                offerings=offerings,
                owner=p.wallet.eth_address,
            )
            await p.agent.market.registry.register(card)

    # --- phases ----------------------------------------------------------------------------------
    async def _kill(self, phase: str) -> None:
        """Stop agents whose fault fires when `phase` begins (training faults fire mid-job instead)."""
        for fault in self.scenario.faults:
            if fault.phase == phase != "training" and self.people[fault.agent].alive:
                await self._stop(fault.agent)

    async def _stop(self, name: str) -> None:
        p = self.people[name]
        p.alive = False
        await p.agent.stop()

    async def _inference_phase(self) -> None:
        s = self.scenario
        user_mod = self.roles["user"]
        users = [p for p in self.people.values() if p.role == "user"]
        for i, p in enumerate(users):
            plan = user_mod.InferencePlan(
                kind="recommender" if i % 2 == 0 else "classifier",
                calls=s.calls_per_user,
                opening_per_call=s.user_opening_per_call,
                max_per_call=s.user_max_per_call,
                deposit=s.user_budget,
                sample_rate=s.sample_rate,
                channel_ttl=s.channel_ttl,
            )
            outcome = await p.agent.buy_inference(plan)
            self.ledger.channels[p.name] = list(outcome.channels)
            self.ledger.inference.update(
                paid=outcome.paid_calls, refused=outcome.refused_calls, bad=outcome.bad_results
            )
            tally = self.ledger.validations
            tally.sampled += outcome.sampled
            tally.agreed += outcome.agreed
            tally.disputed += outcome.disputed
            tally.attestations += outcome.sampled
            self.progress("inference", i + 1, len(users))

    async def _training_phase(self) -> None:
        s = self.scenario
        adv_mod = self.roles["advertiser"]
        sellers = sorted(spec.name for spec in s.sellers if any(m.kind == "recommender" for m in spec.models))
        advertisers = [p for p in self.people.values() if p.role == "advertiser"]
        for i, p in enumerate(advertisers):
            seller_name = sellers[i % len(sellers)]
            seller_spec = next(x for x in s.sellers if x.name == seller_name)
            base = next(m.id for m in seller_spec.models if m.kind == "recommender")
            entry = await p.agent.market.registry.get(self.people[seller_name].agent.address)
            if entry is None or not self.people[seller_name].alive:
                self.ledger.jobs["training"]["no-seller"] += 1
                continue
            plan = adv_mod.TrainingPlan(
                base_model_id=base,
                catalogue=i % 4,
                opening=s.training_opening,
                budget=s.training_budget,
                epochs=s.training_epochs,
                ttl=s.training_ttl,
                min_score=s.training_min_score,
            )
            faults = [f for f in s.faults if f.phase == "training" and f.agent == seller_name]

            async def crash(name: str = seller_name) -> None:
                await self._stop(name)

            outcome = await p.agent.buy_training(entry, plan, after_funding=crash if faults else None)
            if not outcome.escrow_job_id:
                self.ledger.jobs["training"][outcome.state] += 1
            else:
                self.ledger.escrow_jobs[p.name] = outcome.escrow_job_id
            self.progress("training", i + 1, len(advertisers))

    async def _settle(self) -> None:
        """Sellers claim their vouchers; after every deadline, disputes resolve and payers take back the rest."""
        for p in self.people.values():
            if p.role == "seller" and p.alive:
                await p.agent.claim_vouchers()
                for claims, gas in p.agent.claim_log:  # threshold claims made during the run, then this one
                    self.ledger.claims.append(
                        {"seller": p.name, "channels": len(claims), "amount": sum(c.amount for c in claims), "gas": gas}
                    )
                    await self._royalties(p, claims)
        window = max(self.scenario.channel_ttl, self.scenario.training_ttl, STAKING_CONFIG.dispute_window) + 60
        self.chain.increase_time(window)
        self.clock.advance(window)
        for p in self.people.values():
            if p.role == "validator":
                for resolved in await p.agent.resolve_disputes():
                    self.ledger.validations.slashed += len(resolved.slashes)
                    self.ledger.flows["slashed sellers→validators"] += resolved.slashed - resolved.to_treasury
                    self.ledger.flows["slashed sellers→treasury"] += resolved.to_treasury
        for p in self.people.values():
            if p.role == "user":
                for refund in await p.agent.refund_channels(self.ledger.channels.get(p.name, [])):
                    self.ledger.refunds.append(
                        Refund(
                            kind="channel", payer=p.name, amount=refund.amount, reason="unspent deposit after expiry"
                        )
                    )
            if p.role == "advertiser" and p.name in self.ledger.escrow_jobs:
                expired = await p.agent.reclaim_expired(self.ledger.escrow_jobs[p.name])
                if expired is not None:
                    self.ledger.refunds.append(
                        Refund(kind="escrow", payer=p.name, amount=expired.refunded, reason="seller never delivered")
                    )

    async def _royalties(self, seller: Participant, claims: list[Any]) -> None:
        registry = seller.agent.market.model_registry
        owners = {p.wallet.eth_address.lower(): p.name for p in self.people.values()}
        for claim in claims:
            channel = await seller.agent.market.channels.get_channel(claim.channel_id)
            for payout in await registry.split(channel.model_id, claim.amount, seller.wallet.eth_address):
                if payout.recipient.lower() == seller.wallet.eth_address.lower():
                    self.ledger.flows["users→sellers (inference)"] += payout.amount
                else:
                    self.ledger.royalties[owners.get(payout.recipient.lower(), payout.recipient)] += payout.amount
                    self.ledger.flows["users→upstream creators (royalties)"] += payout.amount

    async def _training_flows(self) -> None:
        """Where completed training budgets went: provider, evaluator fee, royalties along the base model's lineage."""
        owners = {p.wallet.eth_address.lower(): p.name for p in self.people.values()}
        for p in self.people.values():
            if p.role != "validator":
                continue
            for job_id in self.ledger.escrow_jobs.values():
                record = p.agent.store.get(f"evaluation:{job_id}")
                if not (record and record.get("completed")):
                    continue
                self.ledger.flows["advertisers→sellers (training)"] += record["provider"]
                self.ledger.flows["advertisers→validators (evaluation fees)"] += record["fee"]
                self.ledger.flows["advertisers→upstream creators (royalties)"] += record["royalties"]
                job = await p.agent.market.escrow.get_job(job_id)
                paid = record["provider"] + record["royalties"]  # the split runs on the budget minus the fee
                for payout in await p.agent.market.model_registry.split(job.model_id, paid, job.provider):
                    if payout.recipient.lower() != job.provider.lower():
                        self.ledger.royalties[owners.get(payout.recipient.lower(), payout.recipient)] += payout.amount

    async def _final_job_states(self) -> None:
        """Count training jobs by their final JobEscrow status, read from the chain."""
        escrow = next(iter(self.people.values())).agent.market.escrow
        for job_id in self.ledger.escrow_jobs.values():
            self.ledger.jobs["training"][(await escrow.get_job(job_id)).status.name.lower()] += 1

    async def _stakes(self) -> dict[str, int]:
        """Each staked agent's remaining stake (bond), which slashing reduces."""
        found = {}
        for p in self.people.values():
            if p.role in ("validator", "seller"):
                found[p.name] = (await p.agent.market.staking.stake_of(p.wallet.eth_address)).total
        return found

    # --- accounting --------------------------------------------------------------------------------
    async def _balances(self, token: TokenClient) -> dict[str, int]:
        found = {"treasury": await token.balance_of(self.chain.treasury.address)}
        for p in self.people.values():
            found[p.name] = await token.balance_of(p.wallet.eth_address)
        for contract in ("JobEscrow", "PaymentChannels", "ValidatorStaking"):
            found[contract] = await token.balance_of(self.chain.deployment.address(contract))
        return found

    async def _snapshot(self, token: TokenClient, phase: str) -> dict[str, int]:
        balances = await self._balances(token)
        self.ledger.phases.append(phase)
        self.ledger.balance_timeline.append({k: v for k, v in balances.items() if k in self.people})
        return balances

    # --- the run -----------------------------------------------------------------------------------
    async def run(self) -> EconomyReport:
        """Run every phase and return the report."""
        started = time.perf_counter()
        timing: dict[str, float] = {}
        async with self.chain.connect() as conn, self._registry() as url:
            self._registry_url = url
            token = TokenClient(conn)
            supply_before = await token.total_supply()
            initial = await self._balances(token)
            self._create_agents(conn)
            agents = [p.agent for p in self.people.values()]
            try:
                for agent in agents:
                    await agent.start()
                await self._fund(token)
                await self._stake()
                await self._build_sellers()
                await self._publish_cards()
                start = await self._snapshot(token, "funded")
                timing["setup_seconds"] = time.perf_counter() - started
                await self._kill("inference")
                await self._inference_phase()
                await self._snapshot(token, "inference")
                await self._kill("training")
                await self._training_phase()
                await self._training_flows()
                await self._snapshot(token, "training")
                await self._kill("settlement")
                await self._settle()
                final = await self._snapshot(token, "settled")
                await self._final_job_states()
                stakes = await self._stakes()
            finally:
                for p in self.people.values():
                    if p.alive:
                        await p.agent.stop()
                    await p.agent.market.registry.close()
            supply_after = await token.total_supply()
        timing["wall_seconds"] = time.perf_counter() - started
        report = self._report(initial, start, final, supply_before, supply_after, conn, timing)
        for name, stake in stakes.items():
            report.balances[name].stake_after = stake
        return report

    def _create_agents(self, conn: ChainConnection) -> None:
        s = self.scenario
        seller_mod = self.roles["seller"]
        for spec in s.sellers:
            terms = seller_mod.SellerTerms(
                training_price=spec.training_price,
                training_floor=spec.training_floor,
                dishonest_rate=spec.dishonest_rate,
                claim_threshold=spec.claim_threshold,
                seed=s.seed,
            )
            self._make(conn, spec.name, "seller", seller_mod.ROLE, terms=terms)
        for i in range(s.validators):
            self._make(conn, f"validator-{i + 1}", "validator", self.roles["validator"].ROLE)
        for i in range(s.advertisers):
            self._make(
                conn,
                f"advertiser-{i + 1}",
                "advertiser",
                self.roles["advertiser"].ROLE,
                seed=_seed_int(s.seed, "adv", i),
            )
        for i in range(s.users):
            self._make(conn, f"user-{i + 1:02d}", "user", self.roles["user"].ROLE, seed=s.seed)

    def _report(
        self,
        initial: dict[str, int],
        start: dict[str, int],
        final: dict[str, int],
        supply_before: int,
        supply_after: int,
        conn: ChainConnection,
        timing: dict[str, float],
    ) -> EconomyReport:
        holders_ok = sum(initial.values()) == supply_before and sum(final.values()) == supply_after
        no_stuck_funds = final["JobEscrow"] == 0 and final["PaymentChannels"] == 0
        balances = {
            "treasury": AgentBalance(
                address=self.chain.treasury.address,
                role="treasury",
                before=initial["treasury"],
                after=final["treasury"],
            )
        }
        for p in self.people.values():
            balances[p.name] = AgentBalance(
                address=p.wallet.eth_address, role=p.role, before=start[p.name], after=final[p.name]
            )
        gas = {op: GasFigure(count=c, total=t) for op, (c, t) in conn.gas_meter.totals().items()}
        inference = dict(self.ledger.inference)
        return EconomyReport(
            scenario=self.scenario.name,
            seed=self.scenario.seed,
            token_supply_before=supply_before,
            token_supply_after=supply_after,
            balances=balances,
            jobs={
                "inference": {"paid": inference.get("paid", 0), "refused": inference.get("refused", 0)},
                "training": dict(sorted(self.ledger.jobs["training"].items())),
            },
            inference_calls=inference,
            channel_claims=self.ledger.claims,
            gas_used=gas,
            royalties=dict(sorted(self.ledger.royalties.items())),
            validations=self.ledger.validations,
            refunds=self.ledger.refunds,
            conservation_ok=holders_ok and no_stuck_funds and supply_before == supply_after,
            balance_timeline=self.ledger.balance_timeline,
            phases=self.ledger.phases,
            flows=dict(sorted(self.ledger.flows.items())),
            timing=timing,
        )


def run_economy(scenario: Scenario, workdir: Path, progress: Progress | None = None) -> EconomyReport:
    """Start a fresh anvil with agora deployed, run the scenario on it, stop everything, return the report."""
    from marketplace.chain import local_chain

    roles = load_roles()
    report = progress or (lambda phase, done, total: None)
    report("chain", 0, 1)
    with local_chain(accounts=2) as chain:
        report("chain", 1, 1)
        return asyncio.run(Economy(scenario, chain, workdir, roles, progress).run())


__all__ = ["Economy", "run_economy"]
