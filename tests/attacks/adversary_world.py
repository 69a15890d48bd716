"""The world the adversary property tests run in: the real seller and validator roles, an honest buyer, the
adversary and its sybil, all on the shared anvil; what the tests know about them; and the runner.

The state machines are in adversary_honest.py (the honest parties, and the adversary using the protocol as any
buyer would), adversary_promises.py (what docs/security.md promises, checked after every step) and one module per
kind of attack (adversary_payments.py, adversary_audits.py, adversary_disputes.py); test_adversary_properties.py
runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eth_abi.abi import decode, encode
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from uagents import Model

from agents.base import AgoraAgent
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer, ExpiryClaims
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.base import GAS_KEY, PUBLISH_CARD
from agents.settings import AgentSettings
from agents.settlement import Settlement
from agents.testing.doubles import Probe
from agents.wallet import Wallet
from marketplace.chain import ChainConnection, LocalChain, StakingClient
from marketplace.chain.node import rpc_call
from protocols.validation import ValidationRequest
from tests.roles.world import AGT, CLASSIFIER, MIN_STAKE, Buyer, World, world

T = TypeVar("T")

BUYER, ADVERSARY = "buyer", "adversary"
CALLS_PER_CHANNEL = 8
"""Calls the honest buyer deposits for in each channel."""
BUYER_TTL = 2 * 3_600
ADVERSARY_TTLS = (1_900, 2 * 3_600)
"""Just above PaymentChannels' 30-minute minimum, and two hours."""
CLAIM_MARGIN = ExpiryClaims().margin(1.0)
"""The seller's claim margin on this chain (1 s blocks: the default floor, 300 s). Its expiry check claims a
channel once it is this close to expiry, and it takes no voucher on that channel afterwards."""
VALIDATOR_STAKE = 3 * MIN_STAKE
"""More than the adversary's and its sybil's MIN_STAKE each, so a committee is never theirs to decide."""
TIME_JUMPS = (60, 1_800, 3_600, 24 * 3_600 + 60)
WRONG_RESULTS = {ADVERSARY: b"\x66" * 32, "sybil": b"\x77" * 32}
FEATURES = 16
INPUTS = [
    [[round(0.1 * i - 0.8, 4) for i in range(FEATURES)]],
    [[0.3] * FEATURES, [round(-0.05 * i, 4) for i in range(FEATURES)]],
    [[round((-1) ** i * 0.2 * (i % 5), 4) for i in range(FEATURES)] for _ in range(3)],
]
MALFORMED = [[0.5] * (FEATURES - 1)]
AUDIT_VARIANTS = ("replay", "inputs", "outputs", "recommit", "unsigned", "payment")
"""How the adversary builds a ValidationRequest from a call it saw: as sent, with other inputs or outputs,
with made-up outputs and a commitment to them, signed by itself, or claiming another payment."""
KEEP = ("catalogue/", "negotiation.", "blobs.", GAS_KEY)
"""Store namespaces that survive between examples (off-chain or registered before the snapshot, and the roles'
gas tally, which only ever adds up)."""


# --- chain reads in one batch ---------------------------------------------------------------------


