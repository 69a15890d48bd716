"""A small economy for role tests: the shared anvil, an in-process registry, an operator, and test doubles.

Roles are built exactly as the economy runner builds them (`module.build(settings, deps, options)` from plain
options) and driven through control commands sent by a bare operator agent. Peers a role needs are doubles:
a `Probe` holding just the capabilities the test wants (negotiation, channel payer) and its own settlement.
A `PaidCall` is one inference call a buyer double paid through its channel and a real seller served; it builds
the call's audit request (a ValidationRequest bound to the call's commitment and payment, signed by the payer).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web
from eth_account.signers.local import LocalAccount
from pydantic import BaseModel

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty, call
from agents.capabilities.inference import sign_task, task_id
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import BuyerLimits, Deal, NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles.base import PUBLISH_CARD, STAKE, Amount
from agents.roles.seller import BUILD_MODELS, BuildModels, ModelOffer
from agents.settings import AgentSettings
from agents.settlement import Settlement, SettlementSettings
from agents.testing.doubles import Probe
from agents.wallet import Wallet
from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from marketplace.chain.node import free_port, rpc_call
from marketplace.registry.app import RegistrySettings, create_app
from marketplace.registry.client import RegistryClient
from protocols.cards import AgentCard
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import JobSpec
from protocols.validation import Attestation, ValidationRequest

AGT = 10**18
PRICE, FLOOR = 10**16, 5 * 10**15
"""A seller's list price and reserve per call (base units)."""
MIN_STAKE = STAKING_CONFIG.min_stake
CLOCK_START = 1_700_000_000.0
GAS_MONEY = 10**20
CLASSIFIER = ModelOffer(id="clf-test", kind="classifier", price_per_call=PRICE, reserve_price=FLOOR)
ROWS = [[0.1 * i for i in range(16)], [-0.05 * i for i in range(16)]]
"""Two feature rows for the classifier."""


@dataclass
class Buyer:
    """A buyer double: a Probe that negotiates and pays through channels with its own settlement handles."""

    probe: Probe
    settlement: Settlement
    negotiation: NegotiationBuyer
    payer: ChannelPayer

    @property
    def address(self) -> str:
        """The probe's agent address."""
        return str(self.probe.address)

    @property
    def account(self) -> str:
        """The probe's settlement account."""
        return self.settlement.account

    async def agree(self, seller: str, model: str = "classifier", calls: int = 10) -> int:
        """Agree a price for `calls` calls with `seller`; the price per call."""
        deal: Deal | None = await self.negotiation.negotiate(
            [seller], JobSpec(kind="inference", model_id=model, units=calls), BuyerLimits(FLOOR * calls, PRICE * calls)
        )
        assert deal is not None
        return deal.price // calls

    async def open_channel(self, seller: AgoraAgent, calls: int = 10, ttl: int = 3_600) -> tuple[int, int]:
        """Agree a price for the classifier with `seller` and open a channel for `calls` calls; (channel, price)."""
        price = await self.agree(seller.address, calls=calls)
        listed = await self.settlement.models.get(CLASSIFIER.id)
        channel = await self.payer.open(seller.address, seller.keys.eth_address, calls * price, ttl, listed.chain_id)
        return channel, price

    async def paid_call(
        self, seller: AgoraAgent, channel: int, job_id: str, price: int, inputs: list[list[float]] = ROWS
    ) -> PaidCall:
        """Pay one classifier call with a voucher on `channel` and make it; the call, which the seller must serve."""
        receipt = await self.payer.pay(channel, price, job_id)
        request = InferenceRequest(job_id=job_id, model_id=CLASSIFIER.id, inputs=inputs, price=price)
        result = await self.probe.ask(seller.address, request, (InferenceResult,))
        assert isinstance(result, InferenceResult), result
        listed = await self.settlement.models.get(CLASSIFIER.id)
        return PaidCall(self, seller, job_id, inputs, result, channel, receipt.cumulative_amount, listed.chain_id)

    async def have_attested(self, call: PaidCall) -> Attestation:
        """Ask the seller that served `call` to stand by it on chain (its Attester); its attestation."""
        attestation = await self.probe.ask(call.seller.address, call.audit(), (Attestation,), wait=30)
        assert isinstance(attestation, Attestation), attestation
        return attestation


