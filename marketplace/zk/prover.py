"""Groth16 proofs of the conversion circuit from a long-running worker: node + snarkjs (tools/zk/prover.js), or,
optionally, groth16py's arkworks prover (marketplace/zk/arkworks.py) speaking the same protocol.

The worker loads the circuit's wasm and zkey once; the async client talks to it over pipes, so proving never
blocks the event loop. The same worker verifies proofs off chain (for validators) against the verifying key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from marketplace.paths import project_root
from marketplace.zk.artifacts import CircuitArtifacts

G1 = tuple[int, int]
G2 = tuple[tuple[int, int], tuple[int, int]]


class ProverError(RuntimeError):
    """The prover worker failed a request."""


class WitnessError(ProverError):
    """The inputs do not satisfy the circuit (wrong root, secret, nullifier...): no proof exists for them."""


class ProverCrashed(ProverError):
    """The worker process exited or wrote something that is not a reply."""


class ProverNotRunning(ProverError):
    """`prove`/`verify` was called before `start` (or after `stop`)."""


@dataclass(frozen=True)
class Proof:
    """A Groth16 proof with its public signals (root, nullifier, campaignId, payee)."""

    a: G1
    b: G2
    """As snarkjs writes it: each G2 coordinate is (c0, c1); the EVM precompile wants (c1, c0)."""
    c: G1
    public_signals: tuple[int, ...]

    @classmethod
    def from_snarkjs(cls, proof: Mapping[str, Any], public_signals: Sequence[str]) -> Proof:
        """Parse snarkjs's JSON proof (projective coordinates, decimal strings)."""
        pa, pb, pc = proof["pi_a"], proof["pi_b"], proof["pi_c"]
        return cls(
            a=(int(pa[0]), int(pa[1])),
            b=((int(pb[0][0]), int(pb[0][1])), (int(pb[1][0]), int(pb[1][1]))),
            c=(int(pc[0]), int(pc[1])),
            public_signals=tuple(int(s) for s in public_signals),
        )

    def to_snarkjs(self) -> tuple[dict[str, Any], list[str]]:
        """The proof and public signals as snarkjs's verify takes them."""
        proof = {
            "pi_a": [str(self.a[0]), str(self.a[1]), "1"],
            "pi_b": [[str(self.b[0][0]), str(self.b[0][1])], [str(self.b[1][0]), str(self.b[1][1])], ["1", "0"]],
            "pi_c": [str(self.c[0]), str(self.c[1]), "1"],
            "protocol": "groth16",
            "curve": "bn128",
        }
        return proof, [str(s) for s in self.public_signals]

    def solidity_b(self) -> G2:
        """pi_b with each pair's halves swapped, as Groth16Verifier.verifyProof takes it."""
        return ((self.b[0][1], self.b[0][0]), (self.b[1][1], self.b[1][0]))

    def packed(self) -> tuple[int, int, int, int, int, int, int, int]:
        """The proof as the 8 words AdCampaigns takes: a, swapped b, c."""
        b = self.solidity_b()
        return (self.a[0], self.a[1], b[0][0], b[0][1], b[1][0], b[1][1], self.c[0], self.c[1])

    def with_public_signals(self, public_signals: Sequence[int]) -> Proof:
        """The same proof claiming other public signals (for tests of tampering)."""
        return Proof(self.a, self.b, self.c, tuple(public_signals))


WORKER_SCRIPT = "tools/zk/prover.js"
STREAM_LIMIT = 1 << 20


class Prover:
    """Async client of one prover worker; requests are served one at a time, in order."""

    def __init__(
        self, artifacts: CircuitArtifacts, *, node: str = "node", backend: Literal["snarkjs", "arkworks"] = "snarkjs"
    ) -> None:
        self._artifacts = artifacts
        self._node = node
        self.backend = backend
        """`snarkjs` (the node worker, tools/zk/prover.js) or `arkworks` (groth16py, marketplace/zk/arkworks.py):
        the same protocol, proofs the same verifier accepts."""
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0

    @property
    def running(self) -> bool:
        """True while the worker process is alive."""
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Spawn the worker and wait until it has loaded the circuit."""
        if self.running:
            return
        a = self._artifacts
        if self.backend == "arkworks":
            source = project_root() / "contracts" / "circuits" / "conversion.circom"
            command = [sys.executable, "-m", "marketplace.zk.arkworks", str(a.zkey), str(source), str(a.vkey)]
        else:
            command = [self._node, str(project_root() / WORKER_SCRIPT), str(a.wasm), str(a.zkey), str(a.vkey)]
        self._process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=str(project_root()),
            limit=STREAM_LIMIT,
        )
        await self._request({"op": "ping"})

    async def stop(self) -> None:
        """Close the worker's stdin and wait for it to exit (kill it if it does not within 5 s)."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            process.kill()
            await process.wait()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def prove(self, inputs: Mapping[str, object]) -> Proof:
        """Prove the circuit on `inputs` (see marketplace.zk.conversion.circuit_inputs)."""
        reply = await self._request({"op": "prove", "input": dict(inputs)})
        return Proof.from_snarkjs(reply["proof"], reply["publicSignals"])

    async def verify(self, proof: Proof) -> bool:
        """Check a proof against the verifying key off chain (what a validator runs)."""
        snark, signals = proof.to_snarkjs()
        reply = await self._request({"op": "verify", "proof": snark, "publicSignals": signals})
        return bool(reply["valid"])

    async def _request(self, message: dict[str, object]) -> dict[str, Any]:
        async with self._lock:
            process = self._process
            if process is None or process.returncode is not None:
                raise ProverNotRunning("the prover worker is not running: call start() first")
            assert process.stdin is not None
            assert process.stdout is not None
            self._next_id += 1
            request_id = self._next_id
            process.stdin.write((json.dumps({"id": request_id, **message}) + "\n").encode())
            try:
                await process.stdin.drain()
                line = await process.stdout.readline()
            except (ConnectionError, BrokenPipeError) as error:
                raise ProverCrashed(f"prover worker pipe broke: {error}") from error
            if not line:
                raise ProverCrashed(f"prover worker exited: {await _stderr_tail(process)}")
            try:
                reply: dict[str, Any] = json.loads(line)
            except json.JSONDecodeError as error:
                raise ProverCrashed(f"prover worker wrote {line[:200]!r}") from error
            if reply.get("id") != request_id:
                raise ProverCrashed(f"reply {reply.get('id')} to request {request_id}")
            if not reply.get("ok"):
                kind = WitnessError if reply.get("kind") == "witness" else ProverError
                raise kind(str(reply.get("error")))
            return reply


async def _stderr_tail(process: asyncio.subprocess.Process) -> str:
    if process.stderr is None:
        return ""
    with contextlib.suppress(TimeoutError):
        data = await asyncio.wait_for(process.stderr.read(), timeout=2)
        return data.decode(errors="replace")[-2000:]
    return ""
