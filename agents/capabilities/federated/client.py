"""A user's side of federated learning: its shopping history never leaves the agent; it joins jobs the chain
backs while its privacy budget allows, trains with DP-SGD, and sends only masked updates.

Every message is checked against the chain before anything is spent: an invitation must carry the plan whose
hash the FederatedRewards job commits to and be signed by the job's aggregator account; round messages are
taken only from the agent that invited this user. The ε ledger is charged before each training round and
kept in the agent's store, so a refusal survives a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BaseModel
from uagents import Context, Model

from agents.base import AgoraAgent
from agents.blobs import BlobRefused
from agents.capabilities.federated.plan import (
    QUANTISATION,
    advert_of,
    from_hex,
    local_config,
    participation,
    plan_hash,
    round_id,
    to_hex,
)
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import Settlement
from agents.state import Record, Repository, key
from marketplace.chain import ContractRevert
from marketplace.chain.federated import RewardClaim, verify_claim
from marketplace.ml import InteractionDataset, RecommenderSpec
from marketplace.ml.federated.local import LocalConfig, LocalTrainer
from marketplace.ml.federated.privacy import EpsilonLedger, PrivacyBudgetExceeded
from marketplace.ml.federated.secagg import (
    ClientRound,
    EncryptedShares,
    MaskedInput,
    RoundConfig,
    SecAggError,
    UnmaskRequest,
)
from marketplace.ml.federated.shopping import user_history
from protocols import federated
from protocols.errors import ErrorCode
from protocols.federated import (
    FederatedInvite,
    FederatedJoin,
    FederatedPlan,
    MaskedUpdate,
    RoundAdverts,
    RoundKeys,
    RoundResult,
    RoundShares,
    RoundStart,
    RoundUnmask,
    SealedShare,
    UnmaskShares,
    invite_text,
)

MAX_MODEL_BYTES = 16 * 1024 * 1024


class ClientOptions(BaseModel):
    """A user's federated settings: whose history it holds, how much privacy it spends, when it (simulated) drops."""

    enabled: bool = False
    """Whether this user takes part in federated jobs at all (it refuses every invitation otherwise)."""
    shopper_id: int = 0
    events: int = 128
    epsilon_budget: float = 60.0
    min_noise_multiplier: float = 0.5
    world_seed: int = 0
    drop_rounds: list[int] = []
    """Rounds in which this user leaves after sharing its keys (a dropout the protocol must survive)."""


class Membership(Record):
    """A job this user joined: who aggregates it and by which plan."""

    aggregator: str
    plan: dict[str, Any]


class Reward(Record):
    """A round's reward this user may claim, with its Merkle proof."""

    job_id: int
    round: int
    amount: int
    proof: list[str]
    claimed: bool = False


class LedgerRecord(Record):
    """The persisted ε ledger (privacy.EpsilonLedger JSON)."""

    ledger: str


_WORKER = threading.local()


def train_locally(
    spec: RecommenderSpec, weights: npt.NDArray[np.float32], history: InteractionDataset, config: LocalConfig, seed: int
) -> npt.NDArray[np.float32]:
    """One round of local DP-SGD: the clipped update. Each worker thread (or process) keeps its own trainer, built
    once: Opacus' per-sample gradient state must not be shared between concurrent trainings."""
    trainers: dict[RecommenderSpec, LocalTrainer] = _WORKER.__dict__.setdefault("trainers", {})
    if spec not in trainers:
        trainers[spec] = LocalTrainer(spec)
    return trainers[spec].train(weights, history, config, seed).delta


