"""Hypothesis: an adversary takes arbitrary protocol actions against an honest buyer, seller and validator.

Everyone is a real agent on the real contracts (anvil): the seller and the validator are the roles
(`agents.roles.seller.build`, `agents.roles.validator.build`); the honest buyer is a probe with
NegotiationBuyer + ChannelPayer, as tests/roles/world.py builds buyers; the adversary is such a probe too,
with its own wallet, funds, channels to the seller, stake, and a second staked key (its sybil). Hypothesis
interleaves the adversary's moves (re-sent channel notices, replayed and forged vouchers, another payer's
job ids, unpaid calls, altered or unsigned audits, sham disputes, votes and vote requests, early refunds,
floods, time jumps) with the honest parties' (pay, call, audit, claim, resolve, refund) and checks after
every step what docs/security.md promises:

- the seller is never slashed and its stake never falls (it never attests a wrong result);
- the validator's stake never falls, and every transaction it sends is an attestation of a paid call that
  its payer signed and the seller attested (once per task), or a vote in a committee it was drawn to;
- the seller is paid for every call it served: each served call is backed by its own voucher increment of
  at least the price, signed by the sender of a channel paying the seller, and what it can claim covers
  them all (exactly the honest buyer's calls on the honest buyer's channels);
- the buyer is charged only for calls it got answers to (its vouchers total answered calls x price, plus
  calls paid and about to be made), and after expiry it holds its funds minus exactly that;
- tokens are conserved, and the channel and staking contracts hold exactly what they owe.

Agents are built once per test; each example starts from one chain snapshot, reverted at its end, after
which the agents' chain-bound records are cleared and the accounts' nonces restored (so the nonces the
agents' connections track stay valid): every example starts from the same state. Kept across examples:
the negotiated prices and the seller's catalogue (off chain, or registered before the snapshot).

What the honest side is assumed to do, as the protocol asks: the seller claims every channel within
CLAIM_MARGIN of its expiry (agora does not do this by itself; the economy runner claims in its settle
phase), and no adversary key holds more stake than the honest members of a committee (the documented
limit: a majority of the drawn stake decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import urllib.request
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from uagents import Model
from uagents.dispatch import dispatcher

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.inference import ServedCall, sign_task, task_id
from agents.capabilities.kit import compose
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer, PayeeChannel, PayerChannel
from agents.capabilities.validation import Validation
from agents.roles import seller as seller_role
from agents.roles import validator as validator_role
from agents.roles.base import PUBLISH_CARD
from agents.roles.selling import CLAIM
from agents.settings import AgentSettings
from agents.settlement import Settlement
from agents.state import Repository
from agents.testing.doubles import Probe, forge_envelope, post_envelope
from agents.wallet import Wallet
from marketplace.chain import (
    ChainConnection,
    ContractRevert,
    LocalChain,
    SignedVoucher,
    StakingClient,
    sign_voucher,
    verify_voucher,
)
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain.channels import Channel
from marketplace.chain.node import rpc_call
from marketplace.chain.staking import Ballot
from protocols.commitment import output_commitment, verify_output_commitment
from protocols.disputes import DisputeVoteRequest
from protocols.errors import ErrorCode
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.payment import ChannelOpened, Receipt, Voucher
from protocols.validation import Attestation, ValidationRequest
from tests.roles.world import AGT, CLASSIFIER, MIN_STAKE, Buyer, World, world

pytestmark = [pytest.mark.chain, pytest.mark.slow]

T = TypeVar("T")

BUYER, ADVERSARY = "buyer", "adversary"
CALLS_PER_CHANNEL = 8
"""Calls the honest buyer deposits for in each channel."""
BUYER_TTL = 2 * 3_600
ADVERSARY_TTLS = (1_900, 2 * 3_600)
"""Just above PaymentChannels' 30-minute minimum, and two hours."""
CLAIM_MARGIN = 300
"""The honest seller claims a channel with unclaimed vouchers once it is this close (s) to expiry."""
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
KEEP = ("catalogue/", "negotiation.", "blobs.")
"""Store namespaces that survive between examples (off-chain or registered before the snapshot)."""


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


# --- the state machine ---------------------------------------------------------------------------------


