"""The sponsor of a federated job: a model seller that escrows the rewards and registers each new global model.

The sponsor starts a fresh model, lists it (version 0), escrows `rounds × reward_per_round` in FederatedRewards
naming a staked validator as aggregator and the plan's hash, and hands the aggregator the plan with grants to
the weights and to held-out data it made for judging, signed by the account that escrowed (the job's sponsor
on chain), so the aggregator sends the versions to this agent and no other. Each completed round's model comes
back as a new version, registered in ModelRegistry as a child of the previous one with the round's contributors
sharing its royalties. After the claim window the sponsor takes back what nobody earned or claimed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak
from pydantic import BaseModel
from uagents import Context, Model

from agents.base import AgoraAgent
from agents.blobs import BlobRefused
from agents.capabilities.catalogue import ModelCatalogue
from agents.capabilities.federated.plan import plan_hash
from agents.capabilities.kit import Capability, Handler, Handlers
from agents.mods import Rejected
from agents.settlement import Settlement
from agents.state import Record, Repository
from marketplace.chain.federated import FederatedJobRefunded, FederatedTerms
from marketplace.ml import RecommenderSpec, build_model, load_model, serialize_dataset
from marketplace.ml.federated.shopping import heldout_events
from protocols import federated
from protocols.errors import ErrorCode
from protocols.federated import (
    AssignmentAccepted,
    FederatedAssignment,
    FederatedPlan,
    NewModelVersion,
    VersionRegistered,
    assignment_text,
)

CONTRIBUTOR_BPS = 2_000
"""Share of each version's revenue its round's contributors split (basis points)."""
PARENT_BPS = 1_000
"""Share of each version's revenue routed to the previous version (and so down the line)."""


class Sponsorship(BaseModel):
    """What a sponsor starts: a fresh model `model_id`, trained over `rounds` by users, and how long it stays open."""

    plan: dict[str, Any]
    """A FederatedPlan (its model hash is filled in once version 0 exists)."""
    ttl: int
    """Seconds until no more rounds may be posted."""
    claim_window: int
    """Seconds after that during which users claim."""
    heldout_events: int = 2_000
    population: int = 256
    """Shoppers the model is for (user ids 0 … population-1): the held-out events are theirs."""
    world_seed: int = 0
    """The simulated world the shoppers live in (the same one their histories come from)."""
    seed: int = 0


class SponsoredJob(BaseModel):
    """A job this sponsor escrowed and handed to its aggregator."""

    job_id: int
    aggregator: str
    """The aggregator's agent address (the operator asks it to run the rounds)."""
    model_id: str
    """Version 0, as listed in ModelRegistry."""


class Sponsored(Record):
    """A job this sponsor funded: its aggregator agent and the latest version of the model."""

    aggregator: str
    model_id: str
    latest: str
    price_per_call: int
    floor_per_call: int


