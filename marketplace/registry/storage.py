"""Registry storage: SQLAlchemy 2 async over SQLite (default, WAL) or Postgres (by URL), with versioned migrations."""

from __future__ import annotations

import asyncio
import functools
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from marketplace.paths import state_dir
from marketplace.registry import sqlite_search
from marketplace.registry.models import Reputation, SearchQuery
from marketplace.registry.schema import MIGRATIONS, PRICE_DIGITS, agents, offerings, write_nonces
from protocols.cards import AgentCard, SignedWrite

T = TypeVar("T")
MIGRATION_LOCK_ID = 0x61676F7261  # "agora": the Postgres advisory lock held while migrating


class WriteRefused(Exception):
    """A signed write that storage refused; nothing was changed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class StoredAgent:
    """An agent entry as stored: its card plus registry bookkeeping (built per search row, so kept plain)."""

    __slots__ = (
        "best_price",
        "card_json",
        "expires_at",
        "last_seen",
        "registered_at",
        "rep_count",
        "rep_score",
        "rep_volume",
    )

    def __init__(self, fields: Sequence[Any], best_price: str | None) -> None:
        # fields: the columns of _agent_columns() in order (SQLAlchemy row or plain tuple; extra ones ignored).
        self.card_json: str
        self.registered_at: float
        self.last_seen: float
        self.expires_at: float
        self.rep_score: int
        self.rep_count: int
        self.rep_volume: str
        (
            self.card_json,
            self.registered_at,
            self.last_seen,
            self.expires_at,
            self.rep_score,
            self.rep_count,
            self.rep_volume,
        ) = fields[:7]
        self.best_price: str | None = best_price

    @property
    def card(self) -> AgentCard:
        """The card, parsed."""
        return AgentCard.model_validate_json(self.card_json)

    @property
    def reputation(self) -> Reputation:
        """Reputation as last read from the chain."""
        return Reputation(count=self.rep_count, volume=int(self.rep_volume), score=self.rep_score)

    def to_json(self) -> str:
        """JSON of an AgentEntry, splicing the stored card text in rather than re-serializing it (search hot path)."""
        price = "null" if self.best_price is None else self.best_price.lstrip("0") or "0"
        volume = self.rep_volume.lstrip("0") or "0"
        # Stored times are finite floats and the rest are integers, so repr()/str() are valid JSON here.
        return (
            f'{{"card":{self.card_json},"registered_at":{self.registered_at!r},"last_seen":{self.last_seen!r},'
            f'"expires_at":{self.expires_at!r},"reputation":{{"count":{self.rep_count},"volume":{volume},'
            f'"score":{self.rep_score}}},"best_price":{price}}}'
        )


def _offering_rows(card: AgentCard, suffix: str) -> list[dict[str, Any]]:
    """The offerings-table rows of a card; `suffix` completes each rank key after the price."""
    return [
        {
            "address": card.address,
            "position": i,
            "model_id": o.model_id,
            "job_kind": o.job_kind,
            "price": price_key(o.price_per_unit),
            "capacity": o.capacity,
            "rank_key": price_key(o.price_per_unit) + suffix,
        }
        for i, o in enumerate(card.offerings)
    ]


def price_key(amount: int) -> str:
    """The sortable text form of a uint256 amount."""
    return str(amount).zfill(PRICE_DIGITS)


NO_PRICE = "9" * PRICE_DIGITS
"""Sorts after every real price (uint256 has 78 digits and starts with 1 at most)."""


def rank_suffix(rep_score: int, last_seen: float, address: str) -> str:
    """The tie-breaking tail of a rank key: higher reputation, then newer heartbeat, then address."""
    return f"{2**62 - rep_score:019d}{10**15 - int(last_seen * 1000):015d}{address}"


def default_database_url() -> str:
    """SQLite file in agora's state dir."""
    return f"sqlite+aiosqlite:///{state_dir() / 'registry.db'}"


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Autocommit at the driver level so SQLAlchemy's "begin" hook below decides how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Several registry processes may share one file: wait for the writer lock instead of failing.
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Take SQLite's write lock at BEGIN: a deferred read→write upgrade fails at once under contention.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class RegistryStore:
    """Agent cards, offerings and seen write nonces in one SQL database."""

    def __init__(
        self, url: str, reader: AsyncEngine | Engine, writer: AsyncEngine, fast: sqlite3.Connection | None = None
    ) -> None:
        self.url = url
        self._reader = reader
        self._writer = writer
        # SQLite file only: a raw read connection used on the event loop for shallow searches, whose
        # sub-millisecond queries cost less than a worker-thread hop plus SQLAlchemy's row machinery.
        self._fast = fast

    @classmethod
    async def open(cls, url: str | None = None) -> RegistryStore:
        """Connect to url (default: the SQLite file in the state dir), migrate, and return the store."""
        url = url or default_database_url()
        if _is_sqlite(url):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Reads go through the synchronous pysqlite driver, one worker-thread hop per read: aiosqlite
            # hops threads for every cursor call, which cost ~10x the query itself on the search path.
            reader: AsyncEngine | Engine = create_engine(
                url.replace("+aiosqlite", ""), pool_size=8, max_overflow=8, connect_args={"check_same_thread": False}
            )
            event.listen(reader, "connect", _sqlite_pragmas)
            # One pooled writer connection serializes this process's writes; BEGIN IMMEDIATE serializes processes.
            writer = create_async_engine(url, pool_size=1, max_overflow=0)
            event.listen(writer.sync_engine, "connect", _sqlite_pragmas)
            event.listen(writer.sync_engine, "begin", _begin_immediate)
        else:
            reader = writer = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        store = cls(url, reader, writer)
        try:
            await store.migrate()
            if _is_sqlite(url) and path and path != ":memory:":
                store._fast = sqlite_search.connect(path)  # after migrating: the file exists, in WAL mode
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Dispose both engines."""
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        if isinstance(self._reader, Engine):
            self._reader.dispose()
        elif self._reader is not self._writer:
            await self._reader.dispose()
        await self._writer.dispose()

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run a read-only function on a connection: in a worker thread (SQLite) or via the async engine."""
        reader = self._reader
        if isinstance(reader, Engine):

            def run() -> T:
                with reader.connect() as conn:
                    return fn(conn)

            return await asyncio.to_thread(run)
        async with reader.connect() as conn:
            return await conn.run_sync(fn)

    async def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in place."""
        async with self._writer.begin() as conn:
            if not _is_sqlite(self.url):
                # Postgres: registry processes starting together migrate one at a time (even CREATE TABLE
                # IF NOT EXISTS races there). SQLite's BEGIN IMMEDIATE already serializes this transaction.
                await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})")
            await conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            rows = await conn.exec_driver_sql("SELECT version FROM schema_migrations")
            done = {int(r[0]) for r in rows}
            for version, name, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    await conn.exec_driver_sql(statement)
                await conn.execute(
                    text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"),
                    {"v": version, "n": name, "t": time.time()},
                )
        return MIGRATIONS[-1][0]

    async def schema_version(self) -> int:
        """Highest applied migration."""
        value = await self._read(lambda c: c.exec_driver_sql("SELECT MAX(version) FROM schema_migrations").scalar())
        return int(value or 0)

    async def registry_id(self) -> str:
        """This database's registry id: made up at random on first use, then kept (shared by every process on it)."""
        async with self._writer.begin() as conn:
            # Both SQLite and Postgres take ON CONFLICT: registries starting together agree on the first id.
            await conn.execute(
                text(
                    "INSERT INTO registry_meta (name, value) VALUES ('registry_id', :v) ON CONFLICT (name) DO NOTHING"
                ),
                {"v": "registry-" + secrets.token_hex(16)},
            )
            value = (await conn.execute(text("SELECT value FROM registry_meta WHERE name = 'registry_id'"))).scalar()
        return str(value)

    # --- writes ------------------------------------------------------------------------------

    async def apply(self, write: SignedWrite, now: float, ttl: float) -> None:
        """Apply an already signature-checked write atomically with its nonce; raise WriteRefused otherwise."""
        async with self._writer.begin() as conn:
            try:
                await conn.execute(insert(write_nonces).values(address=write.address, nonce=write.nonce, seen_at=now))
            except IntegrityError:
                raise WriteRefused(403, "replayed", "this nonce was already used by this agent") from None
            current = (await conn.execute(select(agents.c.expires_at).where(agents.c.address == write.address))).first()
            live = current is not None and current.expires_at > now
            if write.action == "register":
                if live:
                    raise WriteRefused(409, "exists", "agent is already registered; send an update instead")
                if current is not None:
                    await self._delete(conn, write.address)
                assert write.card is not None
                await self._insert(conn, write.card, now, ttl)
            elif not live:
                raise WriteRefused(404, "not_found", "agent is not registered (or its entry expired)")
            elif write.action == "update":
                assert write.card is not None
                await self._replace(conn, write.card, now, ttl)
            elif write.action == "heartbeat":
                rep_score = (
                    await conn.execute(select(agents.c.rep_score).where(agents.c.address == write.address))
                ).scalar_one()
                await conn.execute(
                    update(agents).where(agents.c.address == write.address).values(last_seen=now, expires_at=now + ttl)
                )
                await self._rerank(conn, write.address, int(rep_score), now)
            else:
                await self._delete(conn, write.address)

    async def _insert(self, conn: AsyncConnection, card: AgentCard, now: float, ttl: float) -> None:
        min_price = price_key(min(o.price_per_unit for o in card.offerings)) if card.offerings else None
        suffix = rank_suffix(0, now, card.address)
        await conn.execute(
            insert(agents).values(
                address=card.address,
                role=card.role,
                owner=card.owner.lower(),
                card_json=card.model_dump_json(),
                registered_at=now,
                updated_at=now,
                last_seen=now,
                expires_at=now + ttl,
                min_price=min_price,
                rank_key=(min_price or NO_PRICE) + suffix,
            )
        )
        await self._insert_offerings(conn, card, suffix)

    async def _insert_offerings(self, conn: AsyncConnection, card: AgentCard, suffix: str) -> None:
        if card.offerings:
            await conn.execute(
                insert(offerings),
                _offering_rows(card, suffix),
            )

    async def _rerank(self, conn: AsyncConnection, address: str, rep_score: int, last_seen: float) -> None:
        # Reputation and recency are part of every rank key of the agent, so they move together.
        suffix = rank_suffix(rep_score, last_seen, address)
        await conn.execute(
            update(agents)
            .where(agents.c.address == address)
            .values(rank_key=func.coalesce(agents.c.min_price, NO_PRICE) + suffix)
        )
        await conn.execute(
            update(offerings).where(offerings.c.address == address).values(rank_key=offerings.c.price + suffix)
        )

    async def _replace(self, conn: AsyncConnection, card: AgentCard, now: float, ttl: float) -> None:
        previous = (
            await conn.execute(select(agents.c.owner, agents.c.rep_score).where(agents.c.address == card.address))
        ).one()
        min_price = price_key(min(o.price_per_unit for o in card.offerings)) if card.offerings else None
        values: dict[str, Any] = {
            "role": card.role,
            "owner": card.owner.lower(),
            "card_json": card.model_dump_json(),
            "updated_at": now,
            "last_seen": now,
            "expires_at": now + ttl,
            "min_price": min_price,
        }
        rep_score = int(previous.rep_score)
        if previous.owner != card.owner.lower():
            # Reputation belongs to the owner account; a new owner starts from what the chain says about it.
            rep_score = 0
            values.update(rep_score=0, rep_count=0, rep_volume="0" * PRICE_DIGITS)
        suffix = rank_suffix(rep_score, now, card.address)
        values["rank_key"] = (min_price or NO_PRICE) + suffix
        await conn.execute(update(agents).where(agents.c.address == card.address).values(**values))
        await conn.execute(delete(offerings).where(offerings.c.address == card.address))
        await self._insert_offerings(conn, card, suffix)

    async def _delete(self, conn: AsyncConnection, address: str) -> None:
        await conn.execute(delete(offerings).where(offerings.c.address == address))
        await conn.execute(delete(agents).where(agents.c.address == address))

    async def set_reputation(self, owner: str, reputation: Reputation, only_agent: str | None = None) -> None:
        """Record an owner's reputation on its agents; with only_agent, the others claiming that owner get zero."""
        await self.set_reputations({owner: reputation}, {owner: only_agent})

    async def set_reputations(
        self, reputations: dict[str, Reputation], only_agents: dict[str, str | None] | None = None
    ) -> None:
        """Record reputations of several owners in one transaction (see set_reputation for only_agents)."""
        async with self._writer.begin() as conn:
            for owner, owner_reputation in reputations.items():
                only = (only_agents or {}).get(owner)
                owned = (
                    await conn.execute(
                        select(agents.c.address, agents.c.last_seen, agents.c.rep_score, agents.c.rep_count).where(
                            agents.c.owner == owner.lower()
                        )
                    )
                ).all()
                for row in owned:
                    # A card's owner field is only a claim: reputation goes to the agent the owner vouches for.
                    reputation = owner_reputation if only is None or row.address == only else Reputation()
                    if (row.rep_score, row.rep_count) == (reputation.score, reputation.count):
                        continue  # most refreshes change nothing: skip the writes
                    await conn.execute(
                        update(agents)
                        .where(agents.c.address == row.address)
                        .values(
                            rep_score=reputation.score,
                            rep_count=reputation.count,
                            rep_volume=price_key(reputation.volume),
                        )
                    )
                    await self._rerank(conn, row.address, reputation.score, row.last_seen)

    async def import_cards(self, cards: list[AgentCard], now: float, ttl: float) -> int:
        """Bulk-load cards whose signatures were checked elsewhere (restores, benchmarks), in one transaction."""
        agent_rows: list[dict[str, Any]] = []
        offering_rows: list[dict[str, Any]] = []
        for card in cards:
            min_price = price_key(min(o.price_per_unit for o in card.offerings)) if card.offerings else None
            suffix = rank_suffix(0, now, card.address)
            agent_rows.append(
                {
                    "address": card.address,
                    "role": card.role,
                    "owner": card.owner.lower(),
                    "card_json": card.model_dump_json(),
                    "registered_at": now,
                    "updated_at": now,
                    "last_seen": now,
                    "expires_at": now + ttl,
                    "min_price": min_price,
                    "rank_key": (min_price or NO_PRICE) + suffix,
                }
            )
            offering_rows += _offering_rows(card, suffix)
        async with self._writer.begin() as conn:
            addresses = [card.address for card in cards]
            for start in range(0, len(addresses), 500):
                chunk = addresses[start : start + 500]
                await conn.execute(delete(offerings).where(offerings.c.address.in_(chunk)))
                await conn.execute(delete(agents).where(agents.c.address.in_(chunk)))
            if agent_rows:
                await conn.execute(insert(agents), agent_rows)
            if offering_rows:
                await conn.execute(insert(offerings), offering_rows)
        return len(cards)

    async def purge(self, now: float, nonce_cutoff: float) -> tuple[int, int]:
        """Delete expired entries and nonces seen before nonce_cutoff; returns (entries, nonces) removed."""
        async with self._writer.begin() as conn:
            expired = [r[0] for r in await conn.execute(select(agents.c.address).where(agents.c.expires_at <= now))]
            for address in expired:
                await self._delete(conn, address)
            result = await conn.execute(delete(write_nonces).where(write_nonces.c.seen_at < nonce_cutoff))
        return len(expired), int(result.rowcount)

    # --- reads -------------------------------------------------------------------------------

    async def get(self, address: str, now: float) -> StoredAgent | None:
        """The live entry for address, or None."""
        params = {"address": address, "now": now}
        row = await self._read(lambda c: c.execute(_GET_STATEMENT, params).first())
        return None if row is None else StoredAgent(row, row.best_price)

    async def endpoints(self, address: str, now: float) -> list[str] | None:
        """Endpoints of a live agent (None if unknown or expired)."""
        entry = await self.get(address, now)
        return None if entry is None else list(entry.card.endpoints)

    async def search(self, query: SearchQuery, now: float) -> tuple[list[StoredAgent], bool]:
        """Live agents matching query in ranking order; returns (page, whether more follow).

        Every agent and offering row carries a rank key (price, inverted reputation, inverted heartbeat
        time, address, as fixed-width text), so a search walks one index in order and stops after a page.
        """
        params: dict[str, Any] = {"now": now}
        if query.role is not None:
            params["role"] = query.role
        if query.min_reputation is not None:
            params["min_rep"] = query.min_reputation
        if query.seen_within is not None:
            params["seen_after"] = now - query.seen_within
        if query.job_kind is not None:
            params["job_kind"] = query.job_kind
        if query.model_id is not None:
            params["model_id"] = query.model_id
        if query.max_price is not None:
            # Rank keys start with the price, so "price <= max" is a range on the same index. Keys hold
            # only digits and lowercase letters, so the bound compares the same under any collation.
            params["max_rank"] = price_key(query.max_price + 1)
        filters = frozenset(params)
        stmt = _search_statement(filters)
        if self._fast is not None and query.offset + query.limit < sqlite_search.MAX_INLINE_ROWS:
            rows, more = sqlite_search.search_rows(
                self._fast, _search_sql(filters), params, bool(filters & OFFERING_FILTERS), query.offset, query.limit
            )
            return [StoredAgent(row, row[7]) for row in rows], more
        return await self._search_sqlalchemy(query, stmt, params)

    async def _search_sqlalchemy(
        self, query: SearchQuery, stmt: Any, params: dict[str, Any]
    ) -> tuple[list[StoredAgent], bool]:
        if not params.keys() & OFFERING_FILTERS:
            params.update(lim=query.limit + 1, off=query.offset)
            rows = await self._read(lambda c: c.execute(stmt, params).all())
            return [StoredAgent(r, r.best_price) for r in rows[: query.limit]], len(rows) > query.limit

        def distinct_agents(conn: Connection) -> tuple[list[Any], bool]:
            # An agent appears once per matching offering; its first (cheapest) one places it. Walk
            # (address, price) in rank order until enough distinct agents are found, then read the
            # cards of just this page.
            wanted = query.offset + query.limit + 1
            found: dict[str, str] = {}
            batch, skip = wanted + 8, 0  # most agents list one matching offering
            while len(found) < wanted:
                rows = conn.execute(stmt, {**params, "lim": batch, "off": skip}).all()
                for address, price in rows:
                    found.setdefault(address, price)
                if len(rows) < batch:
                    break
                skip, batch = skip + batch, batch * 2
            page = list(found.items())[query.offset : query.offset + query.limit]
            if not page:
                return [], False
            cards = {
                row.address: row
                for row in conn.execute(_CARDS_STATEMENT, {"addresses": [address for address, _ in page]})
            }
            return [(cards[address], price) for address, price in page], len(found) > query.offset + query.limit

        page, more = await self._read(distinct_agents)
        return [StoredAgent(row, price) for row, price in page], more

    async def owners(self) -> list[str]:
        """Distinct owner accounts of stored agents."""
        return await self._read(lambda c: [str(r[0]) for r in c.execute(select(agents.c.owner).distinct())])

    async def count(self, now: float) -> int:
        """Number of live entries."""
        value = await self._read(lambda c: c.execute(select(func.count()).where(agents.c.expires_at > now)).scalar())
        return int(value or 0)

    async def nonce_count(self) -> int:
        """Number of remembered write nonces (for tests and metrics)."""
        value = await self._read(lambda c: c.execute(select(func.count()).select_from(write_nonces)).scalar())
        return int(value or 0)


