"""Attacks on the validator through audit requests: replayed, altered, re-committed, unsigned, re-priced, probed
one after the other and flooded at once."""

from __future__ import annotations

import asyncio

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule
from uagents import Model

from protocols.validation import Attestation
from tests.attacks.adversary_promises import Promises
from tests.attacks.adversary_world import AUDIT_VARIANTS, Call


class AuditAdversary(Promises):
    """The adversary tries to make the validator spend gas or CPU on audits it need not serve."""

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
