// SPDX-License-Identifier: GPL-3.0
pragma circom 2.1.0;

// Conversion attribution for agora's AdCampaigns: proves that the prover knows the secret behind
// one leaf of a merchant-published Poseidon Merkle tree of conversion commitments, without saying
// which leaf, and binds the claim to one campaign, one nullifier and one payee.
//
//   leaf      = Poseidon(secret, campaignId, salt)   (the commitment a user hands the merchant)
//   nullifier = Poseidon(secret, campaignId)         (burned on chain: one claim per conversion)
//
// Public inputs, in this order (the verifier's pubSignals): root, nullifier, campaignId, payee.

include "../../node_modules/circomlib/circuits/poseidon.circom";
include "../../node_modules/circomlib/circuits/mux1.circom";

// Root of a binary Poseidon Merkle tree from a leaf, its siblings and its path bits (bit i = 1:
// the node at level i is a right child).
template MerkleRoot(depth) {
    signal input leaf;
    signal input siblings[depth];
    signal input pathBits[depth];
    signal output root;

    component hashers[depth];
    component muxes[depth];
    signal nodes[depth + 1];
    nodes[0] <== leaf;
    for (var i = 0; i < depth; i++) {
        pathBits[i] * (1 - pathBits[i]) === 0;
        muxes[i] = MultiMux1(2);
        muxes[i].c[0][0] <== nodes[i];
        muxes[i].c[0][1] <== siblings[i];
        muxes[i].c[1][0] <== siblings[i];
        muxes[i].c[1][1] <== nodes[i];
        muxes[i].s <== pathBits[i];
        hashers[i] = Poseidon(2);
        hashers[i].inputs[0] <== muxes[i].out[0];
        hashers[i].inputs[1] <== muxes[i].out[1];
        nodes[i + 1] <== hashers[i].out;
    }
    root <== nodes[depth];
}

template Conversion(depth) {
    signal input root;
    signal input nullifier;
    signal input campaignId;
    signal input payee;

    signal input secret;
    signal input salt;
    signal input siblings[depth];
    signal input pathBits[depth];

    component leaf = Poseidon(3);
    leaf.inputs[0] <== secret;
    leaf.inputs[1] <== campaignId;
    leaf.inputs[2] <== salt;

    component tree = MerkleRoot(depth);
    tree.leaf <== leaf.out;
    for (var i = 0; i < depth; i++) {
        tree.siblings[i] <== siblings[i];
        tree.pathBits[i] <== pathBits[i];
    }
    root === tree.root;

    component nullifierHash = Poseidon(2);
    nullifierHash.inputs[0] <== secret;
    nullifierHash.inputs[1] <== campaignId;
    nullifier === nullifierHash.out;

    // A public input no constraint touches could be swapped after proving; squaring it puts the
    // payee into the proof (as Tornado Cash and Semaphore do), so a proof cannot be redirected.
    signal payeeSquare;
    payeeSquare <== payee * payee;
}

component main {public [root, nullifier, campaignId, payee]} = Conversion(20);