class Adversarial(RuleBasedStateMachine):
    """One honest buyer, seller and validator, one adversary with a sybil, on the real agents and contracts."""

    def __init__(self, env: Env) -> None:
        super().__init__()
        self.env = env
        env.counters.examples += 1
        for agent in env.agents():
            leftover = [k for k, _ in agent.store.scan("") if not k.startswith(KEEP)]
            assert not leftover, f"{agent.name} kept {leftover[:3]} from the previous example"
        self.snapshot = env.chain.snapshot()
        self.channels: dict[int, ChannelModel] = {}
        self.pending: list[tuple[str, int, int]] = []
        """The honest buyer's paid, not yet made calls: (job id, channel, cumulative)."""
        self.calls: list[Call] = []
        self.adversary_credits: dict[str, tuple[int, int]] = {}
        """Jobs the seller took an adversary voucher for: job id → (channel, cumulative)."""
        self.seller_attested: set[bytes] = set()
        self.audit_asked: set[bytes] = set()
        """Tasks for which the validator got a request it must serve: the exact call, signed by its payer,
        after the seller attested it."""
        self.vote_asked: set[int] = set()
        """Disputes for which the validator, drawn to the committee, got a vote request matching the call."""
        self.disputes: dict[int, DisputeModel] = {}
        self.jobs = 0
        view = self._view()
        self.total = sum(view["balances"].values())
        self.stakes0 = view["stakes"]
        self.validator_nonce0 = view["validator_nonce"]
        self.buyer_tokens0 = view["balances"][env.buyer.account]
        self.seller_tokens0 = view["balances"][env.seller_account]

    # --- plumbing -----------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.env.loop.run_until_complete(coro)

    def count(self, name: str) -> None:
        self.env.counters.steps += 1
        self.env.counters.rules[name] += 1

    def outcome(self, name: str) -> None:
        self.env.counters.outcomes[name] += 1

    def now(self) -> int:
        """Timestamp of the latest block (the next transaction's block is one second later)."""
        block = rpc_call(self.env.chain.rpc_url, "eth_getBlockByNumber", ["latest", False])
        return int(block["timestamp"], 16)  # type: ignore[index]

    def jump(self, seconds: int) -> None:
        rpc_call(self.env.chain.rpc_url, "evm_setNextBlockTimestamp", [self.now() + seconds])
        rpc_call(self.env.chain.rpc_url, "evm_mine")

    def ask(self, who: Buyer, to: AgoraAgent, message: Model, expect: type[Model], wait: float = 30.0) -> Model:
        return self.run(who.probe.ask(to.address, message, (expect,), wait=wait))

    def owner_of(self, payer: str) -> Buyer:
        return self.env.buyer if payer == BUYER else self.env.adversary

    def channels_of(self, owner: str) -> list[int]:
        return sorted(c for c, ch in self.channels.items() if ch.owner == owner)

    def _pick(self, items: list[T], pick: int) -> T:
        return items[pick % len(items)]

    def _claim_due(self, horizon: int = 0) -> None:
        """The honest seller's settle duty: claim before any channel with unclaimed vouchers expires."""
        deadline = self.now() + horizon + CLAIM_MARGIN
        book = Repository(self.env.seller.store, "payee.channel", PayeeChannel)
        if any(not r.closed and r.cumulative > r.claimed and r.expiry <= deadline for r in book.values()):
            self._seller_claims()

    def _seller_claims(self) -> None:
        try:
            self.run(self.env.world.call(self.env.seller, CLAIM))
        except RemoteError as err:
            raise AssertionError(f"the honest seller could not claim what its book holds: {err}") from err

    # --- honest parties -------------------------------------------------------------------------------

    def _buyer_channel(self) -> int:
        """The honest buyer's channel with room and time left, opened (and announced) when there is none."""
        for channel_id in reversed(self.channels_of(BUYER)):
            ch = self.channels[channel_id]
            if ch.paid_calls < CALLS_PER_CHANNEL and ch.expiry > self.now() + 2 * CLAIM_MARGIN:
                return channel_id
        env, price = self.env, self.env.prices[BUYER]
        deposit = CALLS_PER_CHANNEL * price
        channel_id = self.run(
            env.buyer.payer.open(env.seller.address, env.seller_account, deposit, BUYER_TTL, env.model_chain_id)
        )
        record = env.buyer.payer.channels.get(str(channel_id))
        assert record is not None
        self.channels[channel_id] = ChannelModel(BUYER, deposit, record.expiry, record.nonce)
        return channel_id

    def _buyer_pays(self) -> None:
        channel_id = self._buyer_channel()
        self.jobs += 1
        job_id = f"buyer-{self.jobs}"
        receipt = self.run(self.env.buyer.payer.pay(channel_id, self.env.prices[BUYER], job_id))
        self.channels[channel_id].paid_calls += 1
        self.pending.append((job_id, channel_id, receipt.cumulative_amount))

    def _record_call(self, payer: str, job_id: str, rows: list[list[float]], result: InferenceResult) -> Call:
        """An answered call, with the audit request its payer would sign (bound to the payment the model knows)."""
        env = self.env
        if payer == BUYER:
            _, channel_id, cumulative = next(p for p in self.pending if p[0] == job_id)
            self.pending = [p for p in self.pending if p[0] != job_id]
        else:
            channel_id, cumulative = self.adversary_credits.get(job_id, (0, 0))
        task = task_id(env.model_chain_id, result.output_commitment, channel_id, cumulative)
        request = ValidationRequest(
            job_id=job_id, model_id=CLASSIFIER.id, inputs=rows, outputs=result.outputs,
            claimed_commitment=result.output_commitment, seller=env.seller_account, channel_id=channel_id,
            cumulative_amount=cumulative, signature=sign_task(self.owner_of(payer).settlement.conn.account, task),
        )  # fmt: skip
        call = Call(
            payer, job_id, rows, result.outputs, result.output_commitment, channel_id, cumulative, task, request
        )
        self.calls.append(call)
        return call

    @initialize(re_execute=st.booleans())
    def buyer_makes_a_first_call(self, re_execute: bool) -> None:
        """The honest buyer opens a channel, pays, makes a call and has the seller attest it, and maybe the
        validator re-execute it (every example starts with an honest voucher, call and attestation to attack)."""
        self.count("buyer_makes_a_first_call")
        self._buyer_pays()
        self.buyer_calls(0, 0)
        self.buyer_audits(0, re_execute=re_execute)

    @initialize(ttl=st.sampled_from(ADVERSARY_TTLS), calls=st.integers(1, 6), attest=st.booleans())
    def adversary_makes_a_first_call(self, ttl: int, calls: int, attest: bool) -> None:
        """The adversary opens and announces its own channel, pays a call and makes it, and may have the seller
        stand by it on chain (so that it can dispute its own call)."""
        self.count("adversary_makes_a_first_call")
        self.adversary_opens_channel(ttl, calls, announce=True)
        self.adversary_pays(0, then_call=True, rows=0)
        if attest and any(c.payer == ADVERSARY for c in self.calls):
            self.adversary_asks_seller_to_attest(0, "own")

    @rule()
    def buyer_pays(self) -> None:
        """The honest buyer pays its next call (it makes the call in a later step)."""
        self.count("buyer_pays")
        self._buyer_pays()

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 7), rows=st.integers(0, len(INPUTS) - 1))
    def buyer_calls(self, pick: int, rows: int) -> None:
        """The honest buyer makes a call it paid for: it must be answered, with a commitment to the outputs."""
        self.count("buyer_calls")
        job_id, _, _ = self._pick(self.pending, pick)
        request = InferenceRequest(job_id=job_id, model_id=CLASSIFIER.id, inputs=INPUTS[rows], price=0)
        result = self.ask(self.env.buyer, self.env.seller, request, InferenceResult)
        assert isinstance(result, InferenceResult), f"the buyer's paid call {job_id} was refused: {result}"
        assert verify_output_commitment(CLASSIFIER.id, INPUTS[rows], result.outputs, result.output_commitment)
        self._record_call(BUYER, job_id, INPUTS[rows], result)

    @precondition(lambda self: any(c.payer == BUYER for c in self.calls))
    @rule(pick=st.integers(0, 7), re_execute=st.booleans())
    def buyer_audits(self, pick: int, re_execute: bool) -> None:
        """The honest buyer has the seller stand by a call on chain, then (now, or in a later audit) the
        validator re-execute it."""
        self.count("buyer_audits")
        call = self._pick([c for c in self.calls if c.payer == BUYER], pick)
        attested = self.ask(self.env.buyer, self.env.seller, call.request, Attestation)
        assert isinstance(attested, Attestation), f"the seller would not stand by its call: {attested}"
        self.seller_attested.add(call.task)
        if not re_execute:
            return
        self.audit_asked.add(call.task)
        verdict = self.ask(self.env.buyer, self.env.validator, call.request, Attestation)
        assert isinstance(verdict, Attestation), f"the validator refused an honest audit: {verdict}"
        assert verdict.valid
        assert verdict.recomputed_commitment == call.commitment

    @rule()
    def seller_claims(self) -> None:
        self.count("seller_claims")
        self._seller_claims()

    @precondition(lambda self: any(not d.resolved for d in self.disputes.values()))
    @rule()
    def disputes_resolve(self) -> None:
        """Anyone (here the honest buyer) resolves the disputes whose voting window closed."""
        self.count("disputes_resolve")
        staking = self.env.buyer.settlement.staking
        for dispute_id, dispute in self.disputes.items():
            if not dispute.resolved and self.now() + 1 >= dispute.deadline:
                resolved = self.run(staking.resolve(dispute_id))
                verdict = "upheld" if resolved.upheld else "overturned"
                self.outcome(f"dispute {verdict if resolved.decided else 'undecided'}")
                dispute.resolved = True

    @rule()
    def buyer_refunds_expired(self) -> None:
        self.count("buyer_refunds_expired")
        self.run(self.env.buyer.payer.refund_expired())

    # --- the adversary: channels and vouchers -------------------------------------------------------

    @precondition(lambda self: len(self.channels_of(ADVERSARY)) < 3)
    @rule(ttl=st.sampled_from(ADVERSARY_TTLS), calls=st.integers(1, 6), announce=st.booleans())
    def adversary_opens_channel(self, ttl: int, calls: int, announce: bool) -> None:
        """The adversary deposits for a few calls in its own channel to the seller, and may announce it."""
        self.count("adversary_opens_channel")
        env = self.env
        s = env.adversary.settlement
        deposit = calls * env.prices[ADVERSARY]

        async def open_() -> Channel:
            await s.token.approve(s.channels.address, deposit)
            opened = await s.channels.open_channel(env.seller_account, deposit, self.now() + ttl, env.model_chain_id)
            return await s.channels.get_channel(opened.channel_id)

        channel = self.run(open_())
        self.channels[channel.channel_id] = ChannelModel(ADVERSARY, deposit, channel.expiry, channel.nonce)
        if announce:
            self._announce(ADVERSARY, "true", inflate=False)

    @rule(
        whose=st.sampled_from([BUYER, ADVERSARY, "unknown"]),
        payer=st.sampled_from(["true", ADVERSARY, BUYER]),
        inflate=st.booleans(),
    )
    def resend_channel_opened(self, whose: str, payer: str, inflate: bool) -> None:
        """(Re-)send a ChannelOpened for the buyer's channel, its own or one that does not exist, with the
        payer field true or lying, and the deposit and expiry as opened or inflated."""
        self.count("resend_channel_opened")
        self._announce(whose, payer, inflate)

    def _announce(self, whose: str, payer: str, inflate: bool) -> None:
        env = self.env
        ids = self.channels_of(whose) if whose != "unknown" else []
        channel_id = ids[-1] if ids else max(self.channels, default=0) + 7
        ch = self.channels.get(channel_id, ChannelModel(ADVERSARY, 1, self.now() + 3_600, 0))
        true_payer = self.owner_of(ch.owner).account
        accounts = {"true": true_payer, ADVERSARY: env.adversary.account, BUYER: env.buyer.account}
        notice = ChannelOpened(
            channel_id=str(channel_id),
            chain_id=env.chain.deployment.chain_id,
            contract=env.chain.deployment.address("PaymentChannels"),
            payer=accounts[payer],
            payee=env.seller_account,
            deposit=ch.deposit * (100 if inflate else 1),
            expiry=ch.expiry + (10**6 if inflate else 0),
        )
        self.ask(env.adversary, env.seller, notice, Receipt)

    def _honest_vouchers(self) -> list[Voucher]:
        return [m for m in self.env.sent if isinstance(m, Voucher) and int(m.channel_id) in self.channels]

    @precondition(lambda self: self._honest_vouchers())
    @rule(
        pick=st.integers(0, 15),
        job=st.sampled_from(["same", "fresh", "buyer-used"]),
        then_call=st.booleans(),
    )
    def replay_honest_voucher(self, pick: int, job: str, then_call: bool) -> None:
        """Send an honest voucher the adversary saw as its own new message (same fields, or another job id),
        then maybe ask for the call it would pay."""
        self.count("replay_honest_voucher")
        voucher = self._pick(self._honest_vouchers(), pick)
        self.jobs += 1
        job_ids = {"same": voucher.job_id, "fresh": f"adversary-{self.jobs}", "buyer-used": self._buyer_job(pick)}
        copy = voucher.copy(update={"job_id": job_ids[job]})
        reply = self.ask(self.env.adversary, self.env.seller, copy, Receipt)
        self.outcome(f"replayed voucher {'accepted' if isinstance(reply, Receipt) else 'refused'}")
        if isinstance(reply, Receipt):
            self.adversary_credits[copy.job_id] = (int(copy.channel_id), copy.cumulative_amount)
        if then_call:
            self._adversary_call(copy.job_id, 0)

    @precondition(lambda self: self._honest_vouchers())
    @rule(pick=st.integers(0, 15))
    def replay_honest_voucher_envelope(self, pick: int) -> None:
        """Post an honest voucher's signed envelope to the seller twice: a duplicate, then a replay.

        The agents of this test talk in-process, where no envelope exists; the copy a network observer
        would capture is the one the buyer's transport seals, so it is sealed with the buyer's identity.
        """
        self.count("replay_honest_voucher_envelope")
        env = self.env
        voucher = self._pick(self._honest_vouchers(), pick)
        envelope = forge_envelope(env.buyer.probe.keys.identity, env.seller.address, voucher)

        async def deliver() -> tuple[tuple[int, dict[str, Any]], tuple[int, dict[str, Any]]]:
            buyer = env.buyer.address
            await dispatcher.register_pending_response(buyer, env.seller.address, envelope.session, None)
            first = await post_envelope(env.seller.endpoint, envelope)
            if first[0] == 200:  # the handler answers the buyer in-process: wait for it
                await dispatcher.wait_for_response(buyer, env.seller.address, envelope.session, 10)
            else:
                dispatcher.cancel_pending_response(buyer, env.seller.address, envelope.session)
            return first, await post_envelope(env.seller.endpoint, envelope)

        _, replayed = self.run(deliver())
        assert (replayed[0], replayed[1].get("code")) == (409, ErrorCode.REPLAYED), replayed

    def _buyer_job(self, pick: int) -> str:
        jobs = [c.job_id for c in self.calls if c.payer == BUYER] + [p[0] for p in self.pending]
        return self._pick(jobs, pick) if jobs else "buyer-1"

    def _adversary_voucher(self, channel_id: int, defect: str, job_id: str) -> Voucher:
        """A voucher raising one of the adversary's channels by its price, or with one defect: less than the
        price, beyond the deposit, another nonce, or signed by the sybil (on any channel: a forgery)."""
        env = self.env
        ch = self.channels[channel_id]
        if ch.owner == BUYER:  # a forgery on the buyer's channel: above everything the buyer signed
            record = env.buyer.payer.channels.get(str(channel_id))
            base = record.cumulative if record is not None else 0
        else:
            base = ch.accepted
        cumulative = base + env.prices[ADVERSARY]
        if defect == "short":
            cumulative -= 1
        elif defect == "over-deposit":
            cumulative = ch.deposit + 1
        signer = (env.sybil if defect == "sybil-signed" else env.adversary.settlement).conn.account
        nonce = ch.nonce + (defect == "stale-nonce")
        signed = sign_voucher(
            signer, SignedAmount(channel_id, nonce, cumulative), env.adversary.settlement.channels.domain
        )
        if ch.owner == ADVERSARY and defect not in ("sybil-signed", "stale-nonce"):
            ch.signed = max(ch.signed, cumulative)  # what the channel's sender promised: PaymentChannels pays it
        return Voucher(
            channel_id=str(channel_id),
            cumulative_amount=cumulative,
            nonce=nonce,
            signature="0x" + signed.signature.hex(),
            job_id=job_id,
        )

    def _adversary_pays(self, voucher: Voucher, what: str, then_call: bool, rows: int) -> None:
        reply = self.ask(self.env.adversary, self.env.seller, voucher, Receipt)
        self.outcome(f"adversary voucher ({what}) {'accepted' if isinstance(reply, Receipt) else 'refused'}")
        if isinstance(reply, Receipt):
            self.adversary_credits.setdefault(voucher.job_id, (int(voucher.channel_id), voucher.cumulative_amount))
            ch = self.channels[int(voucher.channel_id)]
            ch.accepted = max(ch.accepted, reply.cumulative_amount)
        if then_call:
            self._adversary_call(voucher.job_id, rows)

    def _fresh_job(self) -> str:
        self.jobs += 1
        return f"adversary-{self.jobs}"

    @precondition(lambda self: self.channels_of(ADVERSARY))
    @rule(pick=st.integers(0, 7), then_call=st.booleans(), rows=st.integers(0, len(INPUTS)))
    def adversary_pays(self, pick: int, then_call: bool, rows: int) -> None:
        """A valid voucher on its own channel for a fresh call; then maybe the call (or malformed inputs)."""
        self.count("adversary_pays")
        channel_id = self._pick(self.channels_of(ADVERSARY), pick)
        self._adversary_pays(self._adversary_voucher(channel_id, "none", self._fresh_job()), "valid", then_call, rows)

    @precondition(lambda self: self.channels_of(ADVERSARY))
    @rule(
        pick=st.integers(0, 7),
        defect=st.sampled_from(["short", "over-deposit", "stale-nonce", "own-used-job"]),
        then_call=st.booleans(),
    )
    def adversary_pays_badly(self, pick: int, defect: str, then_call: bool) -> None:
        """A voucher on its own channel with one defect: less than the price, beyond the deposit, another
        nonce, or for a job id it already paid; then maybe the call."""
        self.count("adversary_pays_badly")
        channel_id = self._pick(self.channels_of(ADVERSARY), pick)
        job_id = self._fresh_job()
        if defect == "own-used-job" and self.adversary_credits:
            job_id = self._pick(sorted(self.adversary_credits), pick)
        self._adversary_pays(self._adversary_voucher(channel_id, defect, job_id), defect, then_call, 0)

    @rule(pick=st.integers(0, 7), whose=st.sampled_from([BUYER, ADVERSARY]), then_call=st.booleans())
    def adversary_forges_voucher(self, pick: int, whose: str, then_call: bool) -> None:
        """A voucher signed by its sybil, on the buyer's channel (above all the buyer signed) or on its own."""
        self.count("adversary_forges_voucher")
        channels = self.channels_of(whose)
        if channels:
            voucher = self._adversary_voucher(self._pick(channels, pick), "sybil-signed", self._fresh_job())
            self._adversary_pays(voucher, f"forged on {whose}'s channel", then_call, 0)

    @precondition(lambda self: self.channels_of(ADVERSARY))
    @rule(pick=st.integers(0, 7), then_call=st.booleans())
    def adversary_reuses_buyer_job_id(self, pick: int, then_call: bool) -> None:
        """A valid voucher on its own channel for a job id the buyer used (paid or served): its own call,
        which must neither use nor block the buyer's."""
        self.count("adversary_reuses_buyer_job_id")
        channel_id = self._pick(self.channels_of(ADVERSARY), pick)
        voucher = self._adversary_voucher(channel_id, "none", self._buyer_job(pick))
        self._adversary_pays(voucher, "buyer's job id", then_call, 0)

    # --- the adversary: calls --------------------------------------------------------------------------

    def _adversary_call(self, job_id: str, rows: int) -> None:
        inputs = INPUTS[rows] if rows < len(INPUTS) else MALFORMED
        request = InferenceRequest(job_id=job_id, model_id=CLASSIFIER.id, inputs=inputs, price=0)
        result = self.ask(self.env.adversary, self.env.seller, request, InferenceResult)
        paid = "paid" if job_id in self.adversary_credits else "unpaid"
        self.outcome(f"adversary call ({paid}) {'served' if isinstance(result, InferenceResult) else 'refused'}")
        if isinstance(result, InferenceResult):
            self._record_call(ADVERSARY, job_id, inputs, result)

    @rule(
        job=st.sampled_from(["own-paid", "unpaid", "buyer-pending", "buyer-answered"]),
        pick=st.integers(0, 7),
        rows=st.integers(0, len(INPUTS)),
    )
    def adversary_calls(self, job: str, pick: int, rows: int) -> None:
        """An InferenceRequest for a job it paid, one it did not, or one the buyer paid (made or not yet)."""
        self.count("adversary_calls")
        served = {c.job_id for c in self.calls if c.payer == ADVERSARY}
        own = [j for j in self.adversary_credits if j not in served]
        buyer_pending = [p[0] for p in self.pending]
        buyer_answered = [c.job_id for c in self.calls if c.payer == BUYER]
        self.jobs += 1
        choices = {
            "own-paid": own,
            "unpaid": [f"adversary-{self.jobs}"],
            "buyer-pending": buyer_pending,
            "buyer-answered": buyer_answered,
        }[job]
        if choices:
            self._adversary_call(self._pick(choices, pick), rows)

    @precondition(lambda self: self.pending)
    @rule(pick=st.integers(0, 7), rows=st.integers(0, len(INPUTS) - 1))
    def adversary_calls_buyers_paid_job(self, pick: int, rows: int) -> None:
        """An InferenceRequest for a job the buyer paid and has not made yet: the buyer's credit is the buyer's."""
        self.count("adversary_calls_buyers_paid_job")
        self._adversary_call(self._pick(self.pending, pick)[0], rows)

    # --- the adversary: audits -------------------------------------------------------------------------

    def _audit_request(self, call: Call, variant: str) -> tuple[ValidationRequest, bool]:
        """A ValidationRequest built from a call the adversary saw, and whether the validator must serve it."""
        env, honest = self.env, call.request
        mine = env.adversary.settlement.conn.account
        altered_outputs = [row[::-1] for row in call.outputs]
        if variant == "replay":
            request = honest
        elif variant == "inputs":
            request = honest.copy(update={"inputs": [[x + 0.5 for x in row] for row in call.rows]})
        elif variant == "outputs":
            request = honest.copy(update={"outputs": altered_outputs})
        elif variant == "recommit":
            commitment = output_commitment(CLASSIFIER.id, call.rows, altered_outputs)
            task = task_id(env.model_chain_id, commitment, call.channel_id, call.cumulative)
            update = {"outputs": altered_outputs, "claimed_commitment": commitment, "signature": sign_task(mine, task)}
            request = honest.copy(update=update)
        elif variant == "unsigned":
            request = honest.copy(update={"signature": sign_task(mine, call.task)})
        else:  # "payment": the same call, claimed paid by another voucher of the channel
            cumulative = call.cumulative + env.prices[call.payer]
            task = task_id(env.model_chain_id, call.commitment, call.channel_id, cumulative)
            request = honest.copy(update={"cumulative_amount": cumulative, "signature": sign_task(mine, task)})
        return request, self._due(request)

    def _task_of(self, request: ValidationRequest) -> bytes:
        return task_id(
            self.env.model_chain_id, request.claimed_commitment, request.channel_id, request.cumulative_amount
        )

    def _due(self, request: ValidationRequest) -> bool:
        """Whether the validator must serve an audit (docs/security.md): its outputs match its commitment, its
        channel pays the seller, the channel's sender signed its task id, and the seller attested that task."""
        env = self.env
        ch = self.channels.get(request.channel_id)
        if ch is None or request.seller != env.seller_account or not 0 < request.cumulative_amount <= ch.deposit:
            return False
        if not verify_output_commitment(request.model_id, request.inputs, request.outputs, request.claimed_commitment):
            return False
        task = self._task_of(request)
        signed = encode_defunct(primitive=task)
        signer = Account.recover_message(signed, signature=bytes.fromhex(request.signature.removeprefix("0x")))
        return signer == self.owner_of(ch.owner).account and task in self.seller_attested

    def _audit_targets(self, pick: int) -> Call:
        """A call to build an audit request from: one the seller attested and the validator did not yet (the
        requests that would make the validator work) when there is one and `pick` is even, else any call."""
        fresh = [c for c in self.calls if c.task in self.seller_attested - self._validator_attested()]
        return self._pick(fresh if fresh and pick % 2 == 0 else self.calls, pick // 2)

    @precondition(lambda self: self.calls)
    @rule(pick=st.integers(0, 15), variant=st.sampled_from(AUDIT_VARIANTS))
    def adversary_asks_validator(self, pick: int, variant: str) -> None:
        """A ValidationRequest from a call it saw, replayed, altered, or signed by itself, to the validator."""
        self.count("adversary_asks_validator")
        call = self._audit_targets(pick)
        request, must_serve = self._audit_request(call, variant)
        if must_serve:
            self.audit_asked.add(self._task_of(request))
        reply = self.ask(self.env.adversary, self.env.validator, request, Attestation)
        self.outcome(f"audit request ({variant}, {'due' if must_serve else 'undue'}) {type(reply).__name__}")
        self._validator_attested_only_due()

    @precondition(lambda self: self.calls)
    @rule(pick=st.integers(0, 15), then_replay=st.booleans())
    def adversary_probes_validator(self, pick: int, then_replay: bool) -> None:
        """Every altered or unsigned ValidationRequest about one call, one after the other, then maybe the
        request as the payer signed it."""
        self.count("adversary_probes_validator")
        call = self._audit_targets(pick)
        for variant in [v for v in AUDIT_VARIANTS if v != "replay"] + ["replay"] * then_replay:
            request, must_serve = self._audit_request(call, variant)
            if must_serve:
                self.audit_asked.add(self._task_of(request))
            reply = self.ask(self.env.adversary, self.env.validator, request, Attestation)
            self.outcome(f"audit request ({variant}, {'due' if must_serve else 'undue'}) {type(reply).__name__}")
            self._validator_attested_only_due()  # now, before a later request of this step makes the task due

    @precondition(lambda self: self.calls)
    @rule(
        pick=st.integers(0, 15),
        order=st.permutations(AUDIT_VARIANTS),
        kinds=st.integers(2, len(AUDIT_VARIANTS)),
        copies=st.integers(1, 3),
    )
    def adversary_floods_validator(self, pick: int, order: list[str], kinds: int, copies: int) -> None:
        """Several kinds of ValidationRequest about one call, each sent `copies` times, all at once."""
        self.count("adversary_floods_validator")
        call = self._audit_targets(pick)
        requests = []
        for variant in order[:kinds]:
            request, must_serve = self._audit_request(call, variant)
            if must_serve:
                self.audit_asked.add(self._task_of(request))
            requests += [(variant, must_serve, request)] * copies
        ask, validator = self.env.adversary.probe.ask, self.env.validator.address

        async def flood() -> list[Model]:
            return await asyncio.gather(*(ask(validator, r, (Attestation,), wait=60) for _, _, r in requests))

        for (variant, must_serve, _), reply in zip(requests, self.run(flood()), strict=True):
            self.outcome(f"audit request ({variant}, {'due' if must_serve else 'undue'}) {type(reply).__name__}")

    @precondition(lambda self: self.calls)
    @rule(pick=st.integers(0, 15), variant=st.sampled_from(["own", "buyer", "other-payment"]))
    def adversary_asks_seller_to_attest(self, pick: int, variant: str) -> None:
        """Ask the seller to stand by a call on chain: its own, the buyer's, or its own with another payment."""
        self.count("adversary_asks_seller_to_attest")
        mine = [c for c in self.calls if c.payer == ADVERSARY]
        theirs = [c for c in self.calls if c.payer == BUYER]
        call = self._pick((theirs if variant == "buyer" else mine) or self.calls, pick)
        request = call.request if variant != "other-payment" else self._audit_request(call, "payment")[0]
        reply = self.ask(self.env.adversary, self.env.seller, request, Attestation)
        if isinstance(reply, Attestation):
            self.seller_attested.add(self._task_of(request))

    # --- the adversary: disputes -------------------------------------------------------------------------

    def _validator_attested_only_due(self) -> None:
        assert self._validator_attested() <= self.audit_asked, "the validator attested a call it should have refused"

    def _validator_attested(self) -> set[bytes]:
        """The tasks the validator attested, from its own records."""
        records = Repository(self.env.validator.store, "validator.validation", Validation)
        return {bytes.fromhex(task) for task, _ in records.items()}

    def _disputable(self, accused: str | None = None) -> list[tuple[Call, str]]:
        """(call, accused) pairs: calls the seller attested, and calls the validator attested."""
        attested = self._validator_attested()
        found = [(c, "seller") for c in self.calls if c.task in self.seller_attested]
        found += [(c, "validator") for c in self.calls if c.task in attested]
        return [f for f in found if f[1] == accused] or found

    @precondition(lambda self: self._disputable())
    @rule(
        pick=st.integers(0, 15),
        accused=st.sampled_from(["seller", "seller", "validator"]),
        challenger=st.sampled_from([ADVERSARY, "sybil"]),
        draw=st.sampled_from([True, True, True, False]),
        then=st.sampled_from(
            ["vote-and-ask-both", "ask-validator", "vote-and-ask-both", "vote", "ask-seller", "nothing"]
        ),
    )
    def adversary_disputes(self, pick: int, accused: str, challenger: str, draw: bool, then: str) -> None:
        """Attest a wrong result for a task the seller (or the validator) attested, and dispute it on chain;
        the committee, if drawn, comes from the eligible stakers other than the two parties. Then, at once,
        maybe vote as the other key and ask the seller and/or the validator for their votes."""
        self.count("adversary_disputes")
        dispute_id = self._dispute(pick, accused, challenger, draw)
        if dispute_id is None:
            return
        voter = "sybil" if challenger == ADVERSARY else ADVERSARY
        pick = sorted(self.disputes).index(dispute_id)
        if then in ("vote", "vote-and-ask-both"):
            self.adversary_votes(pick, voter, draw_first=True)
        if then in ("ask-validator", "vote-and-ask-both"):
            self.adversary_requests_votes(pick, "validator", "none")
        if then in ("ask-seller", "vote-and-ask-both"):
            self.adversary_requests_votes(pick, "seller", "none")

    def _dispute(self, pick: int, accused_role: str, challenger: str, draw: bool) -> int | None:
        env = self.env
        call, accused_role = self._pick(self._disputable(accused_role), pick)
        accused = env.seller_account if accused_role == "seller" else env.validator_account
        settlement = env.adversary.settlement if challenger == ADVERSARY else env.sybil
        staking = settlement.staking

        async def dispute() -> tuple[int, int, set[str], tuple[str, ...] | None] | None:
            result = await staking.attestation_of(call.task, settlement.account)
            try:
                if result == bytes(32):
                    result = WRONG_RESULTS[challenger]
                    await staking.attest(call.task, result)
                eligible = set(await staking.validators())
                opened = await staking.open_dispute(call.task, accused, result)
            except ContractRevert:
                return None  # not staked (any more), or the attestation window closed: nothing happened
            committee = await staking.draw_committee(opened.dispute_id) if draw else None
            members = committee.members if committee is not None else None
            return opened.dispute_id, opened.deadline, eligible, members

        opened = self.run(dispute())
        if opened is None:
            return None
        dispute_id, deadline, eligible, members = opened
        if members is not None:
            assert set(members) <= eligible - {accused, settlement.account}, (members, eligible)
        self.disputes[dispute_id] = DisputeModel(call, accused, settlement.account, deadline)
        return dispute_id

    @precondition(lambda self: self.disputes)
    @rule(pick=st.integers(0, 7), voter=st.sampled_from([ADVERSARY, "sybil"]), draw_first=st.booleans())
    def adversary_votes(self, pick: int, voter: str, draw_first: bool) -> None:
        """Vote against the accused as itself or its sybil: only a drawn member's vote may count."""
        self.count("adversary_votes")
        dispute_id = self._pick(sorted(self.disputes), pick)
        staking = (self.env.adversary.settlement if voter == ADVERSARY else self.env.sybil).staking

        async def vote() -> tuple[bool, bool]:
            if draw_first:
                with contextlib.suppress(ContractRevert):
                    await staking.draw_committee(dispute_id)
            member = (await staking.committee_of(dispute_id)).includes(staking.conn.address)
            try:
                await staking.vote(dispute_id, WRONG_RESULTS[voter])
            except ContractRevert:
                return member, False
            return member, True

        member, voted = self.run(vote())
        self.outcome(f"adversary vote ({'drawn' if member else 'not drawn'}) {'counted' if voted else 'refused'}")
        assert member or not voted, f"{voter} voted in dispute {dispute_id} without being drawn"

    @precondition(lambda self: self.disputes)
    @rule(
        pick=st.integers(0, 7),
        to=st.sampled_from(["seller", "validator"]),
        altered=st.sampled_from(["none", "inputs", "outputs", "payment"]),
    )
    def adversary_requests_votes(self, pick: int, to: str, altered: str) -> None:
        """A DisputeVoteRequest to the seller or the validator, about the disputed call or an altered one."""
        self.count("adversary_requests_votes")
        env = self.env
        dispute_id = self._pick(sorted(self.disputes), pick)
        dispute = self.disputes[dispute_id]
        call = dispute.call
        request = DisputeVoteRequest(
            dispute_id=dispute_id, job_id=call.job_id, model_id=CLASSIFIER.id, inputs=call.rows,
            outputs=call.outputs, channel_id=call.channel_id, cumulative_amount=call.cumulative,
        )  # fmt: skip
        if altered == "inputs":
            request = request.copy(update={"inputs": [[x + 0.5 for x in row] for row in call.rows]})
        elif altered == "outputs":
            request = request.copy(update={"outputs": [row[::-1] for row in call.outputs]})
        elif altered == "payment":
            request = request.copy(update={"cumulative_amount": call.cumulative + 1})
        target = env.seller if to == "seller" else env.validator
        if to == "validator" and altered == "none" and not dispute.resolved:
            committee = self.run(env.adversary.settlement.staking.committee_of(dispute_id))
            if committee.includes(env.validator_account):
                self.vote_asked.add(dispute_id)
        reply = self.ask(env.adversary, target, request, Attestation)
        self.outcome(f"vote request to {to} ({altered}) {type(reply).__name__}")

    # --- the adversary: refunds and time -------------------------------------------------------------

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(0, 7), whose=st.sampled_from([ADVERSARY, BUYER]))
    def adversary_refunds(self, pick: int, whose: str) -> None:
        """Refund its own channel (or the buyer's), whether or not it expired: only after expiry may it close."""
        self.count("adversary_refunds")
        self._refund(self._pick(self.channels_of(whose) or sorted(self.channels), pick))

    def _refund(self, channel_id: int) -> None:
        block_time = self.now() + 1
        expired = "expired" if block_time >= self.channels[channel_id].expiry else "early"
        try:
            self.run(self.env.adversary.settlement.channels.refund(channel_id))
        except ContractRevert:
            self.outcome(f"refund ({expired}) refused")
            return
        self.outcome(f"refund ({expired}) done")
        assert block_time >= self.channels[channel_id].expiry, f"channel {channel_id} refunded before its expiry"

    @rule(seconds=st.sampled_from(TIME_JUMPS))
    def time_passes(self, seconds: int) -> None:
        """Chain time moves on (the honest seller claims what would expire first)."""
        self.count("time_passes")
        self._claim_due(horizon=seconds)
        self.jump(seconds)

    # --- invariants ---------------------------------------------------------------------------------------

    def _view(self) -> dict[str, Any]:
        env, reader = self.env, self.env.reader
        channel_ids = sorted(self.channels)
        tasks = sorted(self.seller_attested)
        dispute_ids = sorted(self.disputes)
        requests = [reader.call("AgoraToken", "balanceOf", h) for h in env.holders]
        requests += [reader.call("ValidatorStaking", "stakeOf", s) for s in env.stakers]
        requests += [reader.call("PaymentChannels", "getChannel", c) for c in channel_ids]
        requests += [reader.call("ValidatorStaking", "attestationInfo", t, env.seller_account) for t in tasks]
        requests += [reader.call("ValidatorStaking", "committeeOf", d) for d in dispute_ids]
        requests.append(("eth_getTransactionCount", [env.validator_account, "latest"], []))
        results = reader.batch(requests)
        cut = iter(results)
        balances = {h: next(cut)[0] for h in env.holders}
        stakes = {s: sum(next(cut)[0][:2]) for s in env.stakers}  # active + unbonding: all of it slashable
        # getChannel: (sender, deposit, recipient, model id, claimed, expiry, nonce, closed)
        onchain = {c: next(cut)[0] for c in channel_ids}
        slashed = {t: next(cut)[0][2] for t in tasks}
        committees = {d: next(cut) for d in dispute_ids}
        return {
            "balances": balances,
            "stakes": stakes,
            "channels": onchain,
            "seller_slashed": slashed,
            "committees": committees,
            "validator_nonce": int(next(cut), 16),
        }

    def _claimable(self, channel_id: int, onchain: tuple[Any, ...], book: dict[str, PayeeChannel]) -> int:
        """What the seller gets from a channel: its best voucher (if validly signed and the channel still
        open), else what it already claimed."""
        sender, _, _, _, claimed, _, nonce, closed = onchain
        record = book.get(str(channel_id))
        if closed or record is None or record.signature is None:
            return int(claimed)
        signed = SignedVoucher(
            SignedAmount(channel_id, nonce, record.cumulative), bytes.fromhex(record.signature.removeprefix("0x"))
        )
        valid = verify_voucher(signed, sender, self.env.adversary.settlement.channels.domain)
        return max(int(claimed), record.cumulative if valid else 0)

    @invariant()
    def promises_hold(self) -> None:
        """The honest seller first claims what is about to expire (its duty between steps); then every promise."""
        self._claim_due()
        env = self.env
        view = self._view()
        balances, stakes, onchain = view["balances"], view["stakes"], view["channels"]
        prices = env.prices

        # Tokens: conserved, and each contract holds exactly what it owes.
        assert sum(balances.values()) == self.total, "tokens were minted or burnt"
        owed = sum(ch[1] - ch[4] for ch in onchain.values() if not ch[7])
        assert balances[env.chain.deployment.address("PaymentChannels")] == owed, "channels hold other than owed"
        assert balances[env.chain.deployment.address("ValidatorStaking")] == sum(stakes.values())

        # The seller: never slashed, stake never below its start.
        assert stakes[env.seller_account] >= self.stakes0[env.seller_account], "the honest seller lost stake"
        assert not any(view["seller_slashed"].values()), "an attestation of the honest seller was slashed"

        # The validator: stake never below its start; gas only for what it must do.
        assert stakes[env.validator_account] >= self.stakes0[env.validator_account], "the honest validator lost stake"
        self._validator_attested_only_due()
        attested = self._validator_attested()
        voted = set()
        for dispute_id, (members, _, ballots) in view["committees"].items():
            seats = dict(zip((m.lower() for m in members), ballots, strict=True))
            if seats.get(env.validator_account.lower(), Ballot.ABSENT) != Ballot.ABSENT:
                voted.add(dispute_id)
        assert voted <= self.vote_asked, "the validator voted in a dispute it was not asked about properly"
        transactions = view["validator_nonce"] - self.validator_nonce0
        assert transactions == len(attested) + len(voted), (
            f"the validator sent {transactions} transactions for {len(attested)} attestations and {len(voted)} votes"
        )

        # The seller is paid for every call it served.
        book = dict(Repository(env.seller.store, "payee.channel", PayeeChannel).items())
        payer_book = dict(Repository(env.buyer.probe.store, "payer.channel", PayerChannel).items())
        served = Repository(env.seller.store, "inference.served", ServedCall).values()
        agents = {env.buyer.address: BUYER, env.adversary.address: ADVERSARY}
        assert Counter(agents.get(s.buyer, s.buyer) for s in served) == Counter(c.payer for c in self.calls), (
            "the seller's served calls are not the calls answered"
        )
        by_channel: dict[int, list[int]] = {}
        for call in served:
            ch = self.channels.get(call.channel_id)
            assert ch is not None, f"a call was credited to channel {call.channel_id}, which does not pay the seller"
            assert agents.get(call.buyer) == ch.owner, (
                f"a call to {agents.get(call.buyer, call.buyer)} was credited to {ch.owner}'s channel {call.channel_id}"
            )
            by_channel.setdefault(call.channel_id, []).append(call.cumulative)
        for channel_id, cumulatives in by_channel.items():
            ch = self.channels[channel_id]
            signed = payer_book[str(channel_id)].cumulative if ch.owner == BUYER else ch.signed
            steps = sorted(cumulatives)
            gaps = [b - a for a, b in zip([0, *steps], steps, strict=False)]
            assert min(gaps) >= prices[ch.owner], f"calls on channel {channel_id} share vouchers: {steps}"
            assert steps[-1] <= signed, f"a call on channel {channel_id} is credited beyond what its sender signed"
        claimable = {c: self._claimable(c, onchain[c], book) for c in self.channels}
        served_value = sum(prices[agents[s.buyer]] for s in served)
        assert sum(claimable.values()) >= served_value, "the seller cannot claim what its served calls cost"

        # The honest buyer: charged only for calls answered (or paid and about to be made), refunds the rest.
        for channel_id, ch in self.channels.items():
            if ch.owner != BUYER:
                continue
            expected = ch.paid_calls * prices[BUYER]
            assert payer_book[str(channel_id)].cumulative == expected, "the buyer's vouchers are not its paid calls"
            assert claimable[channel_id] == expected, (
                f"the seller can claim {claimable[channel_id]} of the {expected} the buyer paid on channel {channel_id}"
            )
            assert onchain[channel_id][4] <= expected, "more was claimed from the buyer than it signed"
        held = sum(ch[4] if ch[7] else ch[1] for c, ch in onchain.items() if self.channels[c].owner == BUYER)
        assert balances[env.buyer.account] == self.buyer_tokens0 - held, "the buyer's funds are not deposit or refund"

    # --- end of an example ---------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None:
                self._settle_and_check()
        finally:
            self._reset()

    def _settle_and_check(self) -> None:
        """Every pending call made, everything claimed, every deadline passed, everything refunded: the buyer
        holds its funds minus exactly its answered calls, the seller got at least what it served."""
        while self.pending:
            self.buyer_calls(0, 0)
        self._seller_claims()
        last = max([ch.expiry for ch in self.channels.values()] + [d.deadline for d in self.disputes.values()])
        self.jump(max(last - self.now(), 0) + 1)
        self.disputes_resolve()
        for channel_id in sorted(self.channels):  # the adversary refunds its channels, and the buyer's, expired now
            if not self.run(self.env.adversary.settlement.channels.get_channel(channel_id)).closed:
                self._refund(channel_id)
        self.buyer_refunds_expired()
        self.promises_hold()
        view = self._view()
        env = self.env
        answered = sum(1 for c in self.calls if c.payer == BUYER)
        spent = self.buyer_tokens0 - view["balances"][env.buyer.account]
        assert spent == answered * env.prices[BUYER], f"the buyer spent {spent} for {answered} answered calls"
        served = Repository(env.seller.store, "inference.served", ServedCall).values()
        agents = {env.buyer.address: BUYER, env.adversary.address: ADVERSARY}
        earned = view["balances"][env.seller_account] - self.seller_tokens0
        assert earned >= sum(env.prices[agents[s.buyer]] for s in served), "the seller was not paid what it served"

    def _reset(self) -> None:
        """Revert the chain; keep each account's nonce (the agents' connections track it); clear chain-bound records."""
        env = self.env
        accounts = [env.seller_account, env.validator_account, env.buyer.account, env.adversary.account]
        accounts += [env.sybil.account, env.chain.treasury.address]
        nonces = [rpc_call(env.chain.rpc_url, "eth_getTransactionCount", [a, "latest"]) for a in accounts]
        env.chain.revert(self.snapshot)
        for account, nonce in zip(accounts, nonces, strict=True):
            rpc_call(env.chain.rpc_url, "anvil_setNonce", [account, nonce])
        for agent in env.agents():
            for key, _ in agent.store.scan(""):
                if not key.startswith(KEEP):
                    agent.store.delete(key)
        env.sent.clear()


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


