"""Registry database schema: SQLAlchemy Core tables for queries and the versioned DDL that creates them."""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text

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
    Column("rank_key", String(200), nullable=False),
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
    Column("rank_key", String(200), nullable=False),
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
                expires_at DOUBLE PRECISION NOT NULL, min_price VARCHAR(78), rank_key VARCHAR(200) NOT NULL,
                rep_score BIGINT NOT NULL DEFAULT 0, rep_count BIGINT NOT NULL DEFAULT 0,
                rep_volume VARCHAR(78) NOT NULL DEFAULT '"""
            + "0" * PRICE_DIGITS
            + """')""",
            "CREATE INDEX ix_agents_rank ON agents (rank_key)",
            "CREATE INDEX ix_agents_role_rank ON agents (role, rank_key)",
            "CREATE INDEX ix_agents_owner ON agents (owner)",
            "CREATE INDEX ix_agents_expires ON agents (expires_at)",
            """CREATE TABLE offerings (
                address VARCHAR(65) NOT NULL, position INTEGER NOT NULL, model_id VARCHAR(128) NOT NULL,
                job_kind VARCHAR(128) NOT NULL, price VARCHAR(78) NOT NULL, capacity INTEGER NOT NULL,
                rank_key VARCHAR(200) NOT NULL, PRIMARY KEY (address, position))""",
            "CREATE INDEX ix_offerings_kind_rank ON offerings (job_kind, rank_key)",
            "CREATE INDEX ix_offerings_model_rank ON offerings (model_id, rank_key)",
            "CREATE INDEX ix_offerings_rank ON offerings (rank_key)",
            """CREATE TABLE write_nonces (
                address VARCHAR(65) NOT NULL, nonce VARCHAR(64) NOT NULL, seen_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (address, nonce))""",
            "CREATE INDEX ix_write_nonces_seen ON write_nonces (seen_at)",
        ],
    ),
    (
        2,
        "registry settings (its id, which signed writes name)",
        ["CREATE TABLE registry_meta (name VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)"],
    ),
]
"""Forward-only schema versions; each runs once, in one transaction, recorded in schema_migrations."""
