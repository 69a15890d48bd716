"""What the sponsor, the users and the aggregator of a federated job agree on, computed the same way by each."""

from __future__ import annotations

import json

from eth_utils.crypto import keccak

from marketplace.ml.federated.local import DPConfig, LocalConfig
from marketplace.ml.federated.privacy import Participation
from marketplace.ml.federated.secagg import Advert, Quantisation
from protocols.federated import FederatedPlan, RoundKeys

QUANTISATION = Quantisation(clip=1.0, scale_bits=16)
"""How updates are clipped per coordinate and quantised for secure aggregation (fixed for every job)."""


def plan_hash(plan: FederatedPlan) -> bytes:
    """The FederatedRewards spec hash of a plan: keccak of its canonical JSON under a domain tag."""
    canonical = json.dumps(plan.dict(), sort_keys=True, separators=(",", ":"))
    return keccak(text="agora:federated-plan:v1:" + canonical)


def round_id(job_id: int, round_number: int) -> bytes:
    """The 32-byte secure-aggregation round id of a job's round (fixes the neighbour graph and binds the masks)."""
    return keccak(text=f"agora:federated-round:{job_id}:{round_number}")


def local_config(plan: FederatedPlan) -> LocalConfig:
    """How a participant trains for one round of the plan."""
    dp = DPConfig(noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.clip_norm)
    return LocalConfig(lr=plan.lr, batch_size=plan.batch_size, local_steps=plan.local_steps,
                       update_clip=plan.update_clip, dp=dp)  # fmt: skip


def participation(plan: FederatedPlan, job_id: int, round_number: int, records: int) -> Participation:
    """The privacy cost of one round for a participant holding `records` records (charged before it trains)."""
    sample_rate = min(1.0, plan.batch_size / records)
    return Participation(
        job_id=str(job_id), round=round_number, noise_multiplier=plan.noise_multiplier,
        sample_rate=sample_rate, steps=plan.local_steps, delta=plan.delta,
    )  # fmt: skip


def reward_shares(reward: int, samples: dict[str, int], cap: int) -> dict[str, int]:
    """Split `reward` among accounts in proportion to their declared sample counts capped at `cap` (floor division;
    the remainder stays in the budget). Declared counts cannot be checked under secure aggregation: the cap bounds
    what overstating them gains."""
    weights = {account: min(max(count, 0), cap) for account, count in samples.items()}
    total = sum(weights.values())
    if total == 0:
        return {}
    return {account: reward * weight // total for account, weight in weights.items() if reward * weight // total}


def to_hex(data: bytes) -> str:
    """Bytes as the 0x-hex federated messages carry."""
    return "0x" + data.hex()


def from_hex(text: str) -> bytes:
    """0x-hex from a federated message as bytes (ValueError when it is not hex)."""
    return bytes.fromhex(text.removeprefix("0x"))


def advert_of(keys: RoundKeys) -> Advert:
    """The secure-aggregation advert a participant's RoundKeys message carries."""
    rid = round_id(keys.job_id, keys.round)
    return Advert(rid, keys.index, from_hex(keys.c_pk), from_hex(keys.s_pk), from_hex(keys.b_commitment))
