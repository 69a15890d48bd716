"""Attacks through channels, vouchers and calls: re-sent and lying channel notices, replayed, forged and defective
vouchers, another payer's job ids, unpaid and borrowed calls, early refunds."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from uagents.dispatch import dispatcher

from agents.testing.doubles import forge_envelope, post_envelope
from protocols.errors import ErrorCode
from protocols.payment import Receipt, Voucher
from tests.attacks.adversary_promises import Promises
from tests.attacks.adversary_world import ADVERSARY, BUYER, INPUTS


class PaymentAdversary(Promises):
    """The adversary attacks the seller's payment book and the buyer's credit."""

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

    @precondition(lambda self: self.channels)
    @rule(pick=st.integers(0, 7), whose=st.sampled_from([ADVERSARY, BUYER]))
    def adversary_refunds(self, pick: int, whose: str) -> None:
        """Refund its own channel (or the buyer's), whether or not it expired: only after expiry may it close."""
        self.count("adversary_refunds")
        self._refund(self._pick(self.channels_of(whose) or sorted(self.channels), pick))
