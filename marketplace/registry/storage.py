"""Registry storage: SQLAlchemy 2 async over SQLite (default, WAL) or Postgres (by URL), with versioned migrations."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
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
from marketplace.registry.models import Reputation, SearchQuery
from protocols.cards import AgentCard, SignedWrite

PRICE_DIGITS = 78
"""Prices are uint256; stored as zero-padded decimal text so they sort and compare exactly in any SQL engine."""

metadata = MetaData()

agents = Table(
    "agents",
    metadata,
    Column("address", String(65), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("owner", String(42), nullable=False),
    Column("card_json", Text, nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("min_price", String(PRICE_DIGITS)),
    Column("rep_score", Integer, nullable=False, default=0),
    Column("rep_count", Integer, nullable=False, default=0),
    Column("rep_volume", String(PRICE_DIGITS), nullable=False, default="0" * PRICE_DIGITS),
)

offerings = Table(
    "offerings",
    metadata,
    Column("address", String(65), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("model_id", String(128), nullable=False),
    Column("job_kind", String(128), nullable=False),
    Column("price", String(PRICE_DIGITS), nullable=False),
    Column("capacity", Integer, nullable=False),
)

write_nonces = Table(
    "write_nonces",
    metadata,
    Column("address", String(65), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", Float, nullable=False),
)

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "agents, offerings, write nonces",
        [
            """CREATE TABLE agents (
                address VARCHAR(65) PRIMARY KEY, role VARCHAR(16) NOT NULL, owner VARCHAR(42) NOT NULL,
                card_json TEXT NOT NULL, registered_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL, min_price VARCHAR(78),
                rep_score BIGINT NOT NULL DEFAULT 0, rep_count BIGINT NOT NULL DEFAULT 0,
                rep_volume VARCHAR(78) NOT NULL DEFAULT '"""
            + "0" * PRICE_DIGITS
            + """')""",
            "CREATE INDEX ix_agents_rank ON agents (min_price, rep_score, last_seen)",
            "CREATE INDEX ix_agents_role ON agents (role, expires_at)",
            "CREATE INDEX ix_agents_owner ON agents (owner)",
            "CREATE INDEX ix_agents_expires ON agents (expires_at)",
            """CREATE TABLE offerings (
                address VARCHAR(65) NOT NULL, position INTEGER NOT NULL, model_id VARCHAR(128) NOT NULL,
                job_kind VARCHAR(128) NOT NULL, price VARCHAR(78) NOT NULL, capacity INTEGER NOT NULL,
                PRIMARY KEY (address, position))""",
            "CREATE INDEX ix_offerings_kind ON offerings (job_kind, price, address)",
            "CREATE INDEX ix_offerings_model ON offerings (model_id, price, address)",
            """CREATE TABLE write_nonces (
                address VARCHAR(65) NOT NULL, nonce VARCHAR(64) NOT NULL, seen_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (address, nonce))""",
            "CREATE INDEX ix_write_nonces_seen ON write_nonces (seen_at)",
        ],
    ),
]
"""Forward-only schema versions; each runs once, in one transaction, recorded in schema_migrations."""


