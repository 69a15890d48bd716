"""Agent settings: everything an agent needs besides its collaborators, in one small frozen object."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agents.blobs import BlobLimits
from agents.mods import Limits


def default_data_root() -> Path:
    """Where agents keep state unless told otherwise: `$AGORA_HOME/agents` (default `./.agora/agents`)."""
    return Path(os.environ.get("AGORA_HOME", ".agora")).resolve() / "agents"


@dataclass(frozen=True)
class AgentSettings:
    """How an agent runs: name, key seed, where it listens, where it keeps state, and its transport limits."""

    name: str
    seed: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    data_dir: Path | None = None
    public_url: str | None = None
    limits: Limits = field(default_factory=Limits)
    blob_limits: BlobLimits = field(default_factory=BlobLimits)
    envelope_ttl: float = 60.0
    concurrent_handlers: bool = False
    sync_reply_wait: float = 5.0
    listen: bool = True
    """False: the agent binds no HTTP server of its own; an AgentHost serves it at `public_url` (agents/host.py)."""

    def state_dir(self) -> Path:
        """This agent's data folder (SQLite store, uAgents key/value file)."""
        return Path(self.data_dir) if self.data_dir is not None else default_data_root() / self.name

    def advertised_host(self) -> str:
        """The host peers reach this agent at: `public_url`'s when set, else the one it binds."""
        if self.public_url:
            return urlsplit(self.public_url).hostname or self.host
        return self.host

    def __repr__(self) -> str:
        # The seed is key material: keep it out of logs and tracebacks.
        return f"AgentSettings(name={self.name!r}, host={self.host!r}, port={self.port}, data_dir={self.data_dir!r})"
