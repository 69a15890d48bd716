"""Operator control: the economy runner (or any operator tool) tells an agent what to do next and reads results.

Commands are named and carry JSON arguments typed at both ends by the command's declaration
(`agents.capabilities.control.Command`); an agent obeys only the operator addresses it was built with.
"""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.errors import ErrorReply
from protocols.model import Model


class ControlCommand(Model):
    """Run the named command with JSON-encoded arguments (the command's argument model)."""

    command: str
    arguments: str


class ControlResult(Model):
    """The command's JSON-encoded result (the command's result model)."""

    command: str
    result: str


SPEC = ProtocolSpecification(
    name="agora-control",
    version="1.0.0",
    interactions={ControlCommand: {ControlResult, ErrorReply}, ControlResult: set()},  # type: ignore[dict-item,arg-type]  # uagents_core types specs with its own pydantic v2 Model
    roles={"operator": {ControlResult}, "agent": {ControlCommand}},
)
"""Roles: an agent receives commands; an operator receives results."""
