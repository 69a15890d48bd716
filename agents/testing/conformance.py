# ruff: noqa: N802  # test names follow the house style test_<function>_<expectation> (camelCase expectation)
"""Conformance suites (web3.py style): subclass `SellerConformance` in your tests to check your seller.

    class TestMySeller(SellerConformance):
        job = JobSpec(kind="inference", model_id="my-model", units=2)
        budget = 100

        def make_seller(self, settings, deps):
            return MySeller(settings, deps)

Every test runs in-process against loopback only, with a probe agent and agora's default buyer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from uagents import Model

from agents.base import AgentDeps, AgoraAgent, running
from agents.capabilities.negotiation import BuyerLimits
from agents.roles.sdk import BuyerAgent
from agents.settings import AgentSettings
from agents.testing.doubles import Probe
from protocols.commitment import output_commitment
from protocols.errors import ErrorCode, ErrorReply
from protocols.jobs import InferenceRequest, InferenceResult
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject


@dataclass(frozen=True)
class SellerHarness:
    """The running seller under test, a probe to poke it, and a default buyer."""

    seller: AgoraAgent
    probe: Probe
    buyer: BuyerAgent


class SellerConformance:
    """The behaviour every agora seller must show; subclass, set `job`/`budget`, implement `make_seller`."""

    job: ClassVar[JobSpec]
    budget: ClassVar[int]
    inputs: ClassVar[list[list[float]]] = [[0.0, 1.0], [2.0, 3.0]]
    max_rounds: ClassVar[int] = 6

    def make_seller(self, settings: AgentSettings, deps: AgentDeps) -> AgoraAgent:
        """Build the seller under test (use the given settings and deps)."""
        raise NotImplementedError("implement make_seller in your conformance subclass")

    @pytest.fixture
    async def harness(self, tmp_path: Path) -> AsyncIterator[SellerHarness]:
        """Start the seller, a probe and a buyer in this process; stop them afterwards."""
        settings = AgentSettings(name="seller-under-test", seed=f"conformance-{uuid.uuid4()}", data_dir=tmp_path / "s")
        seller = self.make_seller(settings, AgentDeps())
        probe = Probe.create(tmp_path / "probe")
        buyer = BuyerAgent(
            AgentSettings(name="conformance-buyer", seed=f"buyer-{uuid.uuid4()}", data_dir=tmp_path / "b")
        )
        async with running(seller, probe, buyer):
            yield SellerHarness(seller, probe, buyer)

    def _cfp(self, max_price: int | None = None, deadline_s: float = 30.0) -> CallForProposals:
        return CallForProposals(
            negotiation_id=uuid.uuid4().hex,
            job=self.job,
            max_price=self.budget if max_price is None else max_price,
            deadline=int(time.time() + deadline_s),
            max_rounds=self.max_rounds,
        )

    async def _ask(self, h: SellerHarness, message: Model, *expect: type[Model]) -> Model:
        return await h.probe.ask(h.seller.address, message, expect)

    async def test_callForProposals_answeredWithProposalWithinBudget(self, harness: SellerHarness) -> None:
        """A CFP the seller can serve gets a Proposal at a positive int price not above the ceiling."""
        reply = await self._ask(harness, self._cfp(), Proposal, Reject)
        assert isinstance(reply, Proposal), reply
        assert isinstance(reply.price, int)
        assert 0 < reply.price <= self.budget
        assert reply.round == 0

    async def test_callForProposals_budgetOfOne_rejected(self, harness: SellerHarness) -> None:
        """A ceiling below any sensible price is declined with Reject, not silence or a crash."""
        assert isinstance(await self._ask(harness, self._cfp(max_price=1), Proposal, Reject), Reject)

    async def test_callForProposals_deadlinePassed_rejected(self, harness: SellerHarness) -> None:
        """A CFP whose deadline already passed is declined."""
        assert isinstance(await self._ask(harness, self._cfp(deadline_s=-5), Proposal, Reject), Reject)

    async def test_counterOffers_priceNeverRises(self, harness: SellerHarness) -> None:
        """Under repeated low counteroffers the seller concedes monotonically and ends with Accept or Reject."""
        cfp = self._cfp()
        reply = await self._ask(harness, cfp, Proposal, Reject)
        assert isinstance(reply, Proposal)
        prices = [reply.price]
        for round_ in range(1, self.max_rounds + 2):
            counter = CounterOffer(negotiation_id=cfp.negotiation_id, price=1, round=round_)
            reply = await self._ask(harness, counter, Proposal, Accept, Reject)
            if not isinstance(reply, Proposal):
                break
            prices.append(reply.price)
        assert prices == sorted(prices, reverse=True)
        assert isinstance(reply, (Reject, ErrorReply)) or (isinstance(reply, Accept) and reply.price == 1)

    async def test_accept_ofProposal_confirmed(self, harness: SellerHarness) -> None:
        """Accepting the proposed price is confirmed with an Accept at that price."""
        cfp = self._cfp()
        proposal = await self._ask(harness, cfp, Proposal, Reject)
        assert isinstance(proposal, Proposal)
        accept = Accept(negotiation_id=cfp.negotiation_id, price=proposal.price, round=0)
        confirm = await self._ask(harness, accept, Accept, Reject)
        assert isinstance(confirm, Accept)
        assert confirm.price == proposal.price

    async def test_accept_ofPriceNeverOffered_refused(self, harness: SellerHarness) -> None:
        """A buyer cannot 'accept' a price the seller never offered."""
        cfp = self._cfp()
        proposal = await self._ask(harness, cfp, Proposal, Reject)
        assert isinstance(proposal, Proposal)
        sneaky = Accept(negotiation_id=cfp.negotiation_id, price=proposal.price - 1, round=0)
        assert isinstance(await self._ask(harness, sneaky, Accept, Reject), (Reject, ErrorReply))

    async def test_negotiation_withDefaultBuyer_dealWithinBudget(self, harness: SellerHarness) -> None:
        """agora's default buyer reaches a deal with the seller within its budget."""
        limits = BuyerLimits(opening=max(self.budget // 3, 1), budget=self.budget, max_rounds=self.max_rounds)
        deal = await harness.buyer.negotiate([harness.seller.address], self.job, limits)
        assert deal is not None
        assert 0 < deal.price <= self.budget

    async def test_inferenceRequest_answeredWithCommittedResult(self, harness: SellerHarness) -> None:
        """An inference request at the budget price returns outputs and the matching output commitment."""
        request = InferenceRequest(job_id="conf-1", model_id=self.job.model_id, inputs=self.inputs, price=self.budget)
        result = await self._ask(harness, request, InferenceResult)
        assert isinstance(result, InferenceResult), result
        assert result.job_id == "conf-1"
        assert result.output_commitment == output_commitment(self.job.model_id, self.inputs, result.outputs)

    async def test_inferenceRequest_priceZero_refusedWithErrorReply(self, harness: SellerHarness) -> None:
        """Work offered for nothing is refused with a typed ErrorReply."""
        request = InferenceRequest(job_id="conf-2", model_id=self.job.model_id, inputs=self.inputs, price=0)
        reply = await self._ask(harness, request, InferenceResult)
        assert isinstance(reply, ErrorReply)

    async def test_malformedPayload_answeredWithErrorReply(self, harness: SellerHarness) -> None:
        """A payload that does not fit its schema gets ErrorReply(malformed), and the seller keeps working."""
        reply = await harness.probe.ask_raw(
            harness.seller.address, Model.build_schema_digest(CallForProposals), '{"negotiation_id": []}'
        )
        assert isinstance(reply, ErrorReply)
        assert reply.code == ErrorCode.MALFORMED
        assert isinstance(await self._ask(harness, self._cfp(), Proposal, Reject), Proposal)
