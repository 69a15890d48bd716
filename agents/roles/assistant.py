"""The assistant: a user agent run by a language model through LangChain tools, within a mandate its owner signed.

The model only proposes: it calls tools (search sellers, buy inference, check balance, list channels); the
channel payer checks every deposit and voucher against the mandate before anything is signed, and the model
never sees key material. In the demo the model is a scripted LangChain fake chat model (offline and
deterministic); any LangChain chat model fits (`AssistantOptions.script` empty and `model` injected).

Composition: negotiation (buyer side) + mandate-guarded channel payer + inference client + tools + control.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.control import Command, Empty
from agents.capabilities.inference import InferenceClient
from agents.capabilities.kit import compose
from agents.capabilities.mandate import Mandate, MandateGuard, MandateTerms
from agents.capabilities.negotiation import NegotiationBuyer
from agents.capabilities.payment import ChannelPayer
from agents.roles.base import RoleOptions, role_parts
from agents.roles.user import REFUND_CHANNELS, Refunds
from agents.settings import AgentSettings
from agents.tools.driver import drive
from agents.tools.user import ToolReport, UserToolkit
from agents.wallet import Wallet

ROLE = "assistant"


class ScriptStep(BaseModel):
    """One scripted model turn: a tool call (`tool`, `args`) or a final `answer`."""

    tool: str | None = None
    args: dict[str, Any] = {}
    answer: str | None = None


class AssistantOptions(RoleOptions):
    """The mandate its owner grants (base units, seconds) and, offline, the model's scripted turns."""

    budget: int
    per_call_cap: int
    per_counterparty_cap: int
    allowed_models: list[str] = Field(default_factory=list)
    mandate_ttl: int = 86_400
    script: list[ScriptStep] = Field(default_factory=list)


class Task(BaseModel):
    """What the operator asks the assistant to do, in words."""

    text: str
    max_steps: int = 8


class TaskDone(BaseModel):
    """The model's final answer (None if it ran out of steps) and how many turns it took."""

    answer: str | None
    steps: int


RUN_TASK = Command("run_task", Task, TaskDone)
TOOL_REPORT = Command("tool_report", Empty, ToolReport)


def scripted_model(script: list[ScriptStep]) -> BaseChatModel:
    """A LangChain fake chat model replaying `script` (offline, deterministic)."""
    replies = [
        AIMessage(content=step.answer)
        if step.answer is not None
        else AIMessage(content="", tool_calls=[{"name": step.tool or "", "args": step.args, "id": f"call-{i}"}])
        for i, step in enumerate(script)
    ]
    return FakeMessagesListChatModel(responses=replies)


def build(
    settings: AgentSettings, deps: AgentDeps, options: dict[str, Any], model: BaseChatModel | None = None
) -> AgoraAgent:
    """An assistant built from plain options (see AssistantOptions); `model` replaces the scripted one."""
    opts = AssistantOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    agent, settlement = parts.agent, parts.settlement
    # The owner's key stands in for the human who signs the mandate; it is not the agent's key.
    owner = (Wallet.from_seed(f"{settings.seed}:owner") if settings.seed else Wallet.generate()).account
    terms = MandateTerms(
        mandate_id=f"{settings.name}-mandate", issuer=owner.address, spender=settlement.account,
        total_budget=opts.budget, per_call_cap=opts.per_call_cap, per_counterparty_cap=opts.per_counterparty_cap,
        allowed_models=tuple(opts.allowed_models), expires_at=int(agent.clock.now()) + opts.mandate_ttl,
        clock="agent",
    )  # fmt: skip
    guard = MandateGuard.for_agent(agent, settlement, Mandate.sign(terms, owner))
    negotiation = NegotiationBuyer(agent)
    payer = ChannelPayer(agent, settlement, guard)
    client = InferenceClient(agent, settlement, negotiation, payer, opts.seed)
    toolkit = UserToolkit(agent, client, guard)
    llm = model or scripted_model(opts.script)

    async def run_task(task: Task) -> TaskDone:
        done = await drive(llm, toolkit.tools(), task.text, max_steps=task.max_steps)
        return TaskDone(answer=done.answer, steps=done.steps)

    async def report(_: Empty) -> ToolReport:
        return toolkit.report()

    async def refund(_: Empty) -> Refunds:
        return Refunds(amounts=[r.amount for r in await payer.refund_expired()])

    parts.control.handle(RUN_TASK, run_task)
    parts.control.handle(TOOL_REPORT, report)
    parts.control.handle(REFUND_CHANNELS, refund)
    return compose(agent, parts.control, negotiation, payer, client)
