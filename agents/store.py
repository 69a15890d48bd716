"""Durable per-agent state in one SQLite file: jobs, seen message ids, and key/value records (see agents/state.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL,
    data TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS seen_messages (sender TEXT NOT NULL, message_id TEXT NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (sender, message_id));
CREATE INDEX IF NOT EXISTS seen_messages_expiry ON seen_messages (expires);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class AgentStore:
    """An agent's durable state (SQLite, WAL): survives restarts so nothing is lost and replays stay closed."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Handlers run on one event loop thread; the lock only guards the rare helper thread.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        # WAL + synchronous=NORMAL: a commit is durable against process crashes without an fsync per message.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    # --- replay protection -------------------------------------------------------------------
    def remember_message(self, sender: str, message_id: str, expires: float) -> bool:
        """Record a message id for `sender` until `expires`; False if it was already recorded (a replay)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO seen_messages (sender, message_id, expires) VALUES (?, ?, ?)",
                (sender, message_id, expires),
            )
            return cursor.rowcount == 1

    def remember_messages(
        self, entries: list[tuple[str, str, float]], *, forget_before: float | None = None
    ) -> list[bool]:
        """`remember_message` for many (sender, id, expires) in one transaction; `forget_before` drops expired ids."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                if forget_before is not None:  # pruning shares the batch's commit
                    self._db.execute("DELETE FROM seen_messages WHERE expires < ?", (forget_before,))
                results = [
                    self._db.execute(
                        "INSERT OR IGNORE INTO seen_messages (sender, message_id, expires) VALUES (?, ?, ?)", entry
                    ).rowcount
                    == 1
                    for entry in entries
                ]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return results

    def forget_expired(self, now: float) -> int:
        """Drop message ids whose envelopes have expired (they are rejected by expiry anyway)."""
        with self._lock:
            return self._db.execute("DELETE FROM seen_messages WHERE expires < ?", (now,)).rowcount

    # --- jobs --------------------------------------------------------------------------------
    def put_job(self, job_id: str, kind: str, state: str, data: Mapping[str, Any], now: float) -> None:
        """Create or update a job record."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (job_id, kind, state, data, updated) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(job_id) DO UPDATE SET kind=excluded.kind, state=excluded.state, "
                "data=excluded.data, updated=excluded.updated",
                (job_id, kind, state, json.dumps(dict(data)), now),
            )

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """A job as {job_id, kind, state, data}, or None."""
        with self._lock:
            row = self._db.execute("SELECT job_id, kind, state, data FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return {"job_id": row[0], "kind": row[1], "state": row[2], "data": json.loads(row[3])}

    def list_jobs(self, state: str | None = None) -> list[dict[str, Any]]:
        """All jobs (optionally in one state), oldest update first."""
        query = "SELECT job_id, kind, state, data FROM jobs"
        params: tuple[str, ...] = ()
        if state is not None:
            query += " WHERE state = ?"
            params = (state,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY updated", params).fetchall()
        return [{"job_id": r[0], "kind": r[1], "state": r[2], "data": json.loads(r[3])} for r in rows]

    # --- small key/value state ----------------------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under `key`."""
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )

    def put_new(self, key: str, value: Any) -> bool:
        """Store `value` under `key` only if the key is new; False (nothing written) when it exists."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO kv (key, value) VALUES (?, ?)", (key, json.dumps(value)))
            return cursor.rowcount == 1

    def delete(self, key: str) -> None:
        """Remove `key` (no error if absent)."""
        with self._lock:
            self._db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def scan(self, prefix: str) -> list[tuple[str, Any]]:
        """Every (key, value) whose key starts with `prefix`, in key order."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\U0010ffff"
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key", (prefix, upper)
            ).fetchall()
        return [(row[0], json.loads(row[1])) for row in rows]

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default`."""
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])
