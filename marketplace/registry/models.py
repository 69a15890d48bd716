"""Registry HTTP payloads (besides the cards and signed writes in protocols.cards): queries, answers, errors, events."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from protocols.cards import AGENT_ADDRESS_PATTERN, MAX_UINT256, SLUG_PATTERN, AgentCard, Role

MAX_OFFSET = 10_000
MAX_LIMIT = 100


class Reputation(BaseModel):
    """Receipt-backed reputation of an owner account as read from AgentRegistry: settled receipts and paid volume."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=0, ge=0, description="Settled, paid receipts.")
    volume: int = Field(default=0, ge=0, description="Paid volume in AGT base units.")
    score: int = Field(
        default=0,
        ge=0,
        description="Volume-weighted score rank score in basis points (docs/reputation.md) (higher is better).",
    )


class SearchQuery(BaseModel):
    """Filters and page of GET /v1/search (query-string parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role | None = None
    job_kind: str | None = Field(default=None, pattern=SLUG_PATTERN)
    model_id: str | None = Field(default=None, pattern=SLUG_PATTERN)
    max_price: int | None = Field(default=None, ge=0, le=MAX_UINT256, description="Highest acceptable price per unit.")
    min_reputation: int | None = Field(default=None, ge=0, le=2**62, description="Lowest acceptable reputation score.")
    seen_within: int | None = Field(default=None, ge=1, le=10**9, description="Heartbeat no older than this (s).")
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


class AgentEntry(BaseModel):
    """A live registry entry: the card, its reputation and liveness."""

    card: AgentCard
    registered_at: float
    last_seen: float
    expires_at: float
    reputation: Reputation
    best_price: int | None = Field(description="Lowest price among the offerings that matched (None: no offerings).")


class SearchPage(BaseModel):
    """One page of search results, best first."""

    results: list[AgentEntry]
    offset: int
    limit: int
    next_offset: int | None = Field(description="Offset of the next page, or None on the last page.")


class Resolution(BaseModel):
    """Where to reach an agent."""

    address: str = Field(pattern=AGENT_ADDRESS_PATTERN)
    endpoints: list[str]


class WriteAccepted(BaseModel):
    """A signed write that took effect."""

    address: str
    action: str
    expires_at: float | None = Field(description="When the entry lapses without a heartbeat (None once removed).")


class ErrorBody(BaseModel):
    """Every error answer: a stable machine code and a human message."""

    code: str
    message: str


class Health(BaseModel):
    """Liveness of the registry itself."""

    status: str
    agents: int
    schema_version: int
    chain_events: bool
    registry_id: str = Field(description="The id every signed write to this registry must name (`registry`).")


class EconomyEvent(BaseModel):
    """One on-chain event shown in the dashboard feed."""

    id: str = Field(description="`<tx hash>:<log index>`, unique per event.")
    source: str
    contract: str
    event: str
    block: int
    tx_hash: str
    log_index: int
    time: float
    args: dict[str, str] = Field(description="Event arguments rendered as strings (amounts stay exact).")
    summary: str


class EventList(BaseModel):
    """The most recent economy events, newest last."""

    events: list[EconomyEvent]
