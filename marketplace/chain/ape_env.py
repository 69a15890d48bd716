"""Ape set-up that keeps compilation offline and Ape's data inside the project."""

from __future__ import annotations

import logging
import os

from marketplace.paths import project_root, state_dir


def configure_ape_environment() -> None:
    """Point py-solc-x at the repo's solc wrapper and Ape's data folder into the state dir.

    Must run before `ape` is imported; existing values (e.g. from the Makefile) win.
    """
    os.environ.setdefault("SOLCX_BINARY_PATH", str(project_root() / "tools" / "solc"))
    os.environ.setdefault("APE_DATA_FOLDER", str(state_dir() / "ape"))
    # Ape prints its lines through its own handler; a root handler that another library installs at import
    # (uagents calls logging.basicConfig) must not print each of them a second time on stderr.
    logging.getLogger("ape").propagate = False
