"""SQLite search fast path: raw sqlite3 pages equal the SQLAlchemy path's pages for the same queries."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import bech32

from marketplace.registry import RegistryStore
from marketplace.registry.models import Reputation, SearchQuery
from protocols.cards import AgentCard, Offering

MODELS = ["m-a", "m-b", "m-c"]
KINDS = ["inference", "training"]
ROLES = ["seller", "seller", "validator", "user"]


def _address(rng: random.Random) -> str:
    return str(bech32.bech32_encode("agent", bech32.convertbits(bytes([2]) + rng.randbytes(32), 8, 5)))


def _cards(rng: random.Random, count: int) -> list[AgentCard]:
    return [
        AgentCard(
            address=_address(rng),
            role=rng.choice(ROLES),  # type: ignore[arg-type]
            name=f"agent-{i}",
            endpoints=[f"http://10.0.0.{i % 250}:8000/submit"],
            # Several offerings per agent, prices often equal: exercises distinct agents and rank ties.
            offerings=[
                Offering(
                    model_id=rng.choice(MODELS),
                    job_kind=rng.choice(KINDS),
                    price_per_unit=rng.choice([10**15, 2 * 10**15, rng.randrange(10**15, 10**17)]),
                    capacity=1,
                )
                for _ in range(rng.randrange(0, 4))
            ],
            owner="0x" + rng.randbytes(20).hex(),
        )
        for i in range(count)
    ]


def _queries() -> list[SearchQuery]:
    queries = [SearchQuery(offset=offset, limit=limit) for offset, limit in [(0, 20), (5, 7), (150, 49), (190, 100)]]
    for role, kind, model, price, rep, seen in itertools.product(
        [None, "seller"], [None, "inference"], [None, "m-b"], [None, 2 * 10**15], [None, 3], [None, 50]
    ):
        for offset, limit in [(0, 20), (3, 5), (60, 100), (400, 10)]:
            queries.append(
                SearchQuery(
                    role=role,  # type: ignore[arg-type]
                    job_kind=kind,
                    model_id=model,
                    max_price=price,
                    min_reputation=rep,
                    seen_within=seen,
                    offset=offset,
                    limit=limit,
                )
            )
    return queries


async def test_fastPath_matchesSqlalchemyPath_forEveryFilterCombination(tmp_path: Path) -> None:
    rng = random.Random(7)
    store = await RegistryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}")
    try:
        now = 1_000_000.0
        await store.import_cards(_cards(rng, 150), now - 200, 100)  # expired by `now`: must not be listed
        await store.import_cards(_cards(rng, 120), now - 100, 3600)  # stale for seen_within=50
        await store.import_cards(_cards(rng, 180), now, 3600)
        owners = await store.owners()
        await store.set_reputations({o: Reputation(count=1, volume=1, score=rng.randrange(6)) for o in owners[::2]})
        fast = store._fast
        assert fast is not None
        nonempty = 0
        for query in _queries():
            store._fast = fast
            page, more = await store.search(query, now)
            store._fast = None
            reference, reference_more = await store.search(query, now)
            assert [e.to_json() for e in page] == [e.to_json() for e in reference], query
            assert more == reference_more, query
            nonempty += bool(page)
        assert nonempty > 100
    finally:
        await store.close()


async def test_fastPath_seesWritesMadeAfterOpening(tmp_path: Path) -> None:
    rng = random.Random(8)
    store = await RegistryStore.open(f"sqlite+aiosqlite:///{tmp_path / 'reg.db'}")
    try:
        assert store._fast is not None
        assert await store.search(SearchQuery(), 10.0) == ([], False)
        cards = _cards(rng, 3)
        await store.import_cards(cards, 10.0, 100)
        page, more = await store.search(SearchQuery(limit=2), 10.0)
        assert len(page) == 2
        assert more
        await store.import_cards(cards[:1], 10.0, 1)  # re-imported with a short ttl: lapses at 11
        page, more = await store.search(SearchQuery(limit=5), 12.0)
        assert {e.card.address for e in page} == {c.address for c in cards[1:]}
        assert not more
    finally:
        await store.close()
    assert store._fast is None
