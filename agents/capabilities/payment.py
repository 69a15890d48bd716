"""Payment channels, both sides: the payer opens channels and pays each call with a cumulative EIP-712 voucher;
the payee keeps a voucher book, turns vouchers into per-call credits, and claims on chain.

The payee's book is bound to the chain, never to what a peer says: a channel is accepted only as
PaymentChannels records it (recipient = this agent's account, open, far enough from expiry, for a model
sold here); a voucher counts only if the channel's on-chain sender signed it; a repeated ChannelOpened
changes nothing; credits are keyed by (peer, job id), so one buyer cannot spend or block another's.

By default the payee claims every channel holding unclaimed vouchers once it is within a margin of its expiry
(`ExpiryClaims`: a number of block times, never less than a floor), and refuses vouchers on a channel from then
on, so a buyer that refunds at expiry takes back nothing the seller was paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable

from pydantic import BaseModel, Field
from uagents import Context

from agents.base import AgoraAgent
from agents.capabilities.kit import Capability, Handlers
from agents.capabilities.mandate import MandateGuard
from agents.mods import Rejected
from agents.settlement import MODEL_URI_PREFIX, Settlement
from agents.state import Record, Repository, key
from marketplace.chain import (
    ChannelClaimed,
    ChannelRefunded,
    ContractRevert,
    SignedVoucher,
    sign_voucher,
    verify_voucher,
)
from marketplace.chain import Voucher as SignedAmount
from protocols import payment
from protocols.errors import ErrorCode
from protocols.payment import ChannelOpened, Receipt, Voucher

MIN_CHANNEL_LIFETIME = 60
"""A channel must stay open at least this long (s, chain time) before its claim point for the payee to accept it."""
BLOCK_SAMPLE = 32
"""Block-to-block gaps the payee's block-time estimate is the median of (robust to one long jump)."""
BLOCK_TIME_TTL = 600.0
"""How long (wall s) a block-time estimate is reused before it is measured again."""


class ExpiryClaims(BaseModel):
    """When a payee claims a channel before its expiry, so that its sender cannot refund paid vouchers.

    A channel is due once its expiry is within `margin` of chain time: `margin_blocks` block times (the
    median gap of the latest blocks), but never less than `min_margin` seconds nor less than two check
    periods. From then on the payee claims it and refuses further vouchers on it.
    """

    margin_blocks: int = Field(default=25, ge=1)
    min_margin: int = Field(default=300, ge=1)
    """Seconds; also what a chain with instant blocks (anvil) gets."""
    check_every: float = Field(default=30.0, gt=0)
    """Wall seconds between two checks for due channels."""
    watch: bool = True
    """Check in the background; False leaves the checks to whoever calls `ChannelPayee.claim_due` (the seller's
    `claim_due` command), while vouchers are still refused within the margin."""

    def margin(self, block_time: float) -> int:
        """Seconds before expiry at which a channel is claimed, for a chain producing a block every `block_time` s."""
        return max(self.min_margin, math.ceil(self.margin_blocks * block_time), math.ceil(2 * self.check_every))


PriceOf = Callable[[str, int], Awaitable[int]]
"""(buyer agent address, model token id) → agreed price per call in base units; raises Rejected if none."""


class PayeeChannel(Record):
    """A channel paying this agent, as the chain recorded it, with the best voucher received so far."""

    payer: str
    deposit: int
    expiry: int
    nonce: int
    model_chain_id: int
    cumulative: int = 0
    signature: str | None = None
    claimed: int = 0
    closed: bool = False
    closing: bool = False
    """Within the claim margin of expiry: claimed by the payee, no voucher accepted any more."""


class Credit(Record):
    """A paid, not yet used call: which channel paid it, for which model, how much."""

    channel_id: int
    model_chain_id: int
    amount: int
    cumulative: int
    """The channel's total after the voucher that paid this call (part of the call's audit task id)."""
    used: bool = False