class FederatedClient(Capability):
    """Joins federated jobs and takes part in their secure-aggregation rounds (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, options: ClientOptions, seed: int = 0) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.options = options
        self.seed = seed
        self.spec = RecommenderSpec()
        self.history = user_history(
            self.spec, options.shopper_id, options.events, seed=seed, world_seed=options.world_seed
        )
        self.memberships = Repository(agent.store, "federated.member", Membership)
        self.rewards = Repository(agent.store, "federated.reward", Reward)
        self._ledger_store = Repository(agent.store, "federated.privacy", LedgerRecord)
        self.trained = Repository(agent.store, "federated.trained", Record)
        """Rounds this user trained for, by (job, round): each is trained (and charged) once, whoever asks again."""
        self._rounds: dict[tuple[int, int], tuple[ClientRound, npt.NDArray[np.float32]]] = {}

    # --- privacy ----------------------------------------------------------------------------------
    @property
    def user(self) -> str:
        """Whose privacy the ledger counts: this agent's settlement account."""
        return self.settlement.account

    def ledger(self) -> EpsilonLedger:
        """The ε ledger, as last saved."""
        saved = self._ledger_store.get("ledger")
        return EpsilonLedger.from_json(saved.ledger) if saved is not None else EpsilonLedger()

    def epsilon_spent(self) -> float:
        """ε this user has spent over every job."""
        return self.ledger().total_epsilon(self.user)

    # --- handlers ---------------------------------------------------------------------------------
    def handlers(self) -> Iterable[Handlers]:
        """Invitations and round steps, in the participant role of the federated protocol."""
        table: dict[type[Model], Handler] = {
            FederatedInvite: self._on_invite,
            RoundStart: self._on_round_start,
            RoundAdverts: self._on_adverts,
            RoundShares: self._on_shares,
            RoundUnmask: self._on_unmask,
            RoundResult: self._on_result,
        }
        return (Handlers(federated.SPEC, "participant", table),)

    async def _on_invite(self, ctx: Context, sender: str, msg: FederatedInvite) -> None:
        if not self.options.enabled:
            raise Rejected(ErrorCode.REJECTED, "this user does not take part in federated learning")
        try:
            job = await self.settlement.federated.get_job(msg.job_id)
        except ContractRevert as exc:
            raise Rejected(ErrorCode.REJECTED, "no such federated job on chain") from exc
        if plan_hash(msg.plan) != job.spec_hash:
            raise Rejected(ErrorCode.REJECTED, "the plan is not the one the job committed to on chain")
        try:
            signer = Account.recover_message(
                encode_defunct(text=invite_text(msg.job_id, sender)), signature=msg.signature
            )
        except ValueError as exc:
            raise Rejected(ErrorCode.UNAUTHORIZED, "undecodable invitation signature") from exc
        if signer.lower() != job.aggregator.lower():
            raise Rejected(ErrorCode.UNAUTHORIZED, "the invitation is not from the job's aggregator")
        if await self.settlement.chain_time() >= job.deadline:
            raise Rejected(ErrorCode.EXPIRED, "the job's deadline has passed")
        if msg.plan.noise_multiplier < self.options.min_noise_multiplier:
            raise Rejected(
                ErrorCode.REJECTED, f"noise multiplier {msg.plan.noise_multiplier} is below this user's least"
            )
        self._check_budget(msg.job_id, msg.plan, 1)
        self.memberships.put(str(msg.job_id), Membership(aggregator=sender, plan=msg.plan.dict()))
        await ctx.send(sender, FederatedJoin(job_id=msg.job_id, account=self.user, samples=len(self.history)))

    def _check_budget(self, job_id: int, plan: FederatedPlan, round_number: int) -> None:
        planned = participation(plan, job_id, round_number, len(self.history))
        if self.ledger().would_exceed(self.user, planned, self.options.epsilon_budget):
            spent = self.epsilon_spent()
            raise Rejected(
                ErrorCode.REJECTED,
                f"privacy budget: ε {spent:.2f} spent of {self.options.epsilon_budget:.2f}, this round would exceed it",
            )

    def _member(self, sender: str, job_id: int) -> FederatedPlan:
        joined = self.memberships.get(str(job_id))
        if joined is None or joined.aggregator != sender:
            raise Rejected(ErrorCode.UNAUTHORIZED, "round messages are taken only from the job's aggregator")
        return FederatedPlan.parse_obj(joined.plan)

    def _round(self, job_id: int, round_number: int) -> tuple[ClientRound, npt.NDArray[np.float32]]:
        current = self._rounds.get((job_id, round_number))
        if current is None:
            raise Rejected(ErrorCode.REJECTED, "no such round in progress here")
        return current

    async def _on_round_start(self, ctx: Context, sender: str, msg: RoundStart) -> None:
        plan = self._member(sender, msg.job_id)
        if not 1 <= msg.round <= plan.rounds:
            raise Rejected(ErrorCode.REJECTED, f"the plan has rounds 1..{plan.rounds}")
        if self.trained.get(key(msg.job_id, msg.round)) is not None:
            raise Rejected(ErrorCode.REPLAYED, "this user already trained for that round")
        self._check_budget(msg.job_id, plan, msg.round)
        try:
            raw = await self.agent.blobs.fetch(msg.model, MAX_MODEL_BYTES)
            weights = np.frombuffer(raw, dtype="<f4").copy()
            config = RoundConfig(
                round_id=round_id(msg.job_id, msg.round), participants=tuple(msg.participants),
                threshold=msg.threshold, neighbours=msg.neighbours, vector_length=len(weights),
                quantisation=QUANTISATION,
            )  # fmt: skip
            client = ClientRound(config, msg.index)
        except (SecAggError, BlobRefused) as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        self._rounds[msg.job_id, msg.round] = (client, weights)
        advert = client.advertise()
        await ctx.send(
            sender,
            RoundKeys(
                job_id=msg.job_id,
                round=msg.round,
                index=advert.sender,
                c_pk=to_hex(advert.c_pk),
                s_pk=to_hex(advert.s_pk),
                b_commitment=to_hex(advert.b_commitment),
            ),
        )

    async def _on_adverts(self, ctx: Context, sender: str, msg: RoundAdverts) -> None:
        self._member(sender, msg.job_id)
        client, _ = self._round(msg.job_id, msg.round)
        try:
            adverts = [advert_of(a) for a in msg.adverts]
            sealed = client.share_keys(adverts)
        except (SecAggError, ValueError) as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        shares = [SealedShare(sender=s.sender, recipient=s.recipient, ciphertext=to_hex(s.ciphertext)) for s in sealed]
        await ctx.send(sender, RoundShares(job_id=msg.job_id, round=msg.round, shares=shares))

    async def _on_shares(self, ctx: Context, sender: str, msg: RoundShares) -> None:
        plan = self._member(sender, msg.job_id)
        client, weights = self._round(msg.job_id, msg.round)
        if msg.round in self.options.drop_rounds:
            del self._rounds[msg.job_id, msg.round]
            raise Rejected(ErrorCode.REJECTED, "this participant left the round")
        # A second masked update of the same round, with fresh noise, would average the noise away.
        if not self.trained.add(key(msg.job_id, msg.round), Record()):
            raise Rejected(ErrorCode.REPLAYED, "this user already trained for that round")
        ledger = self.ledger()
        try:  # charged before training: the spend is recorded even if the round fails later
            ledger.charge(self.user, participation(plan, msg.job_id, msg.round, len(self.history)),
                          self.options.epsilon_budget)  # fmt: skip
        except PrivacyBudgetExceeded as exc:
            raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
        self._ledger_store.put("ledger", LedgerRecord(ledger=ledger.to_json()))
        rid = round_id(msg.job_id, msg.round)
        seed = self.seed * 1_000_003 + msg.job_id * 1_009 + msg.round
        update = await offload(train_locally, self.spec, weights, self.history, local_config(plan), seed)
        try:
            incoming = [EncryptedShares(rid, s.sender, s.recipient, from_hex(s.ciphertext)) for s in msg.shares]
            masked: MaskedInput = client.masked_input(update, incoming)  # a few ms of ChaCha20; keeps the round state
        except (SecAggError, ValueError) as exc:
            raise Rejected(ErrorCode.MALFORMED, str(exc)) from exc
        blob = self.agent.blobs.put(masked.masked.astype("<u4").tobytes(), pin=f"federated:{msg.job_id}")
        ref = self.agent.blobs.grant(blob, sender)
        await ctx.send(sender, MaskedUpdate(job_id=msg.job_id, round=msg.round, index=masked.sender, update=ref))

    async def _on_unmask(self, ctx: Context, sender: str, msg: RoundUnmask) -> None:
        self._member(sender, msg.job_id)
        client, _ = self._round(msg.job_id, msg.round)
        request = UnmaskRequest(round_id(msg.job_id, msg.round), tuple(msg.survivors), tuple(msg.dropped))
        try:
            response = client.unmask(request)
        except SecAggError as exc:
            raise Rejected(ErrorCode.REJECTED, str(exc)) from exc
        del self._rounds[msg.job_id, msg.round]
        await ctx.send(
            sender,
            UnmaskShares(
                job_id=msg.job_id,
                round=msg.round,
                index=response.sender,
                b_shares={r.owner: to_hex(r.share) for r in response.b_shares},
                s_sk_shares={r.owner: to_hex(r.share) for r in response.s_sk_shares},
            ),
        )

    async def _on_result(self, ctx: Context, sender: str, msg: RoundResult) -> None:
        self._member(sender, msg.job_id)
        self._rounds.pop((msg.job_id, msg.round), None)
        if not msg.completed or msg.reward <= 0:
            return
        claim = RewardClaim(msg.job_id, msg.round, self.user, msg.reward, tuple(from_hex(p) for p in msg.proof))
        posted = await self.settlement.federated.get_round(msg.job_id, msg.round)
        if not verify_claim(posted.root, claim):
            self.agent.logger.warning("reward proof for round %s does not match the posted root", msg.round)
            return
        self.rewards.add(key(msg.job_id, msg.round), Reward(job_id=msg.job_id, round=msg.round, amount=msg.reward,
                                                            proof=msg.proof))  # fmt: skip

    async def claim(self) -> list[int]:
        """Claim every reward not yet claimed, in one transaction; the amounts paid."""
        pending = [(k, r) for k, r in self.rewards.items() if not r.claimed]
        if not pending:
            return []
        claims = [
            RewardClaim(r.job_id, r.round, self.user, r.amount, tuple(from_hex(p) for p in r.proof)) for _, r in pending
        ]
        batch = await self.settlement.federated.claim_many(claims)
        for k, reward in pending:
            reward.claimed = True
            self.rewards.put(k, reward)
        return [c.amount for c in batch.claimed]
