"""Where agora finds its project files (contracts, node tools) and keeps its local state."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout that holds ape-config.yaml, contracts/ and node_modules/."""


def project_root() -> Path:
    """The agora checkout; `AGORA_PROJECT_ROOT` overrides it for relocated installs."""
    return Path(os.environ.get("AGORA_PROJECT_ROOT", PROJECT_ROOT)).resolve()


def state_dir() -> Path:
    """Local run state (chain pid file, deployment manifests, Ape data); `AGORA_HOME` overrides it."""
    return Path(os.environ.get("AGORA_HOME", project_root() / ".agora")).resolve()


def node_bin(name: str) -> Path:
    """Path of an executable installed by `npm ci` under node_modules/.bin."""
    return project_root() / "node_modules" / ".bin" / name


class MissingToolError(RuntimeError):
    """A node tool agora needs is not installed; the message says how to install it."""


def require_node_bin(name: str) -> Path:
    """Return node_modules/.bin/<name>, or raise MissingToolError with the fix."""
    path = node_bin(name)
    if not path.exists():
        raise MissingToolError(f"{name} not found at {path}: run `make bootstrap` (or `npm ci`) in {project_root()}")
    return path
