"""Durable per-agent state in one SQLite file: jobs, payment channels, vouchers and seen message ids."""

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
CREATE TABLE IF NOT EXISTS channels (channel_id TEXT PRIMARY KEY, peer TEXT NOT NULL, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vouchers (channel_id TEXT NOT NULL, nonce INTEGER NOT NULL,
    cumulative_amount TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY (channel_id, nonce));
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

    def remember_messages(self, entries: list[tuple[str, str, float]]) -> list[bool]:
        """`remember_message` for many (sender, id, expires) at once, in one transaction (group commit)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
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

    # --- payment channels and vouchers --------------------------------------------------------
    def put_channel(self, channel_id: str, peer: str, data: Mapping[str, Any]) -> None:
        """Create or update a payment channel record (amounts inside `data` must be ints)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO channels (channel_id, peer, data) VALUES (?, ?, ?) "
                "ON CONFLICT(channel_id) DO UPDATE SET peer=excluded.peer, data=excluded.data",
                (channel_id, peer, json.dumps(dict(data))),
            )

    def get_channel(self, channel_id: str) -> dict[str, Any] | None:
        """A channel's data, or None."""
        with self._lock:
            row = self._db.execute("SELECT peer, data FROM channels WHERE channel_id = ?", (channel_id,)).fetchone()
        return None if row is None else {"peer": row[0], **json.loads(row[1])}

    def record_voucher(self, channel_id: str, nonce: int, cumulative_amount: int, signature: str) -> bool:
        """Store a voucher; False if that (channel, nonce) is already stored."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO vouchers (channel_id, nonce, cumulative_amount, signature) VALUES (?, ?, ?, ?)",
                # uint256 amounts exceed SQLite's int64: store them as decimal text.
                (channel_id, nonce, str(cumulative_amount), signature),
            )
            return cursor.rowcount == 1

    def latest_voucher(self, channel_id: str) -> tuple[int, int, str] | None:
        """The highest-nonce voucher of a channel as (nonce, cumulative_amount, signature)."""
        with self._lock:
            row = self._db.execute(
                "SELECT nonce, cumulative_amount, signature FROM vouchers WHERE channel_id = ? "
                "ORDER BY nonce DESC LIMIT 1",
                (channel_id,),
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    # --- small key/value state ----------------------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under `key`."""
        with self._lock:
            self._db.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, json.dumps(value)),
            )

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key`, or `default`."""
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])
