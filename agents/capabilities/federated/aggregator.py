"""The aggregator of a federated job: a staked validator the FederatedRewards job names, which runs the rounds.

It takes a job only when the chain names it, the assignment is signed by the job's sponsor account for the
agent that sent it (new versions go to that agent only), and the plan matches the job's spec hash; it invites
registered users with a signature of its settlement account, runs each round's secure aggregation (it relays
keys and sealed shares, fetches masked updates by reference, asks survivors for unmasking shares) and so learns
only the sum. A round that falls below the threshold aborts: no reward, no model. A completed round updates the global
model (FedAvg of the survivors' clipped updates), is scored on the sponsor's held-out data, pays its survivors
through a Merkle root posted on chain, and goes to the sponsor as a new model version.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BaseModel
from uagents import Context, Model

from agents.base import AgoraAgent, RemoteError
from agents.blobs import BlobRefused
from agents.capabilities.federated.plan import (
    QUANTISATION,
    advert_of,
    from_hex,
    plan_hash,
    reward_shares,
    round_id,
    to_hex,
)
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.offload import offload
from agents.settlement import Settlement
from agents.state import Record, Repository
from agents.transport import DeliveryError
from marketplace.chain import ContractRevert
from marketplace.chain.federated import RewardTree
from marketplace.ml import InteractionDataset, RecommenderSpec, load_dataset, load_model, serialize_model
from marketplace.ml.federated.local import evaluate, flatten, unflatten
from marketplace.ml.federated.secagg import (
    EncryptedShares,
    MaskedInput,
    RebuiltSecrets,
    RevealedShare,
    RoundAborted,
    RoundConfig,
    SecAggError,
    ServerRound,
    UnmaskResponse,
    rebuild_secrets,
)
from protocols import federated
from protocols.errors import ErrorCode
from protocols.federated import (
    AssignmentAccepted,
    FederatedAssignment,
    FederatedInvite,
    FederatedJoin,
    FederatedPlan,
    MaskedUpdate,
    NewModelVersion,
    RoundAdverts,
    RoundKeys,
    RoundResult,
    RoundShares,
    RoundStart,
    RoundUnmask,
    SealedShare,
    UnmaskShares,
    VersionRegistered,
    assignment_text,
    invite_text,
)

M = TypeVar("M", bound=Model)
MAX_HELDOUT_BYTES = 4 * 1024 * 1024
STEP_WAIT = 60.0
"""Seconds a participant has to answer one round step before it counts as dropped."""
REBUILD_JOBS = 2
"""Offload jobs the Shamir combines of one round's unmasking are split into (one per default pool worker)."""


class Assignment(Record):
    """A job this aggregator took: its plan, the sponsor agent, and the held-out set's id in this store."""

    plan: dict[str, Any]
    sponsor: str
    heldout: str
    model: str


class Progress(Record):
    """A job's progress: the report so far, who joined (address → [account, samples]), the current weights."""

    report: dict[str, Any]
    members: dict[str, tuple[str, int]]
    weights: str


class RoundReport(BaseModel):
    """How one round went."""

    round: int
    participants: int
    survivors: int
    dropped: int
    completed: bool
    reason: str = ""
    metric: float = 0.0
    rewards: dict[str, int] = {}
    model_id: str = ""


class JobReport(BaseModel):
    """How a whole federated job went: who joined, who refused and why, and every round."""

    job_id: int
    initial_metric: float = 0.0
    joined: list[str] = []
    refused: dict[str, str] = {}
    rounds: list[RoundReport] = []