class WriteRefused(Exception):
    """A signed write that storage refused; nothing was changed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredAgent:
    """An agent entry as stored: its card plus registry bookkeeping."""

    card_json: str
    registered_at: float
    last_seen: float
    expires_at: float
    reputation: Reputation
    best_price: int | None

    @property
    def card(self) -> AgentCard:
        """The card, parsed."""
        return AgentCard.model_validate_json(self.card_json)


def price_key(amount: int) -> str:
    """The sortable text form of a uint256 amount."""
    return str(amount).zfill(PRICE_DIGITS)


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

    def __init__(self, url: str, reader: AsyncEngine, writer: AsyncEngine) -> None:
        self.url = url
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str | None = None) -> RegistryStore:
        """Connect to url (default: the SQLite file in the state dir), migrate, and return the store."""
        url = url or default_database_url()
        if _is_sqlite(url):
            path = url.split(":///", 1)[1] if ":///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            reader = create_async_engine(url, pool_size=4, max_overflow=4)
            # One pooled writer connection serializes this process's writes; BEGIN IMMEDIATE serializes processes.
            writer = create_async_engine(url, pool_size=1, max_overflow=0)
            for engine in (reader, writer):
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(writer.sync_engine, "begin", _begin_immediate)
        else:
            reader = writer = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
        store = cls(url, reader, writer)
        try:
            await store.migrate()
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        """Dispose both engines."""
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()

    async def migrate(self) -> int:
        """Apply pending migrations; returns the schema version now in place."""
        async with self._writer.begin() as conn:
            await conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
            )
            if not _is_sqlite(self.url):
                # Postgres: concurrent registry processes starting together migrate one at a time.
                await conn.exec_driver_sql("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
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
        async with self._reader.connect() as conn:
            value = (await conn.exec_driver_sql("SELECT MAX(version) FROM schema_migrations")).scalar()
        return int(value or 0)

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
                await conn.execute(
                    update(agents).where(agents.c.address == write.address).values(last_seen=now, expires_at=now + ttl)
                )
            else:
                await self._delete(conn, write.address)

    async def _insert(self, conn: AsyncConnection, card: AgentCard, now: float, ttl: float) -> None:
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
                min_price=price_key(min(o.price_per_unit for o in card.offerings)) if card.offerings else None,
            )
        )
        await self._insert_offerings(conn, card)

    async def _insert_offerings(self, conn: AsyncConnection, card: AgentCard) -> None:
        if card.offerings:
            await conn.execute(
                insert(offerings),
                [
                    {
                        "address": card.address,
                        "position": i,
                        "model_id": o.model_id,
                        "job_kind": o.job_kind,
                        "price": price_key(o.price_per_unit),
                        "capacity": o.capacity,
                    }
                    for i, o in enumerate(card.offerings)
                ],
            )

    async def _replace(self, conn: AsyncConnection, card: AgentCard, now: float, ttl: float) -> None:
        previous_owner = (await conn.execute(select(agents.c.owner).where(agents.c.address == card.address))).scalar()
        values: dict[str, Any] = {
            "role": card.role,
            "owner": card.owner.lower(),
            "card_json": card.model_dump_json(),
            "updated_at": now,
            "last_seen": now,
            "expires_at": now + ttl,
            "min_price": price_key(min(o.price_per_unit for o in card.offerings)) if card.offerings else None,
        }
        if previous_owner != card.owner.lower():
            # Reputation belongs to the owner account; a new owner starts from what the chain says about it.
            values.update(rep_score=0, rep_count=0, rep_volume="0" * PRICE_DIGITS)
        await conn.execute(update(agents).where(agents.c.address == card.address).values(**values))
        await conn.execute(delete(offerings).where(offerings.c.address == card.address))
        await self._insert_offerings(conn, card)

    async def _delete(self, conn: AsyncConnection, address: str) -> None:
        await conn.execute(delete(offerings).where(offerings.c.address == address))
        await conn.execute(delete(agents).where(agents.c.address == address))

    async def set_reputation(self, owner: str, reputation: Reputation) -> None:
        """Record the chain's reputation for every agent owned by owner."""
        async with self._writer.begin() as conn:
            await conn.execute(
                update(agents)
                .where(agents.c.owner == owner.lower())
                .values(rep_score=reputation.score, rep_count=reputation.count, rep_volume=price_key(reputation.volume))
            )

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
        async with self._reader.connect() as conn:
            row = (
                await conn.execute(
                    select(*_agent_columns(), agents.c.min_price.label("best_price")).where(
                        agents.c.address == address, agents.c.expires_at > now
                    )
                )
            ).first()
        return None if row is None else _stored(row)

    async def endpoints(self, address: str, now: float) -> list[str] | None:
        """Endpoints of a live agent (None if unknown or expired)."""
        entry = await self.get(address, now)
        return None if entry is None else list(entry.card.endpoints)

    async def search(self, query: SearchQuery, now: float) -> tuple[list[StoredAgent], bool]:
        """Live agents matching query in ranking order; returns (page, whether more follow)."""
        conditions = [agents.c.expires_at > now]
        if query.role is not None:
            conditions.append(agents.c.role == query.role)
        if query.min_reputation is not None:
            conditions.append(agents.c.rep_score >= query.min_reputation)
        if query.seen_within is not None:
            conditions.append(agents.c.last_seen >= now - query.seen_within)
        offer_conditions = []
        if query.job_kind is not None:
            offer_conditions.append(offerings.c.job_kind == query.job_kind)
        if query.model_id is not None:
            offer_conditions.append(offerings.c.model_id == query.model_id)
        if query.max_price is not None:
            offer_conditions.append(offerings.c.price <= price_key(query.max_price))
        if offer_conditions:
            # The agent's best price among the offerings that match is what it ranks by.
            best = (
                select(offerings.c.address, func.min(offerings.c.price).label("best_price"))
                .where(and_(*offer_conditions))
                .group_by(offerings.c.address)
                .subquery()
            )
            stmt = select(*_agent_columns(), best.c.best_price).select_from(
                agents.join(best, agents.c.address == best.c.address)
            )
            price_col: Any = best.c.best_price
        else:
            stmt = select(*_agent_columns(), agents.c.min_price.label("best_price"))
            price_col = agents.c.min_price
        stmt = (
            stmt.where(and_(*conditions))
            .order_by(
                price_col.asc().nulls_last(), agents.c.rep_score.desc(), agents.c.last_seen.desc(), agents.c.address
            )
            .limit(query.limit + 1)
            .offset(query.offset)
        )
        async with self._reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_stored(r) for r in rows[: query.limit]], len(rows) > query.limit

    async def owners(self) -> list[str]:
        """Distinct owner accounts of stored agents."""
        async with self._reader.connect() as conn:
            return [r[0] for r in await conn.execute(select(agents.c.owner).distinct())]

    async def count(self, now: float) -> int:
        """Number of live entries."""
        async with self._reader.connect() as conn:
            value = (await conn.execute(select(func.count()).where(agents.c.expires_at > now))).scalar()
        return int(value or 0)

    async def nonce_count(self) -> int:
        """Number of remembered write nonces (for tests and metrics)."""
        async with self._reader.connect() as conn:
            value = (await conn.execute(select(func.count()).select_from(write_nonces))).scalar()
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


def _stored(row: Any) -> StoredAgent:
    return StoredAgent(
        card_json=row.card_json,
        registered_at=row.registered_at,
        last_seen=row.last_seen,
        expires_at=row.expires_at,
        reputation=Reputation(count=int(row.rep_count), volume=int(row.rep_volume), score=int(row.rep_score)),
        best_price=None if row.best_price is None else int(row.best_price),
    )


def card_dict(entry: StoredAgent) -> dict[str, Any]:
    """The card as a JSON-ready dict without re-validating it (it was validated on the way in)."""
    card: dict[str, Any] = json.loads(entry.card_json)
    return card
