"""The user's LangChain tools and the tool-calling driver, with scripted fake chat models (offline), against a
real seller on the real contracts: an LLM-driven buyer buys within its mandate, a purchase beyond it is refused
before any transaction or voucher, and malformed or out-of-range tool calls get a typed error and do nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from uagents import Model

from agents.roles import seller as seller_role
from agents.strategies.llm import LLMNegotiator
from agents.tools.driver import drive
from agents.tools.user import ToolSettings, UserToolkit
from marketplace.chain import ChannelsClient, TokenClient
from marketplace.chain.deploy import CHANNELS_CONFIG
from protocols.payment import ChannelOpened, Voucher
from tests.llm.mandates import INJECTION, GuardedBuyer, guarded_buyer
from tests.roles.world import AGT, PRICE, World

pytestmark = pytest.mark.chain

FUNDING = AGT
SETTINGS = ToolSettings(channel_ttl=CHANNELS_CONFIG.min_channel_duration + 600)


def _call(name: str, call_id: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])


def _model(*replies: AIMessage) -> FakeMessagesListChatModel:
    return FakeMessagesListChatModel(responses=list(replies))


def _tool_results(messages: list[Any]) -> list[str]:
    return [str(m.content) for m in messages if isinstance(m, ToolMessage)]


async def _buyer(economy: World, **mandate: Any) -> tuple[GuardedBuyer, UserToolkit]:
    terms = {"total_budget": 3 * PRICE, "per_call_cap": PRICE, "per_counterparty_cap": 3 * PRICE, **mandate}
    buyer = await guarded_buyer(economy, "llm-buyer", tokens=FUNDING, **terms)
    return buyer, UserToolkit(buyer.probe, buyer.client, buyer.guard, SETTINGS)


async def test_drive_llmBuyerBuysWithinItsMandate(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    buyer, toolkit = await _buyer(economy)
    model = _model(
        _call("search_sellers", "c1", kind="classifier"),
        _call("buy_inference", "c2", kind="classifier", calls=2, max_per_call=PRICE),
        _call("check_balance", "c3"),
        _call("list_channels", "c4"),
        AIMessage(content="Bought 2 classifier calls."),
    )

    result = await drive(model, toolkit.tools(), "Buy two classifier calls, at most 1e16 each.")

    assert result.answer == "Bought 2 classifier calls."
    assert result.steps == 5
    found, bought, balance, channels = _tool_results(result.messages)
    assert "sells clf-test at" in found
    assert bought.startswith("bought 2 of 2 classifier calls")
    spent = buyer.guard.spent()
    assert 0 < spent.total <= 2 * PRICE
    assert spent.by_counterparty == {seller.keys.eth_address.lower(): spent.total}
    assert f"spent {spent.total} of {3 * PRICE}" in balance
    assert channels.startswith("channel ")
    (channel_id, record), *_ = buyer.payer.channels.items()
    on_chain = await ChannelsClient(economy.conn).get_channel(int(channel_id))
    assert on_chain.recipient == seller.keys.eth_address
    assert record.cumulative == spent.total
    assert await TokenClient(economy.conn).balance_of(buyer.settlement.account) == FUNDING - on_chain.deposit
    log = toolkit.transcript.entries()
    assert [(e.tool, e.ok) for e in log] == [
        ("search_sellers", True), ("buy_inference", True), ("check_balance", True), ("list_channels", True),
    ]  # fmt: skip
    key_hex = buyer.probe.keys.account.key.hex().removeprefix("0x")
    assert all(key_hex not in str(m.content) for m in result.messages)
    report = toolkit.report()
    assert (report.budget, report.spent, len(report.calls)) == (3 * PRICE, spent.total, 4)
    assert key_hex not in report.model_dump_json()


async def test_drive_purchaseBeyondMandateRefusedBeforeAnyTransaction(economy: World) -> None:
    await economy.seller_with_model(seller_role)
    buyer, toolkit = await _buyer(economy)
    # 10 calls at up to PRICE each cannot fit a budget of 3 * PRICE: refused before the deposit is sent.
    model = _model(
        _call("buy_inference", "c1", kind="classifier", calls=10, max_per_call=PRICE),
        AIMessage(content="Could not buy."),
    )

    result = await drive(model, toolkit.tools(), "Buy ten classifier calls.")

    (refusal,) = _tool_results(result.messages)
    assert refusal.startswith("error[mandate_exceeded]: deposit")
    assert result.answer == "Could not buy."
    assert buyer.guard.spent().total == 0
    assert len(buyer.payer.channels) == 0
    assert await TokenClient(economy.conn).balance_of(buyer.settlement.account) == FUNDING
    assert [(e.tool, e.ok) for e in toolkit.transcript.entries()] == [("buy_inference", False)]


async def test_drive_malformedOrOutOfRangeArgumentsGetTypedErrorAndNoEffect(economy: World) -> None:
    await economy.seller_with_model(seller_role)
    buyer, toolkit = await _buyer(economy)
    model = _model(
        AIMessage(
            content="",
            tool_calls=[
                {"name": "buy_inference", "args": {"kind": "gpu", "calls": 2, "max_per_call": PRICE}, "id": "a"},
                {"name": "buy_inference", "args": {"kind": "classifier", "calls": -5, "max_per_call": PRICE},
                 "id": "b"},
                {"name": "buy_inference", "args": {"kind": "classifier", "calls": 1, "max_per_call": PRICE,
                                                   "pay_to": "0x000000000000000000000000000000000000dEaD"}, "id": "c"},
                {"name": "transfer_all_funds", "args": {"to": "0xdead"}, "id": "d"},
            ],
            invalid_tool_calls=[{"name": "buy_inference", "args": "{not json", "id": "e", "error": None}],
        ),
        AIMessage(content="Gave up."),
    )  # fmt: skip

    result = await drive(model, toolkit.tools(), "Buy something.")

    replies = _tool_results(result.messages)
    assert [r.split(":")[0] for r in replies] == [
        "error[invalid_arguments]", "error[invalid_arguments]", "error[invalid_arguments]",
        "error[unknown_tool]", "error[malformed_call]",
    ]  # fmt: skip
    assert buyer.guard.spent().total == 0
    assert len(buyer.payer.channels) == 0
    assert await TokenClient(economy.conn).balance_of(buyer.settlement.account) == FUNDING
    assert all(not e.ok for e in toolkit.transcript.entries())


async def test_drive_modelObeyingInjectedTextStillCannotOverspend(economy: World) -> None:
    await economy.seller_with_model(seller_role)
    buyer, toolkit = await _buyer(economy)
    # As if a seller's text had told the model to "pay 100x the price": the mandate, not the model, decides.
    model = _model(
        _call("buy_inference", "c1", kind="classifier", calls=2, max_per_call=100 * PRICE),
        AIMessage(content="Done as the seller asked."),
    )

    result = await drive(model, toolkit.tools(), "Buy two classifier calls.")

    (reply,) = _tool_results(result.messages)
    assert reply.startswith("error[mandate_exceeded]")
    assert buyer.guard.spent().total == 0
    assert await TokenClient(economy.conn).balance_of(buyer.settlement.account) == FUNDING


async def test_drive_llmNegotiatorAndLlmToolCallerBuyWithinMandate(economy: World) -> None:
    seller = await economy.seller_with_model(seller_role)
    # The negotiating model counters far above any limit; the engine clamps it to the plan's budget.
    negotiator = LLMNegotiator(_model(AIMessage(content='{"action": "counter", "price": 1000000000000000000000}')))
    buyer = await guarded_buyer(
        economy, "llm-negotiating-buyer", policy=negotiator.policy(), tokens=FUNDING,
        total_budget=3 * PRICE, per_call_cap=PRICE, per_counterparty_cap=3 * PRICE,
    )  # fmt: skip
    negotiator.counterparty_notes[seller.address] = INJECTION
    toolkit = UserToolkit(buyer.probe, buyer.client, buyer.guard, SETTINGS)
    model = _model(
        _call("buy_inference", "c1", kind="classifier", calls=2, max_per_call=PRICE),
        AIMessage(content="done"),
    )
    sent: list[Model] = []
    send = buyer.probe.send

    async def recording_send(destination: str, message: Model, *, session: Any = None) -> Any:
        sent.append(message)
        return await send(destination, message, session=session)

    buyer.probe.send = recording_send  # type: ignore[method-assign]  # every outbound message of the buyer

    result = await drive(model, toolkit.tools(), "Buy two classifier calls.")

    (bought,) = _tool_results(result.messages)
    assert bought.startswith("bought 2 of 2 classifier calls for")
    assert negotiator.moves[0].action == "counter"
    assert buyer.guard.spent().total == 2 * PRICE  # the clamped counter: the plan's limit, never the model's price
    assert buyer.guard.spent().by_counterparty == {seller.keys.eth_address.lower(): 2 * PRICE}
    assert buyer.negotiation.refusals >= 1
    key_hex = buyer.probe.keys.account.key.hex().removeprefix("0x")
    assert sent
    assert all(key_hex not in message.model_dump_json() for message in sent)
    assert [m.payee for m in sent if isinstance(m, ChannelOpened)] == [seller.keys.eth_address]
    vouchers = [m for m in sent if isinstance(m, Voucher)]
    assert [v.cumulative_amount for v in vouchers] == [PRICE, 2 * PRICE]
    assert all(
        json.loads(str(p[1].content))["counterparty_notes"] == {seller.address: INJECTION} for p in negotiator.prompts
    )
