"""Incremental Poseidon Merkle tree (the conversion circuit's tree): fixed depth, empty leaves are zero."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.zk.poseidon import FIELD, poseidon2

TREE_DEPTH = 20
"""Depth the conversion circuit is compiled for: up to 2^20 commitments per root."""
EMPTY_LEAF = 0


def zero_hashes(depth: int = TREE_DEPTH) -> tuple[int, ...]:
    """Root of an empty subtree of each height 0..depth (zero[0] is the empty leaf)."""
    zeros = [EMPTY_LEAF]
    for _ in range(depth):
        zeros.append(poseidon2(zeros[-1], zeros[-1]))
    return tuple(zeros)


@dataclass(frozen=True)
class MerkleProof:
    """Membership of one leaf: siblings bottom-up and path bits (1: the node on the path is a right child)."""

    leaf: int
    index: int
    siblings: tuple[int, ...]
    path_bits: tuple[int, ...]
    root: int

    def verify(self) -> bool:
        """Recompute the root from the leaf and path."""
        return compute_root(self.leaf, self.siblings, self.path_bits) == self.root


def compute_root(leaf: int, siblings: tuple[int, ...], path_bits: tuple[int, ...]) -> int:
    """Root reached from `leaf` along the given path, as the circuit computes it."""
    node = leaf
    for sibling, bit in zip(siblings, path_bits, strict=True):
        node = poseidon2(sibling, node) if bit else poseidon2(node, sibling)
    return node


class MerkleTree:
    """An append-only Poseidon tree of fixed depth; each append updates one path (depth hashes)."""

    def __init__(self, depth: int = TREE_DEPTH) -> None:
        if not 1 <= depth <= 32:
            raise ValueError(f"depth must be 1..32, got {depth}")
        self.depth = depth
        self._zeros = zero_hashes(depth)
        self._levels: list[list[int]] = [[] for _ in range(depth + 1)]

    def __len__(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> int:
        """Current root (the empty tree's root when no leaf was appended)."""
        top = self._levels[self.depth]
        return top[0] if top else self._zeros[self.depth]

    def append(self, leaf: int) -> int:
        """Add a leaf and return its index."""
        if not 0 <= leaf < FIELD:
            raise ValueError("leaf is not a field element")
        index = len(self)
        if index >= 1 << self.depth:
            raise ValueError(f"tree of depth {self.depth} is full")
        self._levels[0].append(leaf)
        node, position = leaf, index
        for level in range(self.depth):
            sibling = self._node(level, position ^ 1)
            node = poseidon2(sibling, node) if position & 1 else poseidon2(node, sibling)
            position >>= 1
            parents = self._levels[level + 1]
            if position < len(parents):
                parents[position] = node
            else:
                parents.append(node)
        return index

    def extend(self, leaves: list[int]) -> None:
        """Append several leaves in order."""
        for leaf in leaves:
            self.append(leaf)

    def index_of(self, leaf: int) -> int:
        """Index of the first occurrence of `leaf`; ValueError when absent."""
        return self._levels[0].index(leaf)

    def proof(self, index: int) -> MerkleProof:
        """Membership proof of the leaf at `index` against the current root."""
        if not 0 <= index < len(self):
            raise IndexError(f"no leaf at {index}")
        siblings = tuple(self._node(level, (index >> level) ^ 1) for level in range(self.depth))
        bits = tuple((index >> level) & 1 for level in range(self.depth))
        return MerkleProof(self._levels[0][index], index, siblings, bits, self.root)

    def _node(self, level: int, position: int) -> int:
        nodes = self._levels[level]
        return nodes[position] if position < len(nodes) else self._zeros[level]
