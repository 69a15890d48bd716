"""The merchant: a shop that sells to users and takes, with each paid purchase, one conversion commitment for the
campaign that brought the buyer; it publishes Merkle roots of the commitments on chain for users to prove against.
Composition: merchant book + control.
"""

from __future__ import annotations

from typing import Any

from agents.base import AgentDeps, AgoraAgent
from agents.capabilities.ads.merchant import MerchantBook, MerchantOptions, RootsPublished
from agents.capabilities.control import Command, Empty
from agents.capabilities.kit import compose
from agents.roles.base import RoleOptions, role_parts
from agents.settings import AgentSettings

ROLE = "merchant"


class ShopOptions(RoleOptions):
    """A merchant's options: the common ones plus its price and root policy."""

    shop: MerchantOptions = MerchantOptions()


PUBLISH_ROOTS = Command("publish_roots", Empty, RootsPublished)


def build(settings: AgentSettings, deps: AgentDeps, options: dict[str, Any]) -> AgoraAgent:
    """A merchant built from plain options (see ShopOptions)."""
    opts = ShopOptions.model_validate(options)
    parts = role_parts(ROLE, settings, deps, opts)
    book = MerchantBook(parts.agent, parts.settlement, opts.shop)
    parts.control.handle(PUBLISH_ROOTS, lambda _: book.publish_roots())
    return compose(parts.agent, parts.control, book)
