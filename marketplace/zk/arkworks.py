"""An optional faster prover worker: groth16py (arkworks, in Rust) behind the same JSON-lines protocol as the
node worker (tools/zk/prover.js), so `Prover(artifacts, backend="arkworks")` drives either.

    python -m marketplace.zk.arkworks <circuit.zkey> <circuit.circom> <verification_key.json>

It proves with the snarkjs ceremony key itself (`import_zkey`), so its proofs are accepted by the verifying key
and the Solidity verifier generated from that key; tests/zk/test_arkworks.py checks both, and bench/zk.py
times it against the node worker. The worker compiles the circuit once at start-up (a few seconds) and then
serves requests one at a time, in order, off the caller's event loop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from marketplace.zk.conversion import PUBLIC_INPUTS

WORD = 32


def snarkjs_proof(ethereum: bytes) -> dict[str, Any]:
    """groth16py's Ethereum-layout proof (a, b with each Fp2 pair as (c1, c0), c; 8 words) as snarkjs's JSON."""
    if len(ethereum) != 8 * WORD:
        raise ValueError(f"a Groth16 proof is {8 * WORD} bytes, not {len(ethereum)}")
    w = [str(int.from_bytes(ethereum[i * WORD : (i + 1) * WORD], "big")) for i in range(8)]
    return {
        "pi_a": [w[0], w[1], "1"],
        "pi_b": [[w[3], w[2]], [w[5], w[4]], ["1", "0"]],
        "pi_c": [w[6], w[7], "1"],
        "protocol": "groth16",
        "curve": "bn128",
    }


def ethereum_proof(proof: dict[str, Any]) -> bytes:
    """Inverse of snarkjs_proof."""
    a, b, c = proof["pi_a"], proof["pi_b"], proof["pi_c"]
    words = [a[0], a[1], b[0][1], b[0][0], b[1][1], b[1][0], c[0], c[1]]
    return b"".join(int(word).to_bytes(WORD, "big") for word in words)


def _integers(inputs: dict[str, Any]) -> dict[str, object]:
    """snarkjs input JSON (decimal strings) as the integers groth16py takes."""
    return {k: [int(x) for x in v] if isinstance(v, list) else int(v) for k, v in inputs.items()}


def handler(zkey: str, circuit: str, vkey: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Load the keys once; return the function answering one request."""
    import groth16py

    proving, _ = groth16py.import_zkey(zkey, circuit)
    with open(vkey) as file:
        verifier = groth16py.Verifier(groth16py.VerifyingKey.from_snarkjs(file.read()))

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        op, request_id = request.get("op"), request.get("id")
        if op == "prove":
            try:
                inputs = _integers(request["input"])
                proof = groth16py.prove(proving, inputs)
            except (groth16py.WitnessError, KeyError, TypeError, ValueError) as error:
                return {"id": request_id, "ok": False, "kind": "witness", "error": str(error)}
            public = [int(str(inputs[name])) for name in PUBLIC_INPUTS]
            # groth16py proves whatever witness it computes, satisfied or not: a proof of unsatisfied constraints
            # fails its own check, and is reported as the node worker reports a witness that does not compute.
            if not verifier.verify(proof, public):
                return {
                    "id": request_id,
                    "ok": False,
                    "kind": "witness",
                    "error": "the inputs do not satisfy the circuit",
                }
            signals = [str(value) for value in public]
            ms = round((time.perf_counter() - started) * 1000)
            return {"id": request_id, "ok": True, "proof": snarkjs_proof(proof), "publicSignals": signals, "ms": ms}
        if op == "verify":
            public = [int(signal) for signal in request["publicSignals"]]
            valid = verifier.verify(ethereum_proof(request["proof"]), public)
            return {
                "id": request_id,
                "ok": True,
                "valid": bool(valid),
                "ms": round((time.perf_counter() - started) * 1000),
            }
        if op == "ping":
            return {"id": request_id, "ok": True}
        return {"id": request_id, "ok": False, "kind": "request", "error": f"unknown op {op}"}

    return handle


def main() -> None:
    """Serve requests on stdin until it closes."""
    if len(sys.argv) != 4:
        sys.stderr.write("usage: python -m marketplace.zk.arkworks <circuit.zkey> <circuit.circom> <vkey.json>\n")
        raise SystemExit(2)
    # Loading compiles the circuit, and the compiler prints to file descriptor 1: keep that off the replies.
    sys.stdout.flush()
    replies = os.dup(1)
    os.dup2(2, 1)
    try:
        handle = handler(*sys.argv[1:])
    finally:
        os.dup2(replies, 1)
        os.close(replies)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            reply = handle(request)
        except Exception as error:  # a bad request must never kill the worker
            reply = {"id": None, "ok": False, "kind": "request", "error": str(error)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
