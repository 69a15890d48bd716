"""Federated learning messages: a sponsor's job, an aggregator's invitations and secure-aggregation rounds.

A sponsor escrows a reward budget in FederatedRewards naming an aggregator (a staked validator) and the hash of
`FederatedPlan`; it sends the aggregator the plan with grants to the base model and a held-out set, signed by
its settlement account (so the aggregator hands new versions only to the agent of the job's sponsor). The
aggregator invites users with the plan and a signature of its settlement account (so a user knows it talks
to the agent the chain names); users that join train on their own data with DP-SGD and take part in a
secure-aggregation round (keys, encrypted shares, a masked update by reference, unmasking shares). The
aggregator learns only the sum, posts a Merkle root of rewards on chain and tells each user its reward and
proof; the sponsor gets each new global model and registers it with the round's contributors in its lineage.

Byte strings cross the wire as 0x-hex.
"""

from __future__ import annotations

from uagents_core.protocol import ProtocolSpecification

from protocols.blobs import BlobRef
from protocols.errors import ErrorReply
from protocols.model import Model


class FederatedPlan(Model):
    """What a federated job trains and pays, committed on chain by its hash (the job's spec hash).

    `model_id` is the sponsor's model whose weights (`model_hash`) start the job; DP-SGD runs with per-record
    clip `clip_norm` and noise `noise_multiplier`, `local_steps` Poisson-sampled steps of expected size
    `batch_size` at learning rate `lr`, and each update is clipped to L2 norm `update_clip`; `delta` is the DP δ.
    Each round pays `reward_per_round` (base units) to its survivors, in proportion to their declared sample
    counts capped at `max_samples`.
    """

    model_id: str
    model_hash: str
    rounds: int
    clients_per_round: int
    min_participants: int
    clip_norm: float
    noise_multiplier: float
    delta: float
    local_steps: int
    batch_size: int
    lr: float
    update_clip: float
    reward_per_round: int
    max_samples: int


class FederatedAssignment(Model):
    """A sponsor hands FederatedRewards job `job_id` to its aggregator: the plan, the base weights, held-out data.

    `signature` is the sponsor's settlement account's EIP-191 signature of `assignment_text(job_id, sponsor agent
    address)`, checked against the sponsor FederatedRewards names: new versions go only to that agent."""

    job_id: int
    plan: FederatedPlan
    model: BlobRef
    heldout: BlobRef
    signature: str


class AssignmentAccepted(Model):
    """The aggregator checked the job on chain and will run its rounds."""

    job_id: int


class FederatedInvite(Model):
    """An aggregator invites a user; `signature` is its settlement account's EIP-191 signature of
    `invite_text(job_id, aggregator agent address)`, checked against the aggregator FederatedRewards names."""

    job_id: int
    plan: FederatedPlan
    signature: str


class FederatedJoin(Model):
    """A user joins: the account its rewards go to and the number of local records it declares."""

    job_id: int
    account: str
    samples: int


class RoundStart(Model):
    """Round `round` starts: this user is participant `index` of `participants`; `model` grants the global weights."""

    job_id: int
    round: int
    index: int
    participants: list[int]
    threshold: int
    neighbours: int | None
    model: BlobRef


class RoundKeys(Model):
    """A participant's advertised keys: encryption and masking public keys and its self-mask commitment."""

    job_id: int
    round: int
    index: int
    c_pk: str
    s_pk: str
    b_commitment: str


class RoundAdverts(Model):
    """The adverts of every participant, relayed by the aggregator."""

    job_id: int
    round: int
    adverts: list[RoundKeys]


class SealedShare(Model):
    """Shares of `sender`'s secrets for `recipient`, AES-GCM encrypted to it (the aggregator cannot read them)."""

    sender: int
    recipient: int
    ciphertext: str


class RoundShares(Model):
    """A participant's sealed shares for its neighbours (to the aggregator), or its neighbours' shares for it."""

    job_id: int
    round: int
    shares: list[SealedShare]


class MaskedUpdate(Model):
    """A participant's masked, quantised update (uint32 little-endian), held by it and granted to the aggregator."""

    job_id: int
    round: int
    index: int
    update: BlobRef


class RoundUnmask(Model):
    """Who sent a masked update (`survivors`) and who shared keys but did not (`dropped`)."""

    job_id: int
    round: int
    survivors: list[int]
    dropped: list[int]


class UnmaskShares(Model):
    """A survivor's shares of the survivors' self-mask seeds and of the dropped participants' mask keys."""

    job_id: int
    round: int
    index: int
    b_shares: dict[int, str]
    s_sk_shares: dict[int, str]


class RoundResult(Model):
    """How a round ended for this user: the reward it may claim (with its Merkle proof) or why it got none."""

    job_id: int
    round: int
    completed: bool
    reason: str
    reward: int
    proof: list[str]
    metric: float


class NewModelVersion(Model):
    """A completed round's global model, granted to the sponsor, and the accounts whose updates made it."""

    job_id: int
    round: int
    model: BlobRef
    contributors: list[str]
    metric: float


class VersionRegistered(Model):
    """The sponsor registered the version as a child of the previous one."""

    job_id: int
    round: int
    model_id: str


def assignment_text(job_id: int, sponsor: str) -> str:
    """What a sponsor's settlement account signs to show that agent `sponsor` speaks for job `job_id`."""
    return f"agora-federated-assignment:{job_id}:{sponsor}"


def invite_text(job_id: int, aggregator: str) -> str:
    """What an aggregator's settlement account signs to show that agent `aggregator` runs job `job_id`."""
    return f"agora-federated-invite:{job_id}:{aggregator}"


SPEC = ProtocolSpecification(
    name="agora-federated",
    version="1.1.0",
    interactions={
        FederatedAssignment: {AssignmentAccepted, ErrorReply},
        FederatedInvite: {FederatedJoin, ErrorReply},
        RoundStart: {RoundKeys, ErrorReply},
        RoundAdverts: {RoundShares, ErrorReply},
        RoundShares: {MaskedUpdate, ErrorReply},
        RoundUnmask: {UnmaskShares, ErrorReply},
        RoundResult: set(),
        NewModelVersion: {VersionRegistered, ErrorReply},
        AssignmentAccepted: set(),
        FederatedJoin: set(),
        RoundKeys: set(),
        MaskedUpdate: set(),
        UnmaskShares: set(),
        VersionRegistered: set(),
    },
    roles={
        "aggregator": {FederatedAssignment},
        "participant": {FederatedInvite, RoundStart, RoundAdverts, RoundShares, RoundUnmask, RoundResult},
        "sponsor": {NewModelVersion},
    },
)
"""Roles: aggregators take jobs; participants (users) join and run rounds; sponsors register new versions."""
