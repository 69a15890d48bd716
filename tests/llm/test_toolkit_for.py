"""toolkit_for finds an agent's capabilities where compose recorded them, refuses an agent with none, and its tools
share one transcript in the agent's store (offline: no chain needed for these)."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from agents.base import running
from agents.capabilities.kit import Capability, compose, composed
from agents.capabilities.negotiation import NegotiationBuyer
from agents.testing.doubles import Probe
from agents.tools import toolkit_for
from agents.tools.base import NoArguments, Toolkit, ToolRefused, Transcript


class Echo(Toolkit):
    """A toolkit whose one tool succeeds, refuses, or fails as asked."""

    async def _act(self, args: BaseModel) -> str:
        raise ToolRefused("out_of_bounds", "too\nmuch")

    async def _fail(self, args: BaseModel) -> str:
        raise KeyError("no such thing")

    async def _ok(self, args: BaseModel) -> str:
        return "done"

    def tools(self) -> list[BaseTool]:
        return [
            self.tool("refuse", NoArguments, self._act, "Refuses."),
            self.tool("fail", NoArguments, self._fail, "Fails."),
            self.tool("ok", NoArguments, self._ok, "Works."),
        ]


async def test_compose_recordsCapabilitiesInOrderAcrossCalls(tmp_path: Path) -> None:
    probe, other = Probe.create(tmp_path / "probe"), Probe.create(tmp_path / "other")
    buyer, bare = NegotiationBuyer(probe), Capability(probe)

    compose(probe, buyer)
    compose(probe, bare)

    async with running(probe, other):
        assert composed(probe) == (buyer, bare)
        assert composed(other) == ()


async def test_toolkitFor_agentWithoutToolCapabilitiesRefused(tmp_path: Path) -> None:
    probe = Probe.create(tmp_path / "probe")
    compose(probe, NegotiationBuyer(probe))

    async with running(probe):
        with pytest.raises(LookupError, match="no capability with tools"):
            toolkit_for(probe)


async def test_tool_refusalsAndFailuresAreOneTypedLineInTheSharedTranscript(tmp_path: Path) -> None:
    probe = Probe.create(tmp_path / "probe")
    first, second = Echo(probe), Echo(probe)
    by_name = {t.name: t for t in first.tools()}

    async with running(probe):
        refused = await by_name["refuse"].ainvoke({})
        failed = await by_name["fail"].ainvoke({})
        extra = await by_name["ok"].ainvoke({"pay_to": "0xdead"})
        done = await next(t for t in second.tools() if t.name == "ok").ainvoke({})
        log = Transcript(probe).entries()
        report = first.report()

    assert refused == "error[out_of_bounds]: too much"
    assert failed == "error[failed]: KeyError: 'no such thing'"
    assert extra.startswith("error[invalid_arguments]: ")
    assert done == "done"
    assert [(e.seq, e.tool, e.ok) for e in log] == [(0, "refuse", False), (1, "fail", False), (2, "ok", False),
                                                    (3, "ok", True)]  # fmt: skip
    assert report.calls == log