class FederatedAggregator(Capability):
    """Takes federated jobs that name this validator and runs their rounds (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, neighbours: int | None = None) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.neighbours = neighbours
        self.assignments = Repository(agent.store, "federated.assignment", Assignment)
        self.progress = Repository(agent.store, "federated.progress", Progress)

    def handlers(self) -> Iterable[Handlers]:
        """FederatedAssignment, in the aggregator role of the federated protocol."""
        table: dict[type[Model], Handler] = {FederatedAssignment: self._on_assignment}
        return (Handlers(federated.SPEC, "aggregator", table),)

    async def _on_assignment(self, ctx: Context, sender: str, msg: FederatedAssignment) -> None:
        try:
            job = await self.settlement.federated.get_job(msg.job_id)
        except ContractRevert as exc:
            raise Rejected(ErrorCode.REJECTED, "no such federated job on chain") from exc
        if job.aggregator.lower() != self.settlement.account.lower():
            raise Rejected(ErrorCode.REJECTED, "the job names another aggregator")
        _require_sponsor(msg, sender, job.sponsor)
        if plan_hash(msg.plan) != job.spec_hash:
            raise Rejected(ErrorCode.REJECTED, "the plan is not the one the job committed to on chain")
        if msg.plan.rounds * msg.plan.reward_per_round > job.budget:
            raise Rejected(ErrorCode.REJECTED, "the escrowed budget does not cover the plan's rewards")
        if msg.model.blob_id != msg.plan.model_hash:
            raise Rejected(ErrorCode.REJECTED, "the granted weights are not the plan's")
        try:  # fetched now, while the sponsor is there to serve them
            await self.agent.blobs.fetch(msg.model)
            await self.agent.blobs.fetch(msg.heldout, MAX_HELDOUT_BYTES)
        except BlobRefused as exc:
            raise Rejected(ErrorCode.REJECTED, f"the job's data is not readable: {exc}") from exc
        pin = f"federated:{msg.job_id}"
        self.agent.blobs.pin(msg.model.blob_id, pin)
        self.agent.blobs.pin(msg.heldout.blob_id, pin)
        kept = Assignment(plan=msg.plan.dict(), sponsor=sender, heldout=msg.heldout.blob_id, model=msg.model.blob_id)
        self.assignments.add(str(msg.job_id), kept)
        await ctx.send(sender, AssignmentAccepted(job_id=msg.job_id))

    # --- running a job ------------------------------------------------------------------------------
    async def run(self, job_id: int) -> JobReport:
        """Invite registered users, then run every round of the plan; the report of what happened."""
        assignment = self.assignments.get(str(job_id))
        if assignment is None:
            raise KeyError(f"federated job {job_id} was not assigned to this aggregator")
        plan = FederatedPlan.parse_obj(assignment.plan)
        model = load_model(self.agent.blobs.get(assignment.model), assignment.model)
        heldout = load_dataset(self.agent.blobs.get(assignment.heldout, MAX_HELDOUT_BYTES), assignment.heldout)
        spec = model.spec
        if not isinstance(spec, RecommenderSpec) or not isinstance(heldout, InteractionDataset):
            raise ValueError("federated jobs train recommenders on shopping events")
        saved = self.progress.get(str(job_id))
        if saved is None:  # a fresh job: score version 0, invite
            weights = flatten(model)
            report = JobReport(job_id=job_id)
            report.initial_metric = (await offload(evaluate, spec, weights, heldout)).score
            members = await self._invite(job_id, plan, report)
            self._save(job_id, report, members, weights)
        else:  # resumed after a restart (or asked again): rounds already run are not run twice
            report = JobReport.model_validate(saved.report)
            members = {address: (account, samples) for address, (account, samples) in saved.members.items()}
            weights = np.frombuffer(self.agent.blobs.get(saved.weights), dtype="<f4").copy()
            unflatten(model, weights)
        for number in range(len(report.rounds) + 1, plan.rounds + 1):
            chosen = _rotate(sorted(members), number, plan.clients_per_round)
            outcome, new_weights, survivors = await self._round(job_id, number, plan, chosen, weights)
            tree = None
            if new_weights is not None:
                outcome.metric = (await offload(evaluate, spec, new_weights, heldout)).score
                weights = new_weights
                unflatten(model, weights)
                samples = {members[a][0]: members[a][1] for a in survivors}
                rewards = reward_shares(plan.reward_per_round, samples, plan.max_samples)
                if rewards:  # the round's reward root, on chain before anyone is told
                    tree = RewardTree(job_id, number, rewards)
                    await self.settlement.federated.post_tree(tree)
                outcome.rewards = rewards
                outcome.model_id = await self._hand_over(job_id, number, assignment.sponsor, model, outcome)
            report.rounds.append(outcome)
            self._save(job_id, report, members, weights)
            await self._tell_results(job_id, number, chosen, members, outcome, tree)
        return report

    def _save(self, job_id: int, report: JobReport, members: dict[str, tuple[str, int]], weights: Any) -> None:
        """Keep what the job has done so far (report, members, current weights) so a restart resumes it."""
        blob = self.agent.blobs.put(np.asarray(weights, dtype="<f4").tobytes(), pin=f"federated:{job_id}")
        record = Progress(report=report.model_dump(), members={a: [m[0], m[1]] for a, m in members.items()},
                          weights=blob)  # fmt: skip
        self.progress.put(str(job_id), record)

    async def _invite(self, job_id: int, plan: FederatedPlan, report: JobReport) -> dict[str, tuple[str, int]]:
        """Invite every registered user; agent address → (account, declared samples) of those that joined."""
        text = invite_text(job_id, self.agent.address)
        signature = Account.sign_message(encode_defunct(text=text), self.settlement.conn.account.key).signature
        invite = FederatedInvite(job_id=job_id, plan=plan, signature="0x" + signature.hex())
        users = await self.settlement.registered(role="user")
        answers = await asyncio.gather(*(self._ask(address, invite, FederatedJoin) for address in users))
        members: dict[str, tuple[str, int]] = {}
        for address, answer in zip(users, answers, strict=True):
            if isinstance(answer, FederatedJoin):
                members[address] = (answer.account, answer.samples)
                report.joined.append(answer.account)
            else:
                report.refused[address] = answer
        return members

    async def _ask(self, address: str, message: Model, expect: type[M]) -> M | str:
        """A participant's answer, or why there is none (its refusal, or silence past STEP_WAIT)."""
        try:
            return await self.agent.request(address, message, expect, wait=STEP_WAIT)
        except RemoteError as err:
            self.agent.logger.info("%s refused %s: %s", address[:16], type(message).__name__, err)
            return str(err)
        except (DeliveryError, TimeoutError) as err:
            self.agent.logger.info("%s did not answer %s: %s", address[:16], type(message).__name__, err)
            return f"unreachable: {err}"

    async def _round(
        self,
        job_id: int,
        number: int,
        plan: FederatedPlan,
        chosen: list[str],
        weights: npt.NDArray[np.float32],
    ) -> tuple[RoundReport, npt.NDArray[np.float32] | None, list[str]]:
        """One secure-aggregation round among `chosen`: the report, and the new weights and the survivors'
        addresses if it completed."""
        outcome = RoundReport(round=number, participants=len(chosen), survivors=0, dropped=0, completed=False)
        if len(chosen) < plan.min_participants:
            outcome.reason = f"{len(chosen)} participants, fewer than the plan's {plan.min_participants}"
            return outcome, None, []
        index = {address: i + 1 for i, address in enumerate(chosen)}
        rid = round_id(job_id, number)
        degree = self.neighbours if self.neighbours is not None and self.neighbours < len(chosen) - 1 else None
        threshold = max(plan.min_participants, (len(chosen) if degree is None else degree + 1) // 2 + 1)
        config = RoundConfig(rid, tuple(index.values()), min(threshold, len(chosen)), degree, len(weights),
                             QUANTISATION)  # fmt: skip
        server = ServerRound(config)
        blob = self.agent.blobs.put(weights.astype("<f4").tobytes(), pin=f"federated:{job_id}")

        def start(address: str) -> RoundStart:
            return RoundStart(job_id=job_id, round=number, index=index[address], participants=list(index.values()),
                              threshold=config.threshold, neighbours=degree,
                              model=self.agent.blobs.grant(blob, address))  # fmt: skip

        keys = await self._each(chosen, start, RoundKeys)
        adverts = [advert_of(k) for k in keys.values()]
        try:
            server.collect_adverts(adverts)
            relayed = RoundAdverts(job_id=job_id, round=number, adverts=list(keys.values()))
            sealed = await self._each(list(keys), lambda _: relayed, RoundShares)
            shares = [
                EncryptedShares(rid, s.sender, s.recipient, from_hex(s.ciphertext))
                for answer in sealed.values() for s in answer.shares
            ]  # fmt: skip
            routed = server.route_shares(shares)
            by_index = {index[a]: a for a in sealed}

            def deliver(address: str) -> RoundShares:
                mine = routed.get(index[address], ())
                return RoundShares(job_id=job_id, round=number, shares=[
                    SealedShare(sender=s.sender, recipient=s.recipient, ciphertext=to_hex(s.ciphertext)) for s in mine
                ])  # fmt: skip

            updates = await self._each(list(by_index.values()), deliver, MaskedUpdate)
            inputs = []
            for address, update in updates.items():
                try:
                    raw = await self.agent.blobs.fetch(update.update, 4 * len(weights))
                except BlobRefused as exc:
                    self.agent.logger.info("masked update of %s unreadable: %s", address[:16], exc)
                    continue
                inputs.append(MaskedInput(rid, index[address], np.frombuffer(raw, dtype="<u4").copy()))
            request = server.collect_masked_inputs(inputs)
            unmask = RoundUnmask(job_id=job_id, round=number, survivors=list(request.survivors),
                                 dropped=list(request.dropped))  # fmt: skip
            revealed = await self._each([by_index[i] for i in request.survivors], lambda _: unmask, UnmaskShares)
            responses = [
                UnmaskResponse(rid, r.index, _revealed(r.b_shares), _revealed(r.s_sk_shares)) for r in revealed.values()
            ]
            outcome.survivors, outcome.dropped = len(request.survivors), len(request.dropped)
            secrets = server.collect_unmask_responses(responses)  # checks only: cheap, on the loop
            parts = await asyncio.gather(*(offload(rebuild_secrets, part) for part in secrets.chunks(REBUILD_JOBS)))
            result = await offload(server.finish, RebuiltSecrets.merge(parts))
        except RoundAborted as exc:
            outcome.reason = exc.reason
            return outcome, None, []
        except (SecAggError, ValueError) as exc:
            outcome.reason = f"round failed: {exc}"
            return outcome, None, []
        outcome.completed = True
        mean = (result.total / result.count).astype(np.float32)
        return outcome, (weights + mean).astype(np.float32), [by_index[i] for i in result.survivors]

    async def _each(self, addresses: list[str], message: Any, expect: type[M]) -> dict[str, M]:
        """Send each participant its message (made by `message(address)`) at once; the answers that came back."""
        answers = await asyncio.gather(*(self._ask(a, message(a), expect) for a in addresses))
        return {a: answer for a, answer in zip(addresses, answers, strict=True) if isinstance(answer, expect)}

    async def _hand_over(self, job_id: int, number: int, sponsor: str, model: Any, outcome: RoundReport) -> str:
        """Grant the sponsor the new global model; the model id it registered it under ('' if it did not)."""
        artifact = serialize_model(model)
        blob = self.agent.blobs.put(artifact.data, pin=f"federated:{job_id}")
        version = NewModelVersion(job_id=job_id, round=number, model=self.agent.blobs.grant(blob, sponsor),
                                  contributors=sorted(outcome.rewards), metric=outcome.metric)  # fmt: skip
        answer = await self._ask(sponsor, version, VersionRegistered)
        return answer.model_id if isinstance(answer, VersionRegistered) else ""

    async def _tell_results(
        self,
        job_id: int,
        number: int,
        chosen: list[str],
        members: dict[str, tuple[str, int]],
        outcome: RoundReport,
        tree: RewardTree | None,
    ) -> None:
        """Tell every participant how the round ended, with its reward proof."""
        for address in chosen:
            account = members[address][0]
            reward = outcome.rewards.get(account, 0) if tree is not None else 0
            proof = [to_hex(p) for p in tree.proof(account)] if reward and tree is not None else []
            result = RoundResult(job_id=job_id, round=number, completed=outcome.completed, reason=outcome.reason,
                                 reward=reward, proof=proof, metric=outcome.metric)  # fmt: skip
            try:
                await self.agent.send(address, result)
            except (DeliveryError, OSError) as err:
                self.agent.logger.info("round result to %s undelivered: %s", address[:16], err)


def _require_sponsor(msg: FederatedAssignment, sender: str, sponsor: str) -> None:
    """Refuse an assignment not signed, for agent `sender`, by the account the chain names as the job's sponsor."""
    try:
        signer = Account.recover_message(encode_defunct(text=assignment_text(msg.job_id, sender)),
                                         signature=msg.signature)  # fmt: skip
    except ValueError as exc:
        raise Rejected(ErrorCode.UNAUTHORIZED, "undecodable assignment signature") from exc
    if signer.lower() != sponsor.lower():
        raise Rejected(ErrorCode.UNAUTHORIZED, "the assignment is not from the job's sponsor")


def _rotate(members: list[str], number: int, count: int) -> list[str]:
    """`count` members for round `number`, moving through the list so every member takes turns."""
    if not members:
        return []
    start = ((number - 1) * count) % len(members)
    return [members[(start + i) % len(members)] for i in range(min(count, len(members)))]


def _revealed(shares: dict[int, str]) -> tuple[RevealedShare, ...]:
    return tuple(RevealedShare(int(owner), from_hex(share)) for owner, share in sorted(shares.items()))
