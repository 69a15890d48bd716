"""Typed client for FederatedRewards, and the reward Merkle trees its aggregators post.

A round's rewards {account: amount} become an OpenZeppelin "standard" Merkle tree (the layout of
@openzeppelin/merkle-tree's StandardMerkleTree: leaves sorted by hash, sorted-pair hashing) whose
leaves bind the job and the round: keccak256(keccak256(abi.encode(jobId, round, account, amount))).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from marketplace.chain.base import ContractClient

ZERO_HASH = b"\x00" * 32
ZERO_ADDRESS = "0x" + "00" * 20
REWARD_LEAF_TYPES = ("uint256", "uint256", "address", "uint256")
"""ABI types of a reward leaf's values: job id, round, account, amount."""


def standard_leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """A StandardMerkleTree leaf: keccak256 of keccak256 of the ABI-encoded values (a leaf is never 64 bytes
    of preimage, so an inner node cannot pass for one)."""
    return keccak(keccak(abi_encode(list(types), list(values))))


def reward_leaf(job_id: int, round: int, account: str, amount: int) -> bytes:
    """The leaf of one reward, as FederatedRewards.leafHash computes it."""
    return standard_leaf_hash(REWARD_LEAF_TYPES, (job_id, round, to_checksum_address(account), amount))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Parent of two nodes: keccak256 of the pair in ascending order (OpenZeppelin's commutativeKeccak256)."""
    return keccak(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root a proof leads to from a leaf (MerkleProof.processProof)."""
    return reduce(hash_pair, proof, leaf)


class StandardMerkleTree:
    """A Merkle tree laid out exactly as @openzeppelin/merkle-tree's StandardMerkleTree.of(values, types).

    Leaf hashes are sorted ascending and stored at the end of an array of 2n-1 nodes in reverse order; node i
    has children 2i+1 and 2i+2 and the root is node 0. Same values and types give the same root and proofs.
    """

    def __init__(self, values: Sequence[Sequence[Any]], types: Sequence[str]) -> None:
        if not values:
            raise ValueError("a Merkle tree needs at least one leaf")
        hashes = [standard_leaf_hash(types, v) for v in values]
        order = sorted(range(len(values)), key=lambda i: hashes[i])
        size = 2 * len(order) - 1
        tree: list[bytes] = [ZERO_HASH] * size
        self._tree_index = [0] * len(values)
        for leaf_index, value_index in enumerate(order):
            tree[size - 1 - leaf_index] = hashes[value_index]
            self._tree_index[value_index] = size - 1 - leaf_index
        for i in range(size - 1 - len(order), -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self.tree: tuple[bytes, ...] = tuple(tree)
        """Every node, root first (the `tree` array of the library's dump())."""

    @property
    def root(self) -> bytes:
        """The Merkle root."""
        return self.tree[0]

    def tree_index(self, value_index: int) -> int:
        """Where the value_index-th value's leaf sits in `tree`."""
        return self._tree_index[value_index]

    def proof(self, value_index: int) -> tuple[bytes, ...]:
        """Sibling hashes from the value_index-th value's leaf up to the root."""
        index = self._tree_index[value_index]
        siblings: list[bytes] = []
        while index > 0:
            siblings.append(self.tree[index + 1 if index % 2 else index - 1])
            index = (index - 1) // 2
        return tuple(siblings)


@dataclass(frozen=True)
class RewardClaim:
    """One leaf to claim with its proof (the Solidity Claim struct)."""

    job_id: int
    round: int
    account: str
    amount: int
    proof: tuple[bytes, ...]

    @property
    def leaf(self) -> bytes:
        """The leaf hash this claim proves."""
        return reward_leaf(self.job_id, self.round, self.account, self.amount)

    def as_tuple(self) -> tuple[int, int, str, int, list[bytes]]:
        """The ABI tuple of the Solidity Claim struct."""
        return (self.job_id, self.round, to_checksum_address(self.account), self.amount, list(self.proof))


class RewardTree:
    """The rewards of one round of one job as a Merkle tree: its root is what the aggregator posts, and each
    account claims with its proof."""

    def __init__(self, job_id: int, round: int, rewards: Mapping[str, int]) -> None:
        normalized: dict[str, int] = {}
        for account, amount in rewards.items():
            address = to_checksum_address(account)
            if address == ZERO_ADDRESS:
                raise ValueError("the zero address cannot be rewarded")
            if address in normalized:
                raise ValueError(f"{address} appears twice in the rewards")
            if amount <= 0:
                raise ValueError(f"reward of {address} is {amount}: leave out accounts with nothing to claim")
            normalized[address] = amount
        if not normalized:
            raise ValueError("a round needs at least one reward")
        self.job_id = job_id
        self.round = round
        self.rewards: dict[str, int] = normalized
        """Amount per checksummed account."""
        self._accounts = list(normalized)
        self._position = {a: i for i, a in enumerate(self._accounts)}
        values = [(job_id, round, a, normalized[a]) for a in self._accounts]
        self._tree = StandardMerkleTree(values, REWARD_LEAF_TYPES)

    @property
    def root(self) -> bytes:
        """The root to post for the round."""
        return self._tree.root

    @property
    def total(self) -> int:
        """The sum of all rewards: the total to post with the root."""
        return sum(self.rewards.values())

    def proof(self, account: str) -> tuple[bytes, ...]:
        """The proof of `account`'s leaf (KeyError if it has no reward in this round)."""
        return self._tree.proof(self._position[to_checksum_address(account)])

    def claim(self, account: str) -> RewardClaim:
        """What to submit to claim `account`'s reward."""
        address = to_checksum_address(account)
        return RewardClaim(self.job_id, self.round, address, self.rewards[address], self.proof(address))

    def claims(self) -> list[RewardClaim]:
        """A claim for every rewarded account."""
        return [self.claim(a) for a in self._accounts]


def verify_claim(root: bytes, claim: RewardClaim) -> bool:
    """Whether a claim's proof leads from its leaf to `root` (what the contract checks, computed locally)."""
    return process_proof(claim.leaf, claim.proof) == root


@dataclass(frozen=True)
class FederatedTerms:
    """What a sponsor fixes when creating a federated job (amounts in token base units, times in unix seconds)."""

    aggregator: str
    """Who posts the reward roots: the sponsor itself or an eligible validator."""
    budget: int
    deadline: int
    """Roots may be posted while the block time is before it."""
    claim_window: int
    """Seconds after the deadline during which claims stay open (at least the contract's min_claim_window)."""
    spec_hash: bytes = ZERO_HASH


@dataclass(frozen=True)
class FederatedJob:
    """A federated job as stored on chain."""

    job_id: int
    sponsor: str
    aggregator: str
    deadline: int
    claim_deadline: int
    budget: int
    posted: int
    claimed: int
    refunded: int
    spec_hash: bytes

    @property
    def remaining_budget(self) -> int:
        """Budget not yet reserved by a posted root."""
        return self.budget - self.posted

    @property
    def escrowed(self) -> int:
        """What the contract still holds for this job."""
        return self.budget - self.claimed - self.refunded


@dataclass(frozen=True)
class RewardRound:
    """A round of a job as stored on chain (root all zeros while not posted)."""

    job_id: int
    round: int
    root: bytes
    total: int
    claimed: int

    @property
    def posted(self) -> bool:
        """Whether the aggregator posted this round's root."""
        return self.root != ZERO_HASH


@dataclass(frozen=True)
class FederatedJobCreated:
    """A JobCreated event of FederatedRewards: the budget is escrowed."""

    job_id: int
    sponsor: str
    aggregator: str
    budget: int
    deadline: int
    claim_deadline: int
    spec_hash: bytes


@dataclass(frozen=True)
class RootPosted:
    """A RootPosted event: a round's root, reserving `total` of the budget."""

    job_id: int
    round: int
    root: bytes
    total: int


@dataclass(frozen=True)
class RewardClaimed:
    """A RewardClaimed event: `amount` paid to `account`."""

    job_id: int
    round: int
    account: str
    amount: int


@dataclass(frozen=True)
class RewardSkipped:
    """A ClaimSkipped event of FederatedRewards: a leaf in a claimMany batch that was claimed before."""

    job_id: int
    round: int
    account: str


@dataclass(frozen=True)
class RewardClaimBatch:
    """What one claimMany settled: the leaves paid and the ones already claimed."""

    claimed: tuple[RewardClaimed, ...]
    skipped: tuple[RewardSkipped, ...]

    @property
    def amount(self) -> int:
        """Total paid by the batch."""
        return sum(c.amount for c in self.claimed)


@dataclass(frozen=True)
class FederatedJobRefunded:
    """A JobRefunded event: `amount` went back to the sponsor; `closed` once the claim window is over."""

    job_id: int
    sponsor: str
    amount: int
    closed: bool


class FederatedRewardsClient(ContractClient):
    """FederatedRewards seen from one signer (sponsor, aggregator, contributor or relayer)."""

    contract_name = "FederatedRewards"

    async def create_job(self, terms: FederatedTerms) -> FederatedJobCreated:
        """Escrow the budget for a new job with this signer as sponsor (needs a token allowance for the contract)."""
        fn = self.contract.functions.createJob(
            self._cs(terms.aggregator), terms.budget, terms.deadline, terms.claim_window, terms.spec_hash
        )
        return self._one(await self._send(fn), "JobCreated", _created)

    async def post_root(self, job_id: int, round: int, root: bytes, total: int) -> RootPosted:
        """Post a round's root reserving `total` of the budget (aggregator, before the deadline, once per round)."""
        receipt = await self._send(self.contract.functions.postRoot(job_id, round, root, total))
        return self._one(
            receipt, "RootPosted", lambda a: RootPosted(a["jobId"], a["round"], bytes(a["root"]), a["total"])
        )

    async def post_tree(self, tree: RewardTree) -> RootPosted:
        """Post a reward tree's root and total for its job and round (aggregator)."""
        return await self.post_root(tree.job_id, tree.round, tree.root, tree.total)

    async def claim(self, claim: RewardClaim) -> RewardClaimed:
        """Pay one leaf to its account (anyone may send it; the tokens go to the leaf's account)."""
        account = self._cs(claim.account)
        proof = list(claim.proof)
        fn = self.contract.functions.claim(claim.job_id, claim.round, account, claim.amount, proof)
        return self._one(await self._send(fn), "RewardClaimed", _claimed)

    async def claim_many(self, claims: Sequence[RewardClaim]) -> RewardClaimBatch:
        """Pay several leaves in one transaction; leaves claimed before are skipped, any other fault reverts all."""
        receipt = await self._send(self.contract.functions.claimMany([c.as_tuple() for c in claims]))
        skipped = self._decode(
            receipt, "ClaimSkipped", lambda a: RewardSkipped(a["jobId"], a["round"], str(a["account"]))
        )
        return RewardClaimBatch(tuple(self._decode(receipt, "RewardClaimed", _claimed)), tuple(skipped))

    async def refund(self, job_id: int) -> FederatedJobRefunded:
        """Take back what is refundable now (sponsor): unposted budget after the deadline, every unclaimed reward
        after the claim window."""
        receipt = await self._send(self.contract.functions.refund(job_id))
        return self._one(
            receipt,
            "JobRefunded",
            lambda a: FederatedJobRefunded(a["jobId"], a["sponsor"], a["amount"], a["closed"]),
        )

    async def get_job(self, job_id: int) -> FederatedJob:
        """A job by id."""
        raw = await self.conn.call(self.contract.functions.getJob(job_id))
        sponsor, deadline, aggregator, budget, posted, claimed, claim_deadline, refunded, spec_hash = raw
        return FederatedJob(
            job_id,
            str(sponsor),
            str(aggregator),
            deadline,
            claim_deadline,
            budget,
            posted,
            claimed,
            refunded,
            bytes(spec_hash),
        )

    async def job_count(self) -> int:
        """Number of jobs created (the highest id)."""
        count: int = await self.conn.call(self.contract.functions.jobCount())
        return count

    async def get_round(self, job_id: int, round: int) -> RewardRound:
        """A round of a job (not posted: root all zeros)."""
        root, total, claimed = await self.conn.call(self.contract.functions.getRound(job_id, round))
        return RewardRound(job_id, round, bytes(root), total, claimed)

    async def is_claimed(self, job_id: int, round: int, account: str) -> bool:
        """Whether `account`'s leaf of the round was claimed."""
        claimed: bool = await self.conn.call(self.contract.functions.isClaimed(job_id, round, self._cs(account)))
        return claimed

    async def remaining_budget(self, job_id: int) -> int:
        """Budget the aggregator may still post."""
        value: int = await self.conn.call(self.contract.functions.remainingBudget(job_id))
        return value

    async def refundable(self, job_id: int) -> int:
        """What refund would pay the sponsor now."""
        value: int = await self.conn.call(self.contract.functions.refundable(job_id))
        return value

    async def verify_claim(self, claim: RewardClaim) -> bool:
        """Whether the contract accepts the claim's proof against its round's posted root."""
        fn = self.contract.functions.verifyClaim(
            claim.job_id, claim.round, self._cs(claim.account), claim.amount, list(claim.proof)
        )
        valid: bool = await self.conn.call(fn)
        return valid

    async def leaf_hash(self, job_id: int, round: int, account: str, amount: int) -> bytes:
        """The leaf as the contract computes it."""
        leaf: bytes = await self.conn.call(self.contract.functions.leafHash(job_id, round, self._cs(account), amount))
        return bytes(leaf)

    async def min_claim_window(self) -> int:
        """Shortest claim window (seconds) the contract accepts."""
        value: int = await self.conn.call(self.contract.functions.minClaimWindow())
        return value


def _created(args: dict[str, Any]) -> FederatedJobCreated:
    return FederatedJobCreated(
        args["jobId"],
        args["sponsor"],
        args["aggregator"],
        args["budget"],
        args["deadline"],
        args["claimDeadline"],
        bytes(args["specHash"]),
    )


def _claimed(args: dict[str, Any]) -> RewardClaimed:
    return RewardClaimed(args["jobId"], args["round"], str(args["account"]), args["amount"])
