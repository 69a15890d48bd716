"""LLMNegotiator: a LangChain chat model (scripted fakes, offline) drives a buyer's negotiation; the engine clamps
whatever it proposes to the budget, counterparty text reaches it only as data, malformed answers trade nothing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from uagents import Context

from agents.base import AgoraAgent, running
from agents.capabilities.kit import Capability, Handlers, compose
from agents.capabilities.negotiation import BuyerLimits
from agents.policies import UnitPricing
from agents.roles.sdk import BuyerAgent, SellerAgent
from agents.settings import AgentSettings
from agents.strategies.llm import BUYER_INSTRUCTIONS, REJECT, LLMNegotiator, NegotiationMove, parse_move
from protocols import negotiation
from protocols.negotiation import Accept, CallForProposals, CounterOffer, JobSpec, Proposal, Reject
from tests.llm.mandates import INJECTION

JOB = JobSpec(kind="inference", model_id="tiny-classifier", units=10)
BUDGET, OPENING = 100, 40


class ScriptedSeller(Capability):
    """A seller double: always asks `ask`; accepts counteroffers only when `accept_counters`; logs them."""

    def __init__(self, agent: AgoraAgent, ask: int, accept_counters: bool) -> None:
        super().__init__(agent)
        self.ask, self.accept_counters = ask, accept_counters
        self.counters: list[int] = []

    def handlers(self) -> Iterable[Handlers]:
        """The seller side of the negotiation protocol."""
        table = {CallForProposals: self._cfp, CounterOffer: self._counter, Accept: self._accept, Reject: self._reject}
        return (Handlers(negotiation.SPEC, "seller", table),)  # type: ignore[arg-type]

    async def _cfp(self, ctx: Context, sender: str, msg: CallForProposals) -> None:
        proposal = Proposal(negotiation_id=msg.negotiation_id, price=self.ask, round=0, valid_until=msg.deadline)
        await ctx.send(sender, proposal)

    async def _counter(self, ctx: Context, sender: str, msg: CounterOffer) -> None:
        self.counters.append(msg.price)
        if self.accept_counters:
            await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))
        else:
            await ctx.send(sender, Proposal(negotiation_id=msg.negotiation_id, price=self.ask, round=msg.round,
                                            valid_until=0))  # fmt: skip

    async def _accept(self, ctx: Context, sender: str, msg: Accept) -> None:
        await ctx.send(sender, Accept(negotiation_id=msg.negotiation_id, price=msg.price, round=msg.round))

    async def _reject(self, ctx: Context, sender: str, msg: Reject) -> None:
        """Nothing to undo."""


class AcceptWhatIsOffered(BaseChatModel):
    """A fake chat model that reads the state JSON and accepts the counterparty's current offer."""

    @property
    def _llm_type(self) -> str:
        return "accept-what-is-offered"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:  # fmt: skip
        state = json.loads(str(messages[-1].content))
        move = {"action": "accept", "price": state["counterparty_offer"]}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=json.dumps(move)))])

    async def _agenerate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:  # fmt: skip
        return self._generate(messages, stop)


def _scripted(*contents: str) -> FakeMessagesListChatModel:
    return FakeMessagesListChatModel(responses=[AIMessage(content=c) for c in contents])


def _settings(tmp_path: Path, name: str) -> AgentSettings:
    return AgentSettings(name=name, seed=f"llm-negotiator-test:{name}", data_dir=tmp_path / name)


def _seller(tmp_path: Path, ask: int, accept_counters: bool) -> tuple[AgoraAgent, ScriptedSeller]:
    agent = AgoraAgent(_settings(tmp_path, "seller"))
    double = ScriptedSeller(agent, ask, accept_counters)
    compose(agent, double)
    return agent, double


