"""The wire base class: uAgents' `Model` (pydantic v1) at run time, seen by mypy as the typed pydantic v1 BaseModel."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # uagents ships no type information; its Model *is* a pydantic.v1 BaseModel, which mypy understands.
    from pydantic.v1 import BaseModel as Model
else:
    from uagents import Model

__all__ = ["Model"]