async def _build(chain: LocalChain, conn: ChainConnection, w: World, loop: asyncio.AbstractEventLoop) -> Env:
    # Stakers left by other tests on the shared chain (the contracts suite's validators) leave the eligible set,
    # so that committees are made of this test's parties only (undone with the test's snapshot).
    for account in chain.accounts:
        staking = StakingClient(conn.with_account(account))
        active = (await staking.stake_of(account.address)).active
        if active:
            await staking.request_unstake(active)
    assert not await StakingClient(conn).validators(), "an unknown staker would sit on committees"

    seller = await w.seller_with_model(seller_role)
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


def test_adversary_cannotTakeFromHonestBuyerSellerOrValidator(session_chain: LocalChain, tmp_path: Path) -> None:
    chain = session_chain
    snapshot = chain.snapshot()
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    conn = chain.connect()
    rpc_call(chain.rpc_url, "anvil_setBlockTimestampInterval", [1])
    try:
        loop.run_until_complete(conn.keep_alive())
        w = loop.run_until_complete(stack.enter_async_context(world(chain, conn, tmp_path)))
        env = loop.run_until_complete(_build(chain, conn, w, loop))
        run_state_machine_as_test(
            lambda: Adversarial(env),
            settings=settings(
                max_examples=50,
                stateful_step_count=24,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
        counters = env.counters
        print(f"\n{counters.examples} examples, {counters.steps} steps: {dict(counters.rules)}")
        print("\n".join(f"  {n} x {name}" for name, n in sorted(counters.outcomes.items())))
        assert counters.steps >= 1_000, counters
        happened = counters.outcomes
        for outcome in (
            "adversary call (unpaid) refused",
            "adversary vote (drawn) counted",
            "audit request (replay, due) Attestation",
            "audit request (unsigned, undue) ErrorReply",
            "adversary voucher (forged on buyer's channel) refused",
            "dispute upheld",
            "refund (early) refused",
            "refund (expired) done",
            "replayed voucher refused",
            "vote request to validator (none) Attestation",
        ):
            assert happened[outcome] > 0, f"no example reached: {outcome}"
    finally:
        loop.run_until_complete(stack.aclose())
        loop.run_until_complete(conn.close())
        loop.close()
        rpc_call(chain.rpc_url, "anvil_removeBlockTimestampInterval")
        chain.revert(snapshot)
