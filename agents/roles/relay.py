"""The claim relay: takes users' conversion proofs, verifies them off chain and sends them in batches from its own
account, so no claim on chain is sent by a user, an advertiser or a merchant. Composition: claim relayer + control.
"""

from __future__ import annotations

from typing import Any

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.ads.relay import ClaimRelayer, RelayReport
from agents.capabilities.control import Command, Empty
from agents.capabilities.kit import compose
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings

ROLE = "relay"

RELAY_CLAIMS = Command("relay_claims", Empty, RelayReport)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A relay built from plain options (see RoleOptions)."""
    parts = role_parts(ROLE, settings, deps, RoleOptions.model_validate(options))
    relayer = ClaimRelayer(parts.agent, parts.settlement)
    parts.control.handle(RELAY_CLAIMS, lambda _: relayer.relay())
    return compose(parts.agent, parts.control, relayer)
