// SPDX-License-Identifier: MIT
// agora's Groth16 prover worker: a long-running node process (marketplace/zk/prover.py drives it).
// Usage: node tools/zk/prover.js <circuit.wasm> <circuit.zkey> <verification_key.json>
// Reads one JSON request per line on stdin, writes one JSON reply per line on stdout:
//   {"id": 1, "op": "prove", "input": {...}}                 -> {"id": 1, "ok": true, "proof": {...}, "publicSignals": [...], "ms": 640}
//   {"id": 2, "op": "verify", "proof": {...}, "publicSignals": [...]} -> {"id": 2, "ok": true, "valid": true, "ms": 15}
//   failure                                                  -> {"id": n, "ok": false, "kind": "witness" | "request", "error": "..."}
// The wasm and zkey are loaded once, so a warm proof skips reading them.
"use strict";

const fs = require("fs");
const readline = require("readline");
const snarkjs = require("snarkjs");

const [wasmPath, zkeyPath, vkeyPath] = process.argv.slice(2);
if (!wasmPath || !zkeyPath || !vkeyPath) {
  process.stderr.write("usage: prover.js <circuit.wasm> <circuit.zkey> <verification_key.json>\n");
  process.exit(2);
}
const wasm = { type: "mem", data: new Uint8Array(fs.readFileSync(wasmPath)) };
const zkey = { type: "mem", data: new Uint8Array(fs.readFileSync(zkeyPath)) };
const vkey = JSON.parse(fs.readFileSync(vkeyPath, "utf8"));

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function handle(request) {
  const started = process.hrtime.bigint();
  const ms = () => Number((process.hrtime.bigint() - started) / 1000000n);
  if (request.op === "prove") {
    let result;
    try {
      result = await snarkjs.groth16.fullProve(request.input, wasm, zkey);
    } catch (error) {
      return { id: request.id, ok: false, kind: "witness", error: String(error && error.message ? error.message : error) };
    }
    return { id: request.id, ok: true, proof: result.proof, publicSignals: result.publicSignals, ms: ms() };
  }
  if (request.op === "verify") {
    const valid = await snarkjs.groth16.verify(vkey, request.publicSignals, request.proof);
    return { id: request.id, ok: true, valid: valid === true, ms: ms() };
  }
  if (request.op === "ping") {
    return { id: request.id, ok: true };
  }
  return { id: request.id, ok: false, kind: "request", error: `unknown op ${request.op}` };
}

// One request at a time, in order: proving already uses every core through snarkjs's own workers.
let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let request;
    try {
      request = JSON.parse(line);
    } catch (error) {
      reply({ id: null, ok: false, kind: "request", error: `bad JSON: ${error.message}` });
      return;
    }
    try {
      reply(await handle(request));
    } catch (error) {
      reply({ id: request.id, ok: false, kind: "request", error: String(error && error.message ? error.message : error) });
    }
  });
});
lines.on("close", () => {
  queue.then(() => process.exit(0));
});
