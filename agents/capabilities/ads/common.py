"""What the ad capabilities share: parsing wire field elements, reading a campaign, the prover, tree paths."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Literal

from agents.mods import Rejected
from agents.offload import offload
from marketplace.chain import ContractRevert
from marketplace.chain.ads import AdCampaignsClient, Campaign
from marketplace.zk import FIELD, MerkleProof, MerkleTree, Prover
from marketplace.zk.build import ensure_built
from protocols.errors import ErrorCode

TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DECIMAL = re.compile(r"^[0-9]{1,78}$")


def field_element(text: str, what: str, *, nonzero: bool = True) -> int:
    """A decimal field element from the wire; MALFORMED otherwise (and for zero when `nonzero`)."""
    if not DECIMAL.match(text):
        raise Rejected(ErrorCode.MALFORMED, f"{what} is not a decimal number")
    value = int(text)
    if value >= FIELD or (nonzero and value == 0):
        raise Rejected(ErrorCode.MALFORMED, f"{what} is not a non-zero field element")
    return value


async def live_campaign(ads: AdCampaignsClient, campaign_id: int, now: int) -> Campaign:
    """The campaign if it exists and has not ended at chain time `now`; REJECTED otherwise."""
    if campaign_id <= 0:
        raise Rejected(ErrorCode.MALFORMED, "campaign ids start at 1")
    try:
        campaign = await ads.get_campaign(campaign_id)
    except ContractRevert as exc:
        raise Rejected(ErrorCode.REJECTED, f"no campaign {campaign_id} on chain") from exc
    if now >= campaign.end:
        raise Rejected(ErrorCode.EXPIRED, f"campaign {campaign_id} has ended")
    return campaign


def tree_root(leaves: Sequence[int]) -> int:
    """The root of the conversion tree holding `leaves` in order (CPU: depth × leaves hashes; offload it)."""
    tree = MerkleTree()
    tree.extend(list(leaves))
    return tree.root


def tree_path(leaves: Sequence[int], leaf: int) -> MerkleProof:
    """The membership proof of `leaf` in the tree of `leaves` (offload it)."""
    tree = MerkleTree()
    tree.extend(list(leaves))
    return tree.proof(tree.index_of(leaf))


PROVER_ENV = "AGORA_PROVER"
"""`snarkjs` (default: the node worker) or `arkworks` (groth16py): which prover worker agents start."""


class LazyProver:
    """One prover worker for an agent, started on first use (the cached circuit build) and stopped on demand."""

    def __init__(self) -> None:
        self._prover: Prover | None = None

    async def get(self) -> Prover:
        """The running worker (started now if needed)."""
        if self._prover is None or not self._prover.running:
            chosen = os.environ.get(PROVER_ENV, "snarkjs")
            if chosen not in ("snarkjs", "arkworks"):
                raise ValueError(f"{PROVER_ENV} is `snarkjs` or `arkworks`, not {chosen!r}")
            backend: Literal["snarkjs", "arkworks"] = "arkworks" if chosen == "arkworks" else "snarkjs"
            self._prover = Prover(await offload(ensure_built), backend=backend)
            await self._prover.start()
        return self._prover

    async def stop(self) -> None:
        """Stop the worker if it runs."""
        if self._prover is not None:
            await self._prover.stop()
            self._prover = None