@dataclass
class PaidCall:
    """An inference call a buyer paid (channel, cumulative amount of its voucher) and a seller served."""

    buyer: Buyer
    seller: AgoraAgent
    job_id: str
    inputs: list[list[float]]
    result: InferenceResult
    channel: int
    cumulative: int
    model_chain_id: int

    @property
    def commitment(self) -> str:
        """The output commitment the seller returned."""
        return self.result.output_commitment

    @property
    def task(self) -> bytes:
        """The call's ValidatorStaking task id (what the seller and validators attest)."""
        return task_id(self.model_chain_id, self.commitment, self.channel, self.cumulative)

    def audit(self, signer: LocalAccount | None = None, **changes: Any) -> ValidationRequest:
        """The call's audit request with `changes` to its fields, signed over the (changed) task id by `signer`.

        The signer is the call's payer unless told otherwise; a `signature` among the changes is sent as is.
        """
        fields: dict[str, Any] = {
            "job_id": self.job_id,
            "model_id": self.result.model_id,
            "inputs": self.inputs,
            "outputs": self.result.outputs,
            "claimed_commitment": self.commitment,
            "seller": self.seller.keys.eth_address,
            "channel_id": self.channel,
            "cumulative_amount": self.cumulative,
            **changes,
        }
        if "signature" not in fields:
            task = task_id(
                self.model_chain_id, fields["claimed_commitment"], fields["channel_id"], fields["cumulative_amount"]
            )
            fields["signature"] = sign_task(signer or self.buyer.settlement.conn.account, task)
        return ValidationRequest(**fields)


