"""SQLite search fast path: the same ranked SELECTs as the SQLAlchemy path, run on a raw sqlite3 cursor."""

from __future__ import annotations

import functools
import sqlite3
from typing import Any

from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

MAX_INLINE_ROWS = 200
"""Pages reaching past this many ranked rows run in a worker thread: only shallow walks stay sub-millisecond."""

_DIALECT = SQLiteDialect_pysqlite(paramstyle="named")

AGENT_COLUMNS = "card_json, registered_at, last_seen, expires_at, rep_score, rep_count, rep_volume"
"""Column order of StoredAgent's fields (storage._agent_columns)."""


def compiled_sql(statement: Any) -> str:
    """SQL text of a SQLAlchemy statement for sqlite3 with :name parameters, so both paths run the same query."""
    return str(statement.compile(dialect=_DIALECT))


@functools.cache
def cards_sql(count: int) -> str:
    """SELECT of count agents' fields by address (one statement per page size, reused by sqlite3's cache)."""
    marks = ",".join("?" * count)
    # Only constants and "?" placeholders are spliced in; the addresses are bound parameters.
    return f"SELECT {AGENT_COLUMNS}, address FROM agents WHERE address IN ({marks})"  # noqa: S608


def connect(path: str) -> sqlite3.Connection:
    """A read connection in autocommit mode with the registry's pragmas, usable from any one thread at a time."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA query_only=1")
    return conn


def search_rows(
    conn: sqlite3.Connection, sql: str, params: dict[str, Any], offering_filters: bool, offset: int, limit: int
) -> tuple[list[tuple[Any, ...]], bool]:
    """Rows (StoredAgent fields then best price) of one page in rank order, and whether more follow."""
    if not offering_filters:
        rows = conn.execute(sql, {**params, "lim": limit + 1, "off": offset}).fetchall()
        return rows[:limit], len(rows) > limit
    # As distinct_agents in storage.search: walk (address, price) in rank order until enough distinct
    # agents are found, then read just this page's cards, all in one read transaction (one snapshot).
    wanted = offset + limit + 1
    found: dict[str, str] = {}
    batch, skip = wanted + 8, 0
    conn.execute("BEGIN")
    try:
        while len(found) < wanted:
            walked = conn.execute(sql, {**params, "lim": batch, "off": skip}).fetchall()
            for address, price in walked:
                found.setdefault(address, price)
            if len(walked) < batch:
                break
            skip, batch = skip + batch, batch * 2
        page = list(found.items())[offset : offset + limit]
        if not page:
            return [], False
        cards = {row[7]: row for row in conn.execute(cards_sql(len(page)), [address for address, _ in page])}
    finally:
        conn.execute("COMMIT")
    return [(*cards[address][:7], price) for address, price in page], len(found) > offset + limit
