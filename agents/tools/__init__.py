"""LangChain tools over agora capabilities, behind the user's mandate, and a minimal tool-calling driver.

`toolkit_for(agent)` gives any role agent the tools of the capabilities it was composed from: a user's
(buy inference, federated learning), a seller's (models, prices, earnings, claims, royalties, sponsored
federated jobs), a validator's (stake, pending work, disputes, unstaking) and a training client's (fund and
follow escrowed fine-tunes). Each toolkit is also usable on its own (agents.tools.user, .seller, …).
"""

from __future__ import annotations

from typing import TypeVar

from langchain_core.tools import BaseTool

from agents.base import AgoraAgent
from agents.capabilities.catalogue import ModelCatalogue
from agents.capabilities.escrow import EscrowClient
from agents.capabilities.federated.aggregator import FederatedAggregator
from agents.capabilities.federated.client import FederatedClient
from agents.capabilities.federated.sponsor import FederatedSponsor
from agents.capabilities.inference import InferenceClient
from agents.capabilities.kit import Capability, composed
from agents.capabilities.payment import ChannelPayee
from agents.capabilities.validation import Evaluator, ReExecutor
from agents.tools.base import Toolkit
from agents.tools.federated import FederatedSponsorToolkit, FederatedUserToolkit
from agents.tools.seller import PriceBounds, SellerToolkit
from agents.tools.training import TrainingToolkit
from agents.tools.user import ToolSettings, UserToolkit
from agents.tools.validator import ValidatorToolkit

__all__ = ["RoleToolkit", "toolkit_for"]

C = TypeVar("C", bound=Capability)


class RoleToolkit(Toolkit):
    """Every toolkit of one agent as one: their tools in order, one transcript, the mandate of whichever spends."""

    def __init__(self, agent: AgoraAgent, parts: list[Toolkit]) -> None:
        guards = [part.guard for part in parts if part.guard is not None]
        super().__init__(agent, guards[0] if guards else None)
        self.parts = parts

    def tools(self) -> list[BaseTool]:
        """Each part's tools; a name two parts share is kept once, from the first (the spending side)."""
        seen: dict[str, BaseTool] = {}
        for part in self.parts:
            for tool in part.tools():
                seen.setdefault(tool.name, tool)
        return list(seen.values())


def _one(capabilities: tuple[Capability, ...], kind: type[C]) -> C | None:
    return next((c for c in capabilities if isinstance(c, kind)), None)


def toolkit_for(
    agent: AgoraAgent,
    *capabilities: Capability,
    settings: ToolSettings | None = None,
    bounds: PriceBounds | None = None,
) -> RoleToolkit:
    """The tools of `agent`'s capabilities (those `compose` gave it, unless `capabilities` are named).

    Spending tools use the capabilities' own guards: a user's channel payer, a training client's escrow client.
    """
    caps = capabilities or composed(agent)
    parts: list[Toolkit] = []
    if (client := _one(caps, InferenceClient)) is not None:
        parts.append(UserToolkit(agent, client, client.payer.guard, settings))
    if (escrow := _one(caps, EscrowClient)) is not None:
        parts.append(TrainingToolkit(agent, escrow))
    if (learner := _one(caps, FederatedClient)) is not None:
        parts.append(FederatedUserToolkit(agent, learner))
    catalogue, payee = _one(caps, ModelCatalogue), _one(caps, ChannelPayee)
    if catalogue is not None and payee is not None:
        parts.append(SellerToolkit(agent, catalogue, payee, bounds))
    if (sponsor := _one(caps, FederatedSponsor)) is not None:
        parts.append(FederatedSponsorToolkit(agent, sponsor))
    reexecutor, evaluator = _one(caps, ReExecutor), _one(caps, Evaluator)
    validating = reexecutor or evaluator
    if validating is not None:
        parts.append(
            ValidatorToolkit(agent, validating.settlement, reexecutor, evaluator, _one(caps, FederatedAggregator))
        )
    if not parts:
        raise LookupError(f"{agent.name} has no capability with tools")
    return RoleToolkit(agent, parts)