@dataclass
class World:
    """The chain, a registry, an operator and every agent a test started (all stopped at the end)."""

    chain: LocalChain
    conn: ChainConnection
    workdir: Path
    manifest: Path
    registry_url: str
    operator: AgoraAgent
    started: list[AgoraAgent] = field(default_factory=list)
    settlements: list[Settlement] = field(default_factory=list)

    def options(self, **extra: Any) -> dict[str, Any]:
        """Plain role options, as the economy runner passes them."""
        common = {
            "rpc_url": self.chain.rpc_url,
            "manifest": str(self.manifest),
            "registry_url": self.registry_url,
            "operators": [self.operator.address],
            "clock_start": CLOCK_START,
        }
        return {**common, **extra}

    async def fund(self, account: str, tokens: int = 0) -> None:
        """Gas money and `tokens` AGT base units from the treasury."""
        rpc_call(self.chain.rpc_url, "anvil_setBalance", [account, hex(GAS_MONEY)])
        if tokens:
            await TokenClient(self.conn).transfer(account, tokens)

    async def role(
        self, module: ModuleType, name: str, tokens: int = 0, concurrent: bool = False, **options: Any
    ) -> AgoraAgent:
        """Build a role with `module.build` (seed and data dir fixed by `name`), fund it and start it; `concurrent`:
        its handlers run as concurrent tasks (as in scenarios with `concurrency` above 1)."""
        seed = f"role-test:{name}"
        settings = AgentSettings(
            name=name, seed=seed, data_dir=self.workdir / "agents" / name, concurrent_handlers=concurrent
        )
        agent: AgoraAgent = module.build(settings, AgentDeps(wallet=Wallet.from_seed(seed)), self.options(**options))
        logging.getLogger(name).setLevel(logging.WARNING)
        await self.fund(agent.keys.eth_address, tokens)
        await agent.start()
        self.started.append(agent)
        return agent

    async def stop(self, agent: AgoraAgent) -> None:
        """Stop one started agent now (the end of the test stops the rest)."""
        if agent in self.started:
            self.started.remove(agent)
            await agent.stop()

    async def call(self, agent: AgoraAgent, command: Command[Any, Any], args: BaseModel | None = None) -> Any:
        """Send a control command as the operator; its typed result."""
        return await call(self.operator, agent.address, command, args or Empty(), wait=180)

    async def seller_with_model(
        self, module: ModuleType, name: str = "seller", concurrent: bool = False, **options: Any
    ) -> AgoraAgent:
        """A started seller serving the small classifier, its card in the registry."""
        seller = await self.role(module, name, concurrent=concurrent, **options)
        await self.call(seller, BUILD_MODELS, BuildModels(models=[CLASSIFIER], world_seed=7))
        await self.call(seller, PUBLISH_CARD)
        return seller

    async def list_card(self, agent: AgoraAgent, role: str = "client") -> None:
        """Put a bare card for `agent` in the registry, so peers resolve its endpoint (e.g. to fetch its blobs)."""
        card = AgentCard(address=agent.address, role=role, name=agent.name, endpoints=[agent.endpoint],
                         offerings=[], owner=agent.keys.eth_address)  # fmt: skip
        client = RegistryClient(self.registry_url, agent.keys.identity)
        try:
            await client.publish(card)
        finally:
            await client.close()

    async def stake(self, agent: AgoraAgent, amount: int = MIN_STAKE) -> None:
        """Fund and stake `amount` as `agent` (a validator, or a seller posting its bond)."""
        await TokenClient(self.conn).transfer(agent.keys.eth_address, amount)
        await self.call(agent, STAKE, Amount(amount=amount))

    async def attested_call(
        self, buyer: Buyer, seller: AgoraAgent, job_id: str = "job-1", inputs: list[list[float]] = ROWS
    ) -> PaidCall:
        """A paid, served and attested call: `buyer` opens a channel to `seller` (staked), pays, calls, and asks
        the seller to stand by the result on chain."""
        channel, price = await buyer.open_channel(seller)
        paid = await buyer.paid_call(seller, channel, job_id, price, inputs)
        await buyer.have_attested(paid)
        return paid

    async def validator(self, module: ModuleType, name: str = "validator", published: bool = False) -> AgoraAgent:
        """A started validator role with the minimum stake (its card in the registry if `published`)."""
        agent = await self.role(module, name)
        await self.stake(agent)
        if published:
            await self.call(agent, PUBLISH_CARD)
        return agent

    async def buyer(self, name: str, tokens: int = 10 * AGT) -> Buyer:
        """A started buyer double with `tokens` to open channels with."""
        probe = Probe.create(self.workdir / name, name=name)
        settlement = self.settlement(probe.keys)
        negotiation = NegotiationBuyer(probe)
        payer = ChannelPayer(probe, settlement)
        compose(probe, negotiation, payer)
        await self.fund(settlement.account, tokens)
        await probe.start()
        self.started.append(probe)
        return Buyer(probe, settlement, negotiation, payer)

    def settlement(self, wallet: Wallet) -> Settlement:
        """Settlement handles signing as `wallet`, on this world's chain and registry."""
        settings = SettlementSettings(self.chain.rpc_url, self.manifest, self.registry_url)
        handles = settings.connect(wallet)
        self.settlements.append(handles)
        return handles

    async def close(self) -> None:
        """Stop every agent still running, then close the test's own settlement handles."""
        for agent in reversed(self.started):
            await agent.stop()
        self.started.clear()
        for handles in self.settlements:
            await handles.close()


@asynccontextmanager
async def registry(database: Path) -> AsyncIterator[str]:
    """The agora registry service on a free loopback port; its base URL."""
    runner = web.AppRunner(create_app(RegistrySettings(database_url=f"sqlite+aiosqlite:///{database}", ttl=3600)))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def world(chain: LocalChain, conn: ChainConnection, workdir: Path) -> AsyncIterator[World]:
    """A World on `chain` (already snapshotted by the caller), torn down in reverse order."""
    manifest = chain.deployment.save(workdir / "deployment.json")
    operator = AgoraAgent(AgentSettings(name="operator", seed="role-test:operator", data_dir=workdir / "operator"))
    logging.getLogger("operator").setLevel(logging.WARNING)
    async with registry(workdir / "registry.sqlite3") as url:
        await operator.start()
        w = World(chain, conn, workdir, manifest, url, operator)
        try:
            yield w
        finally:
            await w.close()
            await operator.stop()