class ChannelPayee(Capability):
    """Accepts channels and vouchers, credits calls, and claims every channel's best voucher in one transaction:
    when asked, past `claim_threshold`, and (unless `expiry_claims` is None) before each channel expires."""

    def __init__(
        self,
        agent: AgoraAgent,
        settlement: Settlement,
        price_of: PriceOf,
        claim_threshold: int | None = None,
        expiry_claims: ExpiryClaims | None = ExpiryClaims(),  # noqa: B008 - frozen defaults, never mutated
    ) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.price_of = price_of
        self.claim_threshold = claim_threshold
        """Claim on chain as soon as this much (base units) is unclaimed; None claims only when asked."""
        self.expiry_claims = expiry_claims
        self._block_time: tuple[float, float] | None = None
        """(estimate in s, wall time measured)."""
        self._claiming = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        if expiry_claims is not None and expiry_claims.watch:
            agent.on_event("startup")(self._start_watch)
            agent.on_event("shutdown")(self._stop_watch)
        self.channels = Repository(agent.store, "payee.channel", PayeeChannel)
        self.credits = Repository(agent.store, "payee.credit", Credit)
        self.claim_log: list[tuple[list[ChannelClaimed], int]] = []
        """Every claimMany this agent sent since it started, with its gas."""
        self.accepts_model: Callable[[int], bool] = lambda model_chain_id: True

    def handlers(self) -> Iterable[Handlers]:
        """The payee side of the payment protocol."""
        return (Handlers(payment.SPEC, "payee", {ChannelOpened: self._on_channel_opened, Voucher: self._on_voucher}),)

    async def _on_channel_opened(self, ctx: Context, sender: str, msg: ChannelOpened) -> None:
        try:
            channel_id = int(msg.channel_id)
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, "channel_id must be a decimal channel number") from exc
        known = self.channels.get(str(channel_id))
        if known is None:
            try:
                channel = await self.settlement.channels.get_channel(channel_id)
            except ContractRevert as exc:
                raise Rejected(ErrorCode.REJECTED, "no such channel") from exc
            if channel.recipient.lower() != self.settlement.account.lower():
                raise Rejected(ErrorCode.REJECTED, "channel does not pay this agent")
            if channel.sender.lower() != msg.payer.lower() or channel.closed:
                raise Rejected(ErrorCode.REJECTED, "channel sender mismatch or channel closed")
            if channel.expiry <= await self.settlement.chain_time() + await self.margin() + MIN_CHANNEL_LIFETIME:
                raise Rejected(ErrorCode.REJECTED, "channel expires too soon")
            if not self.accepts_model(channel.model_id):
                raise Rejected(ErrorCode.REJECTED, "channel is not for a model sold here")
            known = PayeeChannel(
                payer=channel.sender,
                deposit=channel.deposit,
                expiry=channel.expiry,
                nonce=channel.nonce,
                model_chain_id=channel.model_id,
            )
            # A notice repeated concurrently must not reset the book: only the first record is kept.
            self.channels.add(str(channel_id), known)
            known = self.channels.get(str(channel_id)) or known
        assert known is not None
        receipt = Receipt(channel_id=msg.channel_id, job_id="", amount=0, cumulative_amount=known.cumulative, nonce=0)
        await ctx.send(sender, receipt)

    async def _on_voucher(self, ctx: Context, sender: str, msg: Voucher) -> None:
        record = self.channels.get(msg.channel_id)
        if record is None or record.closed:
            raise Rejected(ErrorCode.REJECTED, "unknown channel: send ChannelOpened first")
        if record.closing:
            raise Rejected(ErrorCode.REJECTED, "channel is about to expire and was claimed: open a new one")
        price = await self.price_of(sender, record.model_chain_id)
        # Read the book again after the last await: a voucher handled concurrently may have moved it, and from here
        # to the write below nothing awaits, so two vouchers can never both be credited against the same total.
        record = self.channels.get(msg.channel_id)
        if record is None or record.closed or record.closing:
            raise Rejected(ErrorCode.REJECTED, "channel closed or claimed while this voucher was checked")
        increase = msg.cumulative_amount - record.cumulative
        if msg.nonce != record.nonce:
            raise Rejected(ErrorCode.REJECTED, f"voucher nonce {msg.nonce}, channel nonce {record.nonce}")
        if increase < price:
            raise Rejected(ErrorCode.REJECTED, f"voucher adds {increase}, a call costs {price}")
        if msg.cumulative_amount > record.deposit:
            raise Rejected(ErrorCode.REJECTED, "voucher exceeds the channel deposit")
        try:
            signature = bytes.fromhex(msg.signature.removeprefix("0x"))
        except ValueError as exc:
            raise Rejected(ErrorCode.MALFORMED, "signature must be 0x-hex") from exc
        signed = SignedVoucher(SignedAmount(int(msg.channel_id), msg.nonce, msg.cumulative_amount), signature)
        if not verify_voucher(signed, record.payer, self.settlement.channels.domain):
            raise Rejected(ErrorCode.BAD_SIGNATURE, "voucher not signed by the channel's sender")
        credit = Credit(
            channel_id=int(msg.channel_id),
            model_chain_id=record.model_chain_id,
            amount=increase,
            cumulative=msg.cumulative_amount,
        )
        if not msg.job_id or not self.credits.add(key(sender, msg.job_id), credit):
            raise Rejected(ErrorCode.REJECTED, "voucher job id missing or already paid")
        record.cumulative, record.signature = msg.cumulative_amount, msg.signature
        self.channels.put(msg.channel_id, record)
        if self.claim_threshold is not None and self.unclaimed() >= self.claim_threshold:
            await self.claim()
        receipt = Receipt(
            channel_id=msg.channel_id,
            job_id=msg.job_id,
            amount=increase,
            cumulative_amount=msg.cumulative_amount,
            nonce=msg.nonce,
        )
        await ctx.send(sender, receipt)

    def check_credit(self, buyer: str, job_id: str, model_chain_id: int) -> Credit:
        """The unused credit a voucher bought for this call; Rejected if the call was not paid or already served."""
        credit = self.credits.get(key(buyer, job_id))
        if credit is None or credit.model_chain_id != model_chain_id:
            raise Rejected(ErrorCode.REJECTED, "call not paid: send a voucher for this job first")
        if credit.used:
            raise Rejected(ErrorCode.REPLAYED, "this job was already served")
        return credit

    def use_credit(self, buyer: str, job_id: str, model_chain_id: int) -> Credit:
        """Spend the credit a voucher bought for this call (once); Rejected if the call was not paid."""
        credit = self.check_credit(buyer, job_id, model_chain_id)
        credit.used = True
        self.credits.put(key(buyer, job_id), credit)
        return credit

    def unclaimed(self) -> int:
        """Base units promised by stored vouchers and not yet claimed on chain."""
        return sum(max(0, c.cumulative - c.claimed) for c in self.channels.values() if not c.closed)

    async def margin(self) -> int:
        """Seconds before expiry at which this payee claims a channel (0 when it does not claim by expiry)."""
        if self.expiry_claims is None:
            return 0
        return self.expiry_claims.margin(await self.block_time())

    async def block_time(self) -> float:
        """The chain's block time: the median gap between its latest blocks (measured again every 10 minutes)."""
        if self._block_time is not None and time.monotonic() - self._block_time[1] < BLOCK_TIME_TTL:
            return self._block_time[0]
        eth = self.settlement.conn.w3.eth
        head = await eth.block_number
        first = max(head - BLOCK_SAMPLE, 0)
        blocks = await asyncio.gather(*(eth.get_block(n) for n in range(first, head + 1)))
        gaps = [int(b["timestamp"]) - int(a["timestamp"]) for a, b in itertools.pairwise(blocks)]
        estimate = float(statistics.median(gaps)) if gaps else 0.0
        self._block_time = (estimate, time.monotonic())
        return estimate

    async def claim_due(self) -> list[ChannelClaimed]:
        """Mark every channel within the claim margin of expiry as closing, and claim what they hold unclaimed."""
        deadline = await self.settlement.chain_time() + await self.margin()
        due = False
        for channel_id, record in self.channels.items():
            if record.closed or record.expiry > deadline:
                continue
            if not record.closing:
                record.closing = True  # no voucher from now on: what is claimed below is the channel's last word
                self.channels.put(channel_id, record)
            due = due or record.cumulative > record.claimed
        return await self.claim() if due else []

    async def _watch_expiries(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.claim_due()
            except Exception as exc:  # a node hiccup must not end the watch: the next check retries
                self.agent.logger.warning("claim before expiry failed, retrying in %.0f s: %s", every, exc)

    async def _start_watch(self, _: Context) -> None:
        assert self.expiry_claims is not None
        self._watch = asyncio.get_running_loop().create_task(self._watch_expiries(self.expiry_claims.check_every))

    async def _stop_watch(self, _: Context) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch

    async def claim(self) -> list[ChannelClaimed]:
        """Claim every channel's best unclaimed voucher in one claimMany (closed channels are skipped)."""
        async with self._claiming:  # the watch, the threshold and the operator may ask at once
            return await self._claim()

    async def _claim(self) -> list[ChannelClaimed]:
        due = [
            (channel_id, record)
            for channel_id, record in self.channels.items()
            if not (record.closed or record.signature is None or record.cumulative <= record.claimed)
        ]
        # One read per channel, all at once: a seller of a thousand buyers waited on each in turn (23 s).
        states = await asyncio.gather(*(self.settlement.channels.get_channel(int(cid)) for cid, _ in due))
        pending: list[SignedVoucher] = []
        for (channel_id, record), state in zip(due, states, strict=True):
            if state.closed:
                # Refunded by its sender: nothing left to claim, and it must not sink the batch.
                closed = self.channels.get(channel_id) or record
                closed.closed = True
                self.channels.put(channel_id, closed)
                continue
            assert record.signature is not None
            signature = bytes.fromhex(record.signature.removeprefix("0x"))
            pending.append(SignedVoucher(SignedAmount(int(channel_id), record.nonce, record.cumulative), signature))
        if not pending:
            return []
        claims = await self.settlement.channels.claim_many(pending)
        for signed in pending:
            claimed = self.channels.get(str(signed.voucher.channel_id))
            assert claimed is not None
            claimed.claimed = signed.voucher.amount
            self.channels.put(str(signed.voucher.channel_id), claimed)
        receipt = self.settlement.channels.last_receipt
        self.claim_log.append((claims, int(receipt["gasUsed"]) if receipt is not None else 0))
        return claims


class PayerChannel(Record):
    """A channel this agent opened: to whom, how much is deposited and promised so far."""

    seller: str
    payee: str
    deposit: int
    expiry: int
    nonce: int
    model_chain_id: int
    cumulative: int = 0
    refunded: bool = False
    model_id: str = ""
    """The model's agora id, as its ModelRegistry token URI names it (what a mandate allows)."""


class ChannelPayer(Capability):
    """Opens channels to sellers and pays calls with vouchers for the cumulative amount.

    With a `guard`, every deposit and voucher is checked against the user's mandate before it is signed.
    """

    def __init__(self, agent: AgoraAgent, settlement: Settlement, guard: MandateGuard | None = None) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.guard = guard
        if guard is not None and guard.terms.spender.lower() != settlement.account.lower():
            raise ValueError("the mandate governs another account than this agent's")
        self.channels = Repository(agent.store, "payer.channel", PayerChannel)

    async def _model_id(self, model_chain_id: int) -> str:
        """The agora model id the chain lists under a ModelRegistry token id ("" when not an agora model)."""
        uri = await self.settlement.model_registry.token_uri(model_chain_id)
        return uri.removeprefix(MODEL_URI_PREFIX).partition("/")[2] if uri.startswith(MODEL_URI_PREFIX) else ""

    async def open(self, seller: str, payee: str, deposit: int, ttl: int, model_chain_id: int) -> int:
        """Deposit into a new channel paying `payee` (the seller agent's account) and tell the seller; its id.

        Raises MandateExceeded (before any transaction) when the mandate does not allow this deposit.
        """
        s = self.settlement
        model_id = ""
        if self.guard is not None:
            model_id = await self._model_id(model_chain_id)
            await self.guard.authorize_deposit(payee, model_id, "inference", deposit)
        expiry = await s.chain_time() + ttl
        await s.token.approve(s.channels.address, deposit)
        opened = await s.channels.open_channel(payee, deposit, expiry, model_chain_id)
        nonce = (await s.channels.get_channel(opened.channel_id)).nonce  # the sender's channel counter
        record = PayerChannel(
            seller=seller,
            payee=payee,
            deposit=deposit,
            expiry=expiry,
            nonce=nonce,
            model_chain_id=model_chain_id,
            model_id=model_id,
        )
        self.channels.put(str(opened.channel_id), record)
        notice = ChannelOpened(
            channel_id=str(opened.channel_id),
            chain_id=s.conn.deployment.chain_id,
            contract=s.channels.address,
            payer=s.account,
            payee=payee,
            deposit=deposit,
            expiry=expiry,
        )
        await self.agent.request(seller, notice, Receipt)
        return opened.channel_id

    async def pay(self, channel_id: int, amount: int, job_id: str) -> Receipt:
        """Send a voucher raising the channel's total by `amount` for call `job_id`; returns the seller's receipt.

        Raises MandateExceeded (nothing signed) when the mandate does not allow this payment.
        """
        record = self.channels.get(str(channel_id))
        if record is None:
            raise KeyError(f"channel {channel_id} was not opened by this agent")
        if self.guard is not None:
            await self.guard.authorize(record.payee, record.model_id, "inference", amount)
            # No await from here on: a concurrent payment can neither slip past the check nor reuse a stale total.
            record = self.channels.get(str(channel_id)) or record
        total = record.cumulative + amount
        if total > record.deposit:
            raise ValueError(f"channel {channel_id} holds {record.deposit}; paying {amount} more would exceed it")
        signed = sign_voucher(
            self.settlement.conn.account, SignedAmount(channel_id, record.nonce, total), self.settlement.channels.domain
        )
        if self.guard is not None:
            self.guard.record(record.payee, amount)
        voucher = Voucher(
            channel_id=str(channel_id),
            cumulative_amount=total,
            nonce=record.nonce,
            signature="0x" + signed.signature.hex(),
            job_id=job_id,
        )
        record.cumulative = total  # signed and sent: the seller may claim it even if the receipt is lost
        self.channels.put(str(channel_id), record)
        return await self.agent.request(record.seller, voucher, Receipt)

    async def refund_expired(self) -> list[ChannelRefunded]:
        """Take back what sellers did not claim from every expired channel of this agent."""
        refunds = []
        now = await self.settlement.chain_time()
        for channel_id, record in self.channels.items():
            if record.refunded or record.expiry > now:
                continue
            channel = await self.settlement.channels.get_channel(int(channel_id))
            if not channel.closed and channel.unclaimed > 0:
                refunds.append(await self.settlement.channels.refund(int(channel_id)))
            record.refunded = True
            self.channels.put(channel_id, record)
        return refunds