class FederatedSponsor(Capability):
    """Starts federated jobs and registers the versions they produce (see module docstring)."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, catalogue: ModelCatalogue) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.catalogue = catalogue
        self.jobs = Repository(agent.store, "federated.sponsored", Sponsored)

    def handlers(self) -> Iterable[Handlers]:
        """NewModelVersion, in the sponsor role of the federated protocol."""
        table: dict[type[Model], Handler] = {NewModelVersion: self._on_version}
        return (Handlers(federated.SPEC, "sponsor", table),)

    async def sponsor(self, request: Sponsorship, prices: tuple[int, int]) -> SponsoredJob:
        """List version 0, escrow the rewards, choose the aggregator and hand it the job."""
        spec = RecommenderSpec()
        base = f"{request.plan['model_id']}-v0"
        model_seed = int.from_bytes(keccak(text=f"{request.seed}:{base}")[:4], "big")  # distinct weights per job
        entry = await self.catalogue.publish(base, build_model(spec, seed=model_seed), prices)
        plan = FederatedPlan.parse_obj({**request.plan, "model_hash": entry.content_hash})
        shoppers = range(min(request.population, spec.num_users))
        events = heldout_events(spec, shoppers, request.heldout_events, request.seed, request.world_seed)
        heldout = serialize_dataset(events)
        heldout_id = self.agent.blobs.put(heldout.data, pin="federated")
        ranked = await self.settlement.ranked_validators(keccak(text=f"federated:{self.agent.address}:{base}"), set())
        if not ranked:
            raise RuntimeError("no registered validator is staked to aggregate")
        aggregator = ranked[0].card
        s = self.settlement
        budget = plan.rounds * plan.reward_per_round
        deadline = await s.chain_time() + request.ttl
        await s.token.approve(s.federated.address, budget)
        created = await s.federated.create_job(
            FederatedTerms(aggregator.owner, budget, deadline, request.claim_window, plan_hash(plan))
        )
        text = assignment_text(created.job_id, self.agent.address)
        signature = Account.sign_message(encode_defunct(text=text), s.conn.account.key).signature
        assignment = FederatedAssignment(
            job_id=created.job_id, plan=plan, model=self.agent.blobs.grant(entry.content_hash, aggregator.address),
            heldout=self.agent.blobs.grant(heldout_id, aggregator.address), signature="0x" + signature.hex(),
        )  # fmt: skip
        await self.agent.request(aggregator.address, assignment, AssignmentAccepted, wait=60)
        self.jobs.put(
            str(created.job_id),
            Sponsored(
                aggregator=aggregator.address,
                model_id=base,
                latest=base,
                price_per_call=prices[0],
                floor_per_call=prices[1],
            ),
        )
        return SponsoredJob(job_id=created.job_id, aggregator=aggregator.address, model_id=base)

    async def _on_version(self, ctx: Context, sender: str, msg: NewModelVersion) -> None:
        job = self.jobs.get(str(msg.job_id))
        if job is None or job.aggregator != sender:
            raise Rejected(ErrorCode.UNAUTHORIZED, "versions are taken only from the job's aggregator")
        version = f"{job.model_id.removesuffix('-v0')}-v{msg.round}"
        if self.catalogue.get(version) is not None:
            await ctx.send(sender, VersionRegistered(job_id=msg.job_id, round=msg.round, model_id=version))
            return
        try:
            model = load_model(await self.agent.blobs.fetch(msg.model), msg.model.blob_id)
        except (BlobRefused, ValueError) as exc:
            raise Rejected(ErrorCode.MALFORMED, f"the version's weights are unusable: {exc}") from exc
        contributors = _shares(msg.contributors)
        prices = (job.price_per_call, job.floor_per_call)
        await self.catalogue.publish(version, model, prices, parent=job.latest, royalty_bps=PARENT_BPS,
                                     contributors=contributors)  # fmt: skip
        job.latest = version
        self.jobs.put(str(msg.job_id), job)
        await ctx.send(sender, VersionRegistered(job_id=msg.job_id, round=msg.round, model_id=version))

    async def refund(self) -> list[FederatedJobRefunded]:
        """Take back, from every job past its claim window, what was never earned or claimed."""
        refunds = []
        now = await self.settlement.chain_time()
        for job_id, _ in self.jobs.items():
            job = await self.settlement.federated.get_job(int(job_id))
            if now >= job.claim_deadline and await self.settlement.federated.refundable(int(job_id)) > 0:
                refunds.append(await self.settlement.federated.refund(int(job_id)))
        return refunds


def _shares(accounts: list[str]) -> tuple[tuple[str, int], ...]:
    """CONTRIBUTOR_BPS split evenly among distinct accounts (the remainder of the division stays with the seller)."""
    distinct = sorted({a.lower(): a for a in accounts}.values())
    if not distinct:
        return ()
    each = CONTRIBUTOR_BPS // len(distinct)
    return tuple((account, each) for account in distinct) if each else ()