class ChainReader:
    """eth_calls with precomputed calldata in one JSON-RPC batch (the invariants run after every step, and
    web3's per-call ABI machinery would dominate the run time, as in tests/contracts/test_properties.py)."""

    def __init__(self, chain: LocalChain) -> None:
        self.url = chain.rpc_url
        self.deployment = chain.deployment
        self._fns: dict[tuple[str, str], tuple[bytes, list[str], list[str]]] = {}

    def call(self, contract: str, name: str, *args: Any) -> tuple[str, list[Any], list[str]]:
        """A batched request: (method, params, output types)."""
        if (contract, name) not in self._fns:
            abi = next(
                e for e in self.deployment.abi(contract) if e.get("type") == "function" and e.get("name") == name
            )
            self._fns[contract, name] = (
                function_abi_to_4byte_selector(abi),  # type: ignore[arg-type]
                list(get_abi_input_types(abi)),  # type: ignore[arg-type]
                list(get_abi_output_types(abi)),  # type: ignore[arg-type]
            )
        selector, inputs, outputs = self._fns[contract, name]
        data = "0x" + (selector + encode(inputs, list(args))).hex()
        return "eth_call", [{"to": self.deployment.address(contract), "data": data}, "latest"], outputs

    def batch(self, requests: list[tuple[str, list[Any], list[str]]]) -> list[Any]:
        """Send every request at once; eth_calls come back decoded (a tuple of outputs), the rest raw."""
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p, _) in enumerate(requests)]
        request = urllib.request.Request(  # noqa: S310 - the loopback anvil URL
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            replies = sorted(json.loads(response.read()), key=lambda r: r["id"])
        results = []
        for (method, _, outputs), reply in zip(requests, replies, strict=True):
            assert "error" not in reply, (method, reply)
            raw = reply["result"]
            results.append(decode(outputs, bytes.fromhex(raw[2:])) if method == "eth_call" else raw)
        return results


# --- what the test knows ------------------------------------------------------------------------------


@dataclass
class ChannelModel:
    """A channel paying the seller, as its sender opened it."""

    owner: str
    """BUYER or ADVERSARY."""
    deposit: int
    expiry: int
    nonce: int
    signed: int = 0
    """The highest cumulative amount the owner signed (the adversary's; the buyer's is in its payer book)."""
    accepted: int = 0
    """The adversary's: the cumulative amount of the last voucher the seller took (from its receipts)."""
    paid_calls: int = 0
    """Honest buyer: vouchers it sent on this channel (each for one call)."""


@dataclass
class Call:
    """A call the seller answered, with the audit request its payer signs for it."""

    payer: str
    job_id: str
    rows: list[list[float]]
    outputs: list[list[float]]
    commitment: str
    channel_id: int
    cumulative: int
    task: bytes
    request: ValidationRequest


@dataclass
class DisputeModel:
    """A dispute the adversary opened."""

    call: Call
    accused: str
    challenger: str
    deadline: int
    resolved: bool = False


@dataclass
class Counters:
    """Steps and examples run across the test (the test asserts a floor)."""

    steps: int = 0
    examples: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    """What the adversary's moves led to (the test asserts that the interesting ones happened)."""


@dataclass
class Env:
    """What every example shares: the chain, one event loop, the world and its agents."""

    chain: LocalChain
    loop: asyncio.AbstractEventLoop
    world: World
    reader: ChainReader
    seller: AgoraAgent
    validator: AgoraAgent
    buyer: Buyer
    adversary: Buyer
    sybil: Settlement
    model_chain_id: int
    prices: dict[str, int]
    sent: list[Model]
    """The honest buyer's requests as they left it (what a network observer sees)."""
    stakers: list[str]
    holders: list[str]
    counters: Counters = field(default_factory=Counters)

    @property
    def seller_account(self) -> str:
        return self.seller.keys.eth_address

    @property
    def validator_account(self) -> str:
        return self.validator.keys.eth_address

    def agents(self) -> list[AgoraAgent]:
        return [self.seller, self.validator, self.buyer.probe, self.adversary.probe]


# --- building the world once ---------------------------------------------------------------------------


async def _probe(w: World, name: str, tokens: int) -> Buyer:
    """A buyer probe with a fixed identity (so runs are reproducible), funded, started."""
    probe = Probe(AgentSettings(name=name, seed=f"adversary-properties:{name}", data_dir=w.workdir / name))
    logging.getLogger(name).setLevel(logging.CRITICAL)
    settlement = w.settlement(probe.keys)
    negotiation, payer = NegotiationBuyer(probe), ChannelPayer(probe, settlement)
    compose(probe, negotiation, payer)
    await w.fund(settlement.account, tokens)
    await probe.start()
    w.started.append(probe)
    return Buyer(probe, settlement, negotiation, payer)


async def _stake(settlement: Settlement, amount: int) -> None:
    await settlement.token.approve(settlement.staking.address, amount)
    await settlement.staking.stake(amount)


def _tap(probe: AgoraAgent, log: list[Model]) -> None:
    """Record every request the probe sends (what an observer of its traffic sees)."""
    request = probe.request

    async def tapped(destination: str, message: Model, expect: type[Model], *, wait: float = 10.0) -> Any:
        log.append(message)
        return await request(destination, message, expect, wait=wait)

    probe.request = tapped  # type: ignore[method-assign]


async def build_env(chain: LocalChain, conn: ChainConnection, w: World, loop: asyncio.AbstractEventLoop) -> Env:
    """The seller and validator roles (staked), the buyer, the adversary and its sybil (staked), prices agreed."""
    # Stakers left by other tests on the shared chain (the contracts suite's validators) leave the eligible set,
    # so that committees are made of this test's parties only (undone with the test's snapshot).
    for account in chain.accounts:
        staking = StakingClient(conn.with_account(account))
        active = (await staking.stake_of(account.address)).active
        if active:
            await staking.request_unstake(active)
    assert not await StakingClient(conn).validators(), "an unknown staker would sit on committees"

    # The seller checks for channels near expiry when the test says (CLAIM_DUE), not on a wall-clock timer.
    seller = await w.seller_with_model(seller_role, claim_before_expiry={"watch": False})
    await w.stake(seller, MIN_STAKE)
    validator = await w.role(validator_role, "validator")
    await w.stake(validator, VALIDATOR_STAKE)
    await w.call(validator, PUBLISH_CARD)
    for agent in (seller, validator):
        # Quiet: the adversary's requests are refused by the thousand.
        logging.getLogger(agent.name).setLevel(logging.CRITICAL)
    buyer = await _probe(w, "buyer", 10 * AGT)
    adversary = await _probe(w, "adversary", 10 * AGT + MIN_STAKE)
    await _stake(adversary.settlement, MIN_STAKE)
    sybil = w.settlement(Wallet.from_seed("adversary-properties:sybil"))
    await w.fund(sybil.account, MIN_STAKE)
    await _stake(sybil, MIN_STAKE)
    prices = {BUYER: await buyer.agree(seller.address), ADVERSARY: await adversary.agree(seller.address)}
    model_chain_id = (await buyer.settlement.models.get(CLASSIFIER.id)).chain_id
    sent: list[Model] = []
    _tap(buyer.probe, sent)
    agents = [seller.keys.eth_address, validator.keys.eth_address, buyer.account, adversary.account, sybil.account]
    contracts = [chain.deployment.address(name) for name in chain.deployment.contracts]
    return Env(
        chain=chain,
        loop=loop,
        world=w,
        reader=ChainReader(chain),
        seller=seller,
        validator=validator,
        buyer=buyer,
        adversary=adversary,
        sybil=sybil,
        model_chain_id=model_chain_id,
        prices=prices,
        sent=sent,
        stakers=agents + [a.address for a in chain.accounts],
        holders=agents + [a.address for a in chain.accounts] + contracts,
    )


def run_machine(
    session_chain: LocalChain,
    tmp_path: Path,
    machine: Callable[[Env], RuleBasedStateMachine],
    hypothesis: settings,
) -> Counters:
    """Build the world once, run `machine` under `hypothesis` settings (every example from one chain snapshot),
    print what happened, and give back the counters."""
    chain = session_chain
    snapshot = chain.snapshot()
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    conn = chain.connect()
    rpc_call(chain.rpc_url, "anvil_setBlockTimestampInterval", [1])
    try:
        loop.run_until_complete(conn.keep_alive())
        w = loop.run_until_complete(stack.enter_async_context(world(chain, conn, tmp_path)))
        env = loop.run_until_complete(build_env(chain, conn, w, loop))
        run_state_machine_as_test(lambda: machine(env), settings=hypothesis)
        counters = env.counters
        print(f"\n{counters.examples} examples, {counters.steps} steps: {dict(counters.rules)}")
        print("\n".join(f"  {n} x {name}" for name, n in sorted(counters.outcomes.items())))
        return counters
    finally:
        loop.run_until_complete(stack.aclose())
        loop.run_until_complete(conn.close())
        loop.close()
        rpc_call(chain.rpc_url, "anvil_removeBlockTimestampInterval")
        chain.revert(snapshot)
