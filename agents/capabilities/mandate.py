"""Spending mandates: what a user authorised its agent to spend, signed by the user, enforced below every tool.

A `Mandate` is a user-signed statement (EIP-191 over a canonical JSON encoding of `MandateTerms`): a total
budget, a cap per call and per counterparty, the models, job kinds and (optionally) the only accounts the
agent may pay, and an expiry read from the chain or the agent's clock. A `MandateGuard` holds one verified
mandate and the spend recorded against it (in the agent's store, so it survives restarts). The payment
capability asks the guard *before* it signs a voucher or opens a channel; a refusal raises `MandateExceeded`
and records nothing. Policies, tools and language models sit above it and cannot spend past it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Literal

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.base import AgoraAgent
from agents.settlement import Settlement
from agents.state import Record, Repository
from agents.store import AgentStore

MANDATE_DOMAIN = "agora-mandate:v1:"
"""Prefix of the signed text, so a mandate signature cannot be replayed as any other agora signature."""

Now = Callable[[], Awaitable[float]]
"""The guard's clock: chain time or the agent's clock, in unix seconds."""


class InvalidMandate(ValueError):
    """A mandate that does not parse, or whose signature does not recover to its issuer."""


class MandateExceeded(ValueError):
    """A spend the mandate does not allow; the message is a one-line reason. Nothing was signed or recorded."""


class MandateTerms(BaseModel):
    """What the user allows: budgets in token base units, allowed models/kinds/payees, expiry in unix seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mandate_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    issuer: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="The user's account that signs the mandate.")
    spender: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="The agent account whose spending it governs.")
    total_budget: int = Field(ge=0, strict=True)
    per_call_cap: int = Field(ge=0, strict=True)
    per_counterparty_cap: int = Field(ge=0, strict=True)
    allowed_models: tuple[str, ...] = ()
    """Model ids the agent may pay for; empty allows any model."""
    allowed_kinds: tuple[str, ...] = ("inference",)
    """Job kinds the agent may pay for (inference, training)."""
    allowed_counterparties: tuple[str, ...] = ()
    """Accounts the agent may pay (checksum or lower case); empty allows any."""
    expires_at: int = Field(ge=0, strict=True)
    clock: Literal["chain", "agent"] = "chain"
    """Which clock `expires_at` is measured against."""

    def canonical(self) -> str:
        """The exact text the issuer signs: domain prefix + sorted, compact JSON of the terms."""
        body = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return MANDATE_DOMAIN + body


