"""Attack: bury the staked validators under a page of registry cards.

Auditors are picked from the stake-weighted on-chain order, matched to registry cards of role validator.
Before, the match read only the first 100 cards: anyone could publish 100 validator cards (free, a signature
each) ahead of the real ones and no staked validator would be found, so no call could be audited.
"""

from __future__ import annotations

import asyncio

import pytest

from agents.roles import validator as validator_role
from agents.wallet import Wallet
from marketplace.registry.client import RegistryClient
from protocols.cards import AgentCard, Offering
from tests.attacks.agent_world import chain, economy  # noqa: F401  # fixtures, by name
from tests.roles.world import World

pytestmark = pytest.mark.chain

SPAM = 120
CHEAP = Offering(model_id="audit", job_kind="validation", price_per_unit=0)
"""The registry lists the cheapest offer first: the spam cards rank ahead of every real validator's card."""


async def _spam_cards(registry_url: str, count: int) -> None:
    async def publish(i: int) -> None:
        spammer = Wallet.from_seed(f"spam-validator-{i}")
        card = AgentCard(
            address=spammer.agent_address,
            role="validator",
            name=f"spam-{i}",
            endpoints=[f"http://127.0.0.1:9/{i}"],
            offerings=[CHEAP],
            owner=spammer.eth_address,
        )
        async with RegistryClient(registry_url, spammer.identity) as client:
            await client.publish(card)

    for start in range(0, count, 20):
        await asyncio.gather(*(publish(i) for i in range(start, min(start + 20, count))))


async def test_hundred_spam_validator_cards_do_not_hide_the_staked_validators(economy: World) -> None:  # noqa: F811
    staked = [await economy.validator(validator_role, f"validator-{i}", published=True) for i in range(2)]
    await _spam_cards(economy.registry_url, SPAM)
    buyer = economy.settlement(Wallet.from_seed("paging-buyer"))
    ranked = await buyer.ranked_validators(b"\x07" * 32, exclude=set())
    assert sorted(entry.card.address for entry in ranked) == sorted(agent.address for agent in staked)
