"""The honest side of the adversary property tests: buyer, seller and validator, and the adversary as a buyer.

The seller's duty to claim before expiry is its own expiry check (`claim_due`, what its watch runs), called at
every claim point chain time passes.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from uagents import Model

from agents.base import AgoraAgent, RemoteError
from agents.capabilities.inference import sign_task, task_id
from agents.capabilities.payment import PayeeChannel
from agents.capabilities.validation import Validation
from agents.roles.selling import CLAIM, CLAIM_DUE
from agents.state import Repository
from marketplace.chain import ContractRevert, sign_voucher
from marketplace.chain import Voucher as SignedAmount
from marketplace.chain.channels import Channel
from marketplace.chain.node import rpc_call
from protocols.commitment import output_commitment, verify_output_commitment
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.payment import ChannelOpened, Receipt, Voucher
from protocols.validation import Attestation, ValidationRequest
from tests.attacks.adversary_world import (
    ADVERSARY,
    ADVERSARY_TTLS,
    BUYER,
    BUYER_TTL,
    CALLS_PER_CHANNEL,
    CLAIM_MARGIN,
    INPUTS,
    KEEP,
    MALFORMED,
    TIME_JUMPS,
    Call,
    ChannelModel,
    DisputeModel,
    Env,
    T,
)
from tests.roles.world import CLASSIFIER, Buyer


class HonestParties(RuleBasedStateMachine):
    """One honest buyer, seller and validator, and the adversary using the protocol as any buyer would: it opens
    and announces channels, pays and makes calls, and has the seller stand by them. The attacks are subclasses."""

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

    def _seller_checks_expiries(self, until: int | None = None) -> None:
        """What the seller's expiry watch does while chain time runs to `until` (default: now): at each channel's
        claim point on the way (expiry - CLAIM_MARGIN) time stops and the seller runs the watch's check
        (CLAIM_DUE), which claims what the channel holds unclaimed and closes it to vouchers."""
        end = self.now() if until is None else until
        book = Repository(self.env.seller.store, "payee.channel", PayeeChannel)
        while True:
            due = {c: r.expiry - CLAIM_MARGIN for c, r in book.items() if not (r.closed or r.closing)}
            due = {c: point for c, point in due.items() if point <= end}
            if not due:
                return
            point = min(due.values())
            if point > self.now():
                self.jump(point - self.now())
            checked_at = self.now()  # the chain time the seller's check reads
            try:
                self.run(self.env.world.call(self.env.seller, CLAIM_DUE))
            except RemoteError as err:
                raise AssertionError(f"the honest seller could not claim before expiry: {err}") from err
            for channel_id in (c for c, p in due.items() if p <= checked_at):
                record = book.get(channel_id)
                assert record is not None
                assert record.closing or record.closed, f"the seller did not claim channel {channel_id} at its point"

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
        """Chain time moves on; the seller's expiry watch runs at every claim point on the way."""
        self.count("time_passes")
        end = self.now() + seconds
        self._seller_checks_expiries(end)
        self.jump(max(end - self.now(), 1))

    # --- the adversary as a buyer ------------------------------------------------------------------------

    @initialize(ttl=st.sampled_from(ADVERSARY_TTLS), calls=st.integers(1, 6), attest=st.booleans())
    def adversary_makes_a_first_call(self, ttl: int, calls: int, attest: bool) -> None:
        """The adversary opens and announces its own channel, pays a call and makes it, and may have the seller
        stand by it on chain (so that it can dispute its own call)."""
        self.count("adversary_makes_a_first_call")
        self.adversary_opens_channel(ttl, calls, announce=True)
        self.adversary_pays(0, then_call=True, rows=0)
        if attest and any(c.payer == ADVERSARY for c in self.calls):
            self.adversary_asks_seller_to_attest(0, "own")

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

    def _adversary_call(self, job_id: str, rows: int) -> None:
        inputs = INPUTS[rows] if rows < len(INPUTS) else MALFORMED
        request = InferenceRequest(job_id=job_id, model_id=CLASSIFIER.id, inputs=inputs, price=0)
        result = self.ask(self.env.adversary, self.env.seller, request, InferenceResult)
        paid = "paid" if job_id in self.adversary_credits else "unpaid"
        self.outcome(f"adversary call ({paid}) {'served' if isinstance(result, InferenceResult) else 'refused'}")
        if isinstance(result, InferenceResult):
            self._record_call(ADVERSARY, job_id, inputs, result)

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

    # --- what the test reads back ---------------------------------------------------------------------

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

    def _validator_attested_only_due(self) -> None:
        assert self._validator_attested() <= self.audit_asked, "the validator attested a call it should have refused"

    def _validator_attested(self) -> set[bytes]:
        """The tasks the validator attested, from its own records."""
        records = Repository(self.env.validator.store, "validator.validation", Validation)
        return {bytes.fromhex(task) for task, _ in records.items()}

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
