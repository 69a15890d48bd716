"""Wire compatibility: schema and protocol digests match the pinned tables (see protocols/digests.py)."""

from __future__ import annotations

import pytest
from uagents import Protocol

from protocols import digests


def test_modelDigests_matchPinnedTable() -> None:
    assert digests.current_model_digests() == digests.MODEL_DIGESTS


def test_protocolDigests_matchPinnedTable() -> None:
    assert digests.current_protocol_digests() == digests.PROTOCOL_DIGESTS


@pytest.mark.parametrize("module", digests.PROTOCOL_MODULES, ids=lambda m: m.__name__)
def test_spec_everyRoleBuildsAProtocol(module: object) -> None:
    spec = module.SPEC  # type: ignore[attr-defined]
    for role in spec.roles or [None]:
        protocol = Protocol(spec=spec, role=role)
        assert protocol.models