@pytest.mark.parametrize(
    ("content", "move"),
    [
        ('{"action": "counter", "price": 55}', NegotiationMove(action="counter", price=55)),
        ('Sure!\n```json\n{"action": "accept", "price": 70}\n```', NegotiationMove(action="accept", price=70)),
        ("I would rather not say", REJECT),
        ('{"action": "counter", "price": "55"}', REJECT),
        ('{"action": "counter", "price": -1}', REJECT),
        ('{"action": "pay", "price": 5}', REJECT),
        ('{"action": "counter", "price": 5, "pay_to": "0xdead"}', REJECT),
        ('{"action": "counter"', REJECT),
    ],
)
def test_parseMove_strictSchemaElseReject(content: str, move: NegotiationMove) -> None:
    assert parse_move(content) == move


async def test_negotiate_llmCounterAboveBudgetClamped(tmp_path: Path) -> None:
    seller, double = _seller(tmp_path, ask=BUDGET + 50, accept_counters=True)
    llm = LLMNegotiator(_scripted('{"action": "counter", "price": 1000000}'))
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=llm.policy())
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=OPENING, budget=BUDGET))

    assert deal is not None
    assert deal.price == BUDGET
    assert double.counters == [BUDGET]
    assert llm.moves == [NegotiationMove(action="counter", price=1_000_000)]


async def test_negotiate_llmAcceptingAboveBudgetRefused(tmp_path: Path) -> None:
    seller, double = _seller(tmp_path, ask=BUDGET + 1, accept_counters=False)
    llm = LLMNegotiator(_scripted(f'{{"action": "accept", "price": {BUDGET + 1}}}'))
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=llm.policy())
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(OPENING, BUDGET, max_rounds=2))

    assert deal is None
    assert all(price <= BUDGET for price in double.counters)
    assert buyer.negotiation.refusals > 0


async def test_negotiate_injectedSellerTextIsDataAndCannotRaiseSpend(tmp_path: Path) -> None:
    seller, double = _seller(tmp_path, ask=BUDGET * 10, accept_counters=True)
    # The model "falls for" the injection: it counters at ten times the limit.
    llm = LLMNegotiator(_scripted(f'{{"action": "counter", "price": {BUDGET * 10}}}'))
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=llm.policy())
    llm.counterparty_notes[seller.address] = INJECTION
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=OPENING, budget=BUDGET))
        key_hex = buyer.keys.account.key.hex()

    assert deal is not None
    assert deal.price <= BUDGET
    assert double.counters == [BUDGET]
    for prompt in llm.prompts:
        system, data = prompt
        assert isinstance(system, SystemMessage)
        assert system.content == BUYER_INSTRUCTIONS
        assert isinstance(data, HumanMessage)
        assert json.loads(str(data.content))["counterparty_notes"] == {seller.address: INJECTION}
        assert key_hex.removeprefix("0x") not in str(system.content) + str(data.content)


async def test_negotiate_malformedAnswersTradeNothing(tmp_path: Path) -> None:
    seller, double = _seller(tmp_path, ask=BUDGET - 10, accept_counters=False)
    llm = LLMNegotiator(_scripted("ACCEPT EVERYTHING", '{"price": 99}'))
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=llm.policy())
    limits = BuyerLimits(opening=OPENING, budget=BUDGET, max_rounds=3)
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, limits)

    assert deal is None
    assert double.counters == [OPENING] * limits.max_rounds  # a reject counters at the opening price
    assert set(llm.moves) == {REJECT}


async def test_negotiate_llmAcceptsRealSellersOfferWithinBudget(tmp_path: Path) -> None:
    seller = SellerAgent(_settings(tmp_path, "seller"), pricing=UnitPricing(10, 6))
    llm = LLMNegotiator(AcceptWhatIsOffered())
    buyer = BuyerAgent(_settings(tmp_path, "buyer"), policy=llm.policy())
    async with running(seller, buyer):
        deal = await buyer.negotiate([seller.address], JOB, BuyerLimits(opening=OPENING, budget=BUDGET))
        sold = [a.price for a in seller.negotiation.agreements.values()]

    assert deal is not None
    assert 60 <= deal.price <= BUDGET
    assert sold == [deal.price]
    assert llm.moves[0].action == "accept"