class Mandate(BaseModel):
    """Terms plus the issuer's EIP-191 signature over `terms.canonical()` (0x-hex)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    terms: MandateTerms
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")

    @classmethod
    def sign(cls, terms: MandateTerms, issuer: LocalAccount) -> Mandate:
        """The mandate `issuer` signs over `terms` (its address must be `terms.issuer`)."""
        if issuer.address.lower() != terms.issuer.lower():
            raise InvalidMandate("the signing account is not the mandate's issuer")
        signed = Account.sign_message(encode_defunct(text=terms.canonical()), issuer.key)
        return cls(terms=terms, signature="0x" + bytes(signed.signature).hex())

    @classmethod
    def load(cls, raw: str | bytes | dict[str, object]) -> Mandate:
        """Parse a stored or received mandate and verify its signature; InvalidMandate otherwise."""
        try:
            mandate = cls.model_validate_json(raw) if isinstance(raw, str | bytes) else cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidMandate(f"malformed mandate: {exc.error_count()} field error(s)") from exc
        mandate.verify()
        return mandate

    def verify(self) -> None:
        """Raise InvalidMandate unless the signature recovers to `terms.issuer`."""
        try:
            signer = Account.recover_message(
                encode_defunct(text=self.terms.canonical()), signature=bytes.fromhex(self.signature[2:])
            )
        except (BadSignature, ValueError, TypeError) as exc:
            raise InvalidMandate("mandate signature does not parse") from exc
        if str(signer).lower() != self.terms.issuer.lower():
            raise InvalidMandate("mandate not signed by its issuer")


class MandateSpend(Record):
    """What has been spent under one mandate: in total, per counterparty account (lower case), and calls paid."""

    total: int = 0
    by_counterparty: dict[str, int] = Field(default_factory=dict)
    payments: int = 0


class MandateGuard:
    """Checks every spend against one verified mandate and keeps the spend in the agent's store.

    `authorize` reads the clock first and then checks without awaiting, so a caller that signs and calls
    `record` without an await in between cannot be raced past the budget by a concurrent spend.
    """

    def __init__(self, store: AgentStore, mandate: Mandate, now: Now) -> None:
        mandate.verify()
        self.mandate = mandate
        self._now = now
        self._spend = Repository(store, "mandate.spend", MandateSpend)

    @classmethod
    def for_agent(cls, agent: AgoraAgent, settlement: Settlement, mandate: Mandate) -> MandateGuard:
        """A guard keeping its spend in `agent`'s store, reading expiry time from the clock the mandate names."""

        async def chain_now() -> float:
            return float(await settlement.chain_time())

        async def agent_now() -> float:
            return agent.clock.now()

        return cls(agent.store, mandate, chain_now if mandate.terms.clock == "chain" else agent_now)

    @property
    def terms(self) -> MandateTerms:
        """The mandate's terms."""
        return self.mandate.terms

    def spent(self) -> MandateSpend:
        """The spend recorded so far under this mandate."""
        return self._spend.get(self.terms.mandate_id) or MandateSpend()

    def remaining(self) -> int:
        """Base units still spendable under the total budget."""
        return max(0, self.terms.total_budget - self.spent().total)

    async def authorize(self, counterparty: str, model_id: str, kind: str, amount: int) -> None:
        """Raise MandateExceeded (one-line reason, nothing recorded) unless paying `amount` to `counterparty` for
        `kind` on `model_id` is within the mandate now."""
        now = await self._now()
        self.check(counterparty, model_id, kind, amount, now)

    async def authorize_deposit(self, counterparty: str, model_id: str, kind: str, deposit: int) -> None:
        """Raise MandateExceeded unless locking `deposit` in a channel to `counterparty` could all be spent within
        the mandate (a deposit is not spend: funds are only locked where the mandate lets them be paid)."""
        now = await self._now()
        self._check_scope(counterparty, model_id, kind, now)
        spent = self.spent()
        if deposit > self.terms.total_budget - spent.total:
            raise MandateExceeded(f"deposit {deposit} exceeds the {self.remaining()} left of the mandate's budget")
        left = self.terms.per_counterparty_cap - spent.by_counterparty.get(counterparty.lower(), 0)
        if deposit > left:
            raise MandateExceeded(f"deposit {deposit} exceeds the {max(0, left)} left for {counterparty}")

    def check(self, counterparty: str, model_id: str, kind: str, amount: int, now: float) -> None:
        """The synchronous check behind `authorize`, at time `now`."""
        self._check_scope(counterparty, model_id, kind, now)
        terms, spent = self.terms, self.spent()
        if amount <= 0:
            raise MandateExceeded(f"amount {amount} must be positive")
        if amount > terms.per_call_cap:
            raise MandateExceeded(f"{amount} exceeds the per-call cap of {terms.per_call_cap}")
        if spent.total + amount > terms.total_budget:
            raise MandateExceeded(f"{amount} exceeds the {self.remaining()} left of the total budget")
        paid = spent.by_counterparty.get(counterparty.lower(), 0)
        if paid + amount > terms.per_counterparty_cap:
            left = max(0, terms.per_counterparty_cap - paid)
            raise MandateExceeded(f"{amount} exceeds the {left} left for {counterparty}")

    def record(self, counterparty: str, amount: int) -> MandateSpend:
        """Add a payment that was signed to the persisted spend; the new totals."""
        spent = self.spent()
        who = counterparty.lower()
        spent.total += amount
        spent.by_counterparty = {**spent.by_counterparty, who: spent.by_counterparty.get(who, 0) + amount}
        spent.payments += 1
        self._spend.put(self.terms.mandate_id, spent)
        return spent

    def _check_scope(self, counterparty: str, model_id: str, kind: str, now: float) -> None:
        terms = self.terms
        if now >= terms.expires_at:
            raise MandateExceeded(f"mandate {terms.mandate_id} expired at {terms.expires_at}")
        if kind not in terms.allowed_kinds:
            raise MandateExceeded(f"job kind {kind!r} is not allowed by the mandate")
        if terms.allowed_models and model_id not in terms.allowed_models:
            raise MandateExceeded(f"model {model_id!r} is not allowed by the mandate")
        allowed = {a.lower() for a in terms.allowed_counterparties}
        if allowed and counterparty.lower() not in allowed:
            raise MandateExceeded(f"counterparty {counterparty} is not listed in the mandate")
