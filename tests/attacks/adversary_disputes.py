"""Attacks through disputes: sham disputes by the adversary or its sybil, votes as drawn or undrawn members, and
vote requests about the disputed call or an altered one."""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from marketplace.chain import ContractRevert
from protocols.disputes import DisputeVoteRequest
from protocols.validation import Attestation
from tests.attacks.adversary_promises import Promises
from tests.attacks.adversary_world import ADVERSARY, WRONG_RESULTS, Call, DisputeModel
from tests.roles.world import CLASSIFIER


class DisputeAdversary(Promises):
    """The adversary tries to have the honest seller or validator slashed."""

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