def _agent_columns() -> Sequence[Any]:
    return (
        agents.c.card_json,
        agents.c.registered_at,
        agents.c.last_seen,
        agents.c.expires_at,
        agents.c.rep_score,
        agents.c.rep_count,
        agents.c.rep_volume,
    )


OFFERING_FILTERS = frozenset({"job_kind", "model_id", "max_rank"})


@functools.cache
def _search_statement(filters: frozenset[str]) -> Any:
    """The search SELECT for one combination of filters, built once: values are bound at execution."""
    conditions = [agents.c.expires_at > bindparam("now")]
    if "role" in filters:
        conditions.append(agents.c.role == bindparam("role"))
    if "min_rep" in filters:
        conditions.append(agents.c.rep_score >= bindparam("min_rep"))
    if "seen_after" in filters:
        conditions.append(agents.c.last_seen >= bindparam("seen_after"))
    if not filters & OFFERING_FILTERS:
        return (
            select(*_agent_columns(), agents.c.min_price.label("best_price"))
            .where(and_(*conditions))
            .order_by(agents.c.rank_key)
            .limit(bindparam("lim"))
            .offset(bindparam("off"))
        )
    if "job_kind" in filters:
        conditions.append(offerings.c.job_kind == bindparam("job_kind"))
    if "model_id" in filters:
        conditions.append(offerings.c.model_id == bindparam("model_id"))
    if "max_rank" in filters:
        conditions.append(offerings.c.rank_key < bindparam("max_rank"))
    return (
        select(offerings.c.address, offerings.c.price)
        .select_from(offerings.join(agents, agents.c.address == offerings.c.address))
        .where(and_(*conditions))
        .order_by(offerings.c.rank_key)
        .limit(bindparam("lim"))
        .offset(bindparam("off"))
    )


@functools.cache
def _search_sql(filters: frozenset[str]) -> str:
    """The search SELECT for one combination of filters as sqlite3 SQL text."""
    return sqlite_search.compiled_sql(_search_statement(filters))


_CARDS_STATEMENT = select(*_agent_columns(), agents.c.address).where(
    agents.c.address.in_(bindparam("addresses", expanding=True))
)

_GET_STATEMENT = select(*_agent_columns(), agents.c.min_price.label("best_price")).where(
    agents.c.address == bindparam("address"), agents.c.expires_at > bindparam("now")
)
