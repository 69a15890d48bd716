"""Zero-knowledge conversion proofs: Poseidon, the commitment Merkle tree and the prover.

The circuit build (`python -m marketplace.zk.build`) is imported on its own, so `-m` runs it cleanly.
"""

from marketplace.zk.artifacts import CircuitArtifacts
from marketplace.zk.conversion import PUBLIC_INPUTS, ConversionSecret, address_to_field, circuit_inputs
from marketplace.zk.merkle import TREE_DEPTH, MerkleProof, MerkleTree, zero_hashes
from marketplace.zk.poseidon import FIELD, poseidon, poseidon2
from marketplace.zk.prover import Proof, Prover, ProverCrashed, ProverError, ProverNotRunning, WitnessError

__all__ = [
    "FIELD",
    "PUBLIC_INPUTS",
    "TREE_DEPTH",
    "CircuitArtifacts",
    "ConversionSecret",
    "MerkleProof",
    "MerkleTree",
    "Proof",
    "Prover",
    "ProverCrashed",
    "ProverError",
    "ProverNotRunning",
    "WitnessError",
    "address_to_field",
    "circuit_inputs",
    "poseidon",
    "poseidon2",
    "zero_hashes",
]
