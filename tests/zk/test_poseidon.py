"""Poseidon and the commitment Merkle tree in Python, checked against circomlibjs (node, offline)."""

from __future__ import annotations

import json
import subprocess

import pytest

from marketplace.paths import project_root
from marketplace.zk import FIELD, ConversionSecret, MerkleTree, poseidon, poseidon2, zero_hashes
from marketplace.zk.merkle import compute_root

INPUTS: list[list[int]] = [[0], [1, 2], [FIELD - 1, 7, 123456789], [3, 1, 4, 1, 5], list(range(1, 17))]
LEAVES = [11, 22, 33, 44, 55]
DEPTH = 20

# circomlibjs hashes INPUTS, then builds a depth-20 tree over LEAVES with zero padding and prints the
# root after each append, so the Python tree is checked at every size.
PARITY_SCRIPT = """
import { buildPoseidon } from "circomlibjs";
const p = await buildPoseidon();
const h = (xs) => p.F.toObject(p(xs.map(BigInt)));
const { inputs, leaves, depth } = JSON.parse(process.argv[1]);
const hashes = inputs.map((xs) => h(xs).toString());
const zeros = [0n];
for (let i = 0; i < depth; i++) zeros.push(h([zeros[i], zeros[i]]));
const roots = [];
for (let n = 1; n <= leaves.length; n++) {
  let level = leaves.slice(0, n).map(BigInt);
  for (let d = 0; d < depth; d++) {
    const next = [];
    for (let i = 0; i < level.length; i += 2) next.push(h([level[i], i + 1 < level.length ? level[i + 1] : zeros[d]]));
    level = next;
  }
  roots.push(level[0].toString());
}
console.log(JSON.stringify({ hashes, roots, emptyRoot: zeros[depth].toString() }));
process.exit(0);
"""


@pytest.fixture(scope="module")
def circomlibjs() -> dict[str, object]:
    """What circomlibjs computes for INPUTS and LEAVES."""
    args = json.dumps({"inputs": [[str(x) for x in xs] for xs in INPUTS], "leaves": LEAVES, "depth": DEPTH})
    done = subprocess.run(
        ["node", "--input-type=module", "-e", PARITY_SCRIPT, args],
        cwd=project_root(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_poseidon_matchesCircomlibjs(circomlibjs: dict[str, object]) -> None:
    assert [str(poseidon(xs)) for xs in INPUTS] == circomlibjs["hashes"]


def test_poseidon_knownVector() -> None:
    # circomlib's test vector for Poseidon([1, 2]).
    assert poseidon2(1, 2) == 7853200120776062878684798364095072458815029376092732009249414926327459813530


def test_poseidon_rejectsNonFieldInputsAndBadArity() -> None:
    with pytest.raises(ValueError, match="not a field element"):
        poseidon([FIELD])
    with pytest.raises(ValueError, match="takes 1"):
        poseidon([])
    with pytest.raises(ValueError, match="takes 1"):
        poseidon([1] * 17)


def test_merkleTree_rootsMatchCircomlibjs(circomlibjs: dict[str, object]) -> None:
    tree = MerkleTree(DEPTH)
    assert str(tree.root) == circomlibjs["emptyRoot"]
    roots = []
    for leaf in LEAVES:
        tree.append(leaf)
        roots.append(str(tree.root))
    assert roots == circomlibjs["roots"]


def test_merkleTree_proofsVerifyForEveryLeaf() -> None:
    tree = MerkleTree(DEPTH)
    tree.extend(LEAVES)
    for index, leaf in enumerate(LEAVES):
        proof = tree.proof(index)
        assert (proof.leaf, proof.index, proof.root) == (leaf, index, tree.root)
        assert proof.path_bits == tuple((index >> level) & 1 for level in range(DEPTH))
        assert proof.verify()
        assert compute_root(leaf + 1, proof.siblings, proof.path_bits) != tree.root


def test_merkleTree_zeroHashesPadEmptySubtrees() -> None:
    zeros = zero_hashes(3)
    tree = MerkleTree(3)
    tree.append(5)
    assert tree.root == poseidon2(poseidon2(poseidon2(5, 0), zeros[1]), zeros[2])


def test_merkleTree_rejectsOverflowAndNonFieldLeaves() -> None:
    tree = MerkleTree(1)
    tree.extend([1, 2])
    with pytest.raises(ValueError, match="full"):
        tree.append(3)
    with pytest.raises(ValueError, match="not a field element"):
        MerkleTree(2).append(FIELD)
    with pytest.raises(IndexError):
        tree.proof(2)


def test_conversionSecret_bindsCampaignIntoCommitmentAndNullifier() -> None:
    secret = ConversionSecret(campaign_id=1, secret=42, salt=7)
    assert secret.commitment == poseidon((42, 1, 7))
    assert secret.nullifier == poseidon((42, 1))
    other = ConversionSecret(campaign_id=2, secret=42, salt=7)
    assert (other.commitment, other.nullifier) != (secret.commitment, secret.nullifier)
    fresh = ConversionSecret.new(1)
    assert 0 <= fresh.secret < FIELD
    assert fresh.secret != ConversionSecret.new(1).secret
