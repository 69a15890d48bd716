"""Build the conversion circuit and its Groth16 setup offline, cached by a hash of everything that shapes them.

`python -m marketplace.zk.build` compiles contracts/circuits/conversion.circom with the circom2 wasm from
node_modules (--O2), takes the development powers of tau (2^13) shipped in marketplace/zk/setup/ (or makes it,
when that copy is missing or altered), makes a Groth16 setup with snarkjs, exports
the verifying key and the Solidity verifier, and keeps all of it under `.zk-build/<key>/`; a second run with
the same inputs returns at once. The verifier (contracts/Groth16Verifier.sol) and the verifying key
(marketplace/zk/conversion_vkey.json) are committed; a build checks them against its own output and
`--export` rewrites them.

The development setup is deterministic (random beacons with a fixed, public seed) so that every clone
reproduces the committed verifying key; its toxic waste is therefore public and proofs are forgeable: it is
for development only. A production setup takes a ceremony file with `--ptau PATH` and contributes fresh
entropy; export its verifier and key with `--export` and commit them.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from marketplace.paths import MissingToolError, project_root
from marketplace.zk.artifacts import CircuitArtifacts

CIRCUIT = "conversion"
RECIPE_VERSION = "1"
"""Bump when the steps below change in a way that changes their output."""
DEV_POWER = 13
"""2^13 = 8,192 >= the circuit's 5,362 constraints + public inputs."""
DEV_BEACON = hashlib.sha256(b"agora development setup: public, forgeable, never for production").hexdigest()
BEACON_EXPONENT = "10"
CIRCOMLIB_INCLUDES = ("poseidon.circom", "poseidon_constants.circom", "mux1.circom")
VKEY_NAME = "conversion_vkey.json"
VERIFIER_NAME = "Groth16Verifier.sol"


class BuildError(RuntimeError):
    """A build step failed, or the committed verifier/key disagree with the build."""


def cache_root() -> Path:
    """Where builds are cached (git-ignored); `AGORA_ZK_CACHE` overrides it."""
    return Path(os.environ.get("AGORA_ZK_CACHE", project_root() / ".zk-build")).resolve()


def circuit_source() -> Path:
    """The circom source of the conversion circuit."""
    return project_root() / "contracts" / "circuits" / f"{CIRCUIT}.circom"


def committed_vkey_path() -> Path:
    """The committed verifying key the on-chain verifier was generated from."""
    return Path(__file__).resolve().parent / VKEY_NAME


def committed_verifier_path() -> Path:
    """The committed, generated Solidity verifier that Ape compiles."""
    return project_root() / "contracts" / VERIFIER_NAME


def _node_modules() -> Path:
    return project_root() / "node_modules"


def _package_version(name: str) -> str:
    manifest = _node_modules() / name / "package.json"
    if not manifest.exists():
        raise MissingToolError(f"{name} not found in {_node_modules()}: run `make bootstrap` (or `npm ci`)")
    return str(json.loads(manifest.read_text())["version"])


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_key(ptau: Path | None = None) -> str:
    """Hash of the circuit source, its circomlib includes, tool versions, recipe and setup source."""
    digest = hashlib.sha256()
    digest.update(f"recipe={RECIPE_VERSION};power={DEV_POWER};beacon={DEV_BEACON}\n".encode())
    for package in ("circom2", "snarkjs", "circomlib"):
        digest.update(f"{package}={_package_version(package)}\n".encode())
    digest.update(circuit_source().read_bytes())
    for name in CIRCOMLIB_INCLUDES:
        digest.update((_node_modules() / "circomlib" / "circuits" / name).read_bytes())
    digest.update(f"ptau={_sha256_file(ptau) if ptau else 'dev'}\n".encode())
    return digest.hexdigest()[:16]


def _artifacts(directory: Path, key: str, production: bool) -> CircuitArtifacts:
    return CircuitArtifacts(
        directory=directory,
        wasm=directory / f"{CIRCUIT}_js" / f"{CIRCUIT}.wasm",
        zkey=directory / f"{CIRCUIT}.zkey",
        vkey=directory / VKEY_NAME,
        verifier=directory / VERIFIER_NAME,
        r1cs=directory / f"{CIRCUIT}.r1cs",
        key=key,
        production=production,
    )


def _run(*args: str | Path, cwd: Path) -> None:
    command = [str(a) for a in args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603 - node tools from node_modules
    if done.returncode != 0:
        raise BuildError(
            f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )


def _snarkjs(*args: str | Path, cwd: Path) -> None:
    _run("node", _node_modules() / "snarkjs" / "build" / "cli.cjs", *args, cwd=cwd)


SHIPPED_PTAU_SHA256 = "0b3addbf4dabe05b5649fef4328e5aee4ed098338f58a763d6656250411a83c3"
"""The development powers of tau under marketplace/zk/setup/ (9 MB, shipped so a fresh clone skips the
~2.5 min derivation): the file every derivation with this recipe and snarkjs version makes, byte for byte (two
clean builds on different days gave this hash). Used only when its hash matches; otherwise it is derived."""


def _shipped_ptau(name: str) -> Path | None:
    """The shipped copy of the development ptau `name`, if there is one and it is intact."""
    shipped = project_root() / "marketplace" / "zk" / "setup" / name
    if shipped.exists() and _sha256_file(shipped) == SHIPPED_PTAU_SHA256:
        return shipped
    return None


def _dev_ptau(log: bool) -> Path:
    """The prepared development powers of tau: the shipped copy when intact, else made once per snarkjs version
    (the slow step, ~2.5 min)."""
    directory = cache_root() / "ptau"
    final = directory / f"dev-bn128-{DEV_POWER}-snarkjs{_package_version('snarkjs')}-r{RECIPE_VERSION}.ptau"
    if final.exists():
        return final
    directory.mkdir(parents=True, exist_ok=True)
    shipped = _shipped_ptau(final.name)
    if shipped is not None:
        _say(log, f"dev powers of tau 2^{DEV_POWER}: the shipped copy ({shipped.relative_to(project_root())})")
        shutil.copyfile(shipped, final)
        return final
    work = directory / f"tmp-{os.getpid()}"
    work.mkdir()
    try:
        _say(log, f"dev powers of tau 2^{DEV_POWER} (prepare phase2 takes ~2.5 min)")
        _snarkjs("powersoftau", "new", "bn128", str(DEV_POWER), "pot_0.ptau", cwd=work)
        _snarkjs(
            "powersoftau", "beacon", "pot_0.ptau", "pot_1.ptau", DEV_BEACON, BEACON_EXPONENT, "-n=agora-dev", cwd=work
        )
        _snarkjs("powersoftau", "prepare", "phase2", "pot_1.ptau", "pot_final.ptau", cwd=work)
        (work / "pot_final.ptau").replace(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _say(log: bool, message: str) -> None:
    if log:
        print(f"[zk build] {message}", file=sys.stderr, flush=True)


def build(ptau: Path | None = None, *, log: bool = False) -> CircuitArtifacts:
    """Compile and set up the circuit, or return the cached build with the same key."""
    production = ptau is not None
    if ptau is not None and not ptau.exists():
        raise BuildError(f"ptau file not found: {ptau}")
    key = build_key(ptau)
    directory = cache_root() / f"{CIRCUIT}-{key}"
    done = _artifacts(directory, key, production)
    if (directory / "manifest.json").exists():
        return done
    with _cache_lock():
        # Another process may have finished the same build while this one waited for the lock.
        if not (directory / "manifest.json").exists():
            _build_into(directory, key, ptau, log)
    return done


@contextmanager
def _cache_lock() -> Iterator[None]:
    """One build at a time per cache (parallel test workers wait instead of building twice)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(directory: Path, key: str, ptau: Path | None, log: bool) -> None:
    production = ptau is not None
    powers = ptau.resolve() if ptau is not None else _dev_ptau(log)
    work = cache_root() / f"tmp-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _say(log, "compiling the circuit (circom2 --O2)")
        _run(
            "node",
            _node_modules() / "circom2" / "cli.js",
            circuit_source(),
            "--r1cs",
            "--wasm",
            "--O2",
            "-o",
            work,
            cwd=project_root(),
        )
        _say(log, "groth16 setup")
        _snarkjs("groth16", "setup", f"{CIRCUIT}.r1cs", powers, "c_0.zkey", cwd=work)
        if production:
            # snarkjs mixes its own crypto.randomBytes into this entropy, so the argument alone does not
            # reveal the contribution.
            entropy = secrets.token_hex(32)
            _snarkjs("zkey", "contribute", "c_0.zkey", f"{CIRCUIT}.zkey", "-n=agora", f"-e={entropy}", cwd=work)
        else:
            _snarkjs(
                "zkey", "beacon", "c_0.zkey", f"{CIRCUIT}.zkey", DEV_BEACON, BEACON_EXPONENT, "-n=agora-dev", cwd=work
            )
        (work / "c_0.zkey").unlink()
        _snarkjs("zkey", "export", "verificationkey", f"{CIRCUIT}.zkey", VKEY_NAME, cwd=work)
        _snarkjs("zkey", "export", "solidityverifier", f"{CIRCUIT}.zkey", VERIFIER_NAME, cwd=work)
        manifest = {"key": key, "production": production, "ptau": str(powers), "built_at": int(time.time())}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(directory, ignore_errors=True)
        work.replace(directory)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _same_vkey(a: Path, b: Path) -> bool:
    return bool(json.loads(a.read_text()) == json.loads(b.read_text()))


def committed_matches(artifacts: CircuitArtifacts) -> bool:
    """True when the committed verifying key and verifier are the ones this build produced."""
    vkey, verifier = committed_vkey_path(), committed_verifier_path()
    if not (vkey.exists() and verifier.exists()):
        return False
    return _same_vkey(vkey, artifacts.vkey) and verifier.read_text() == artifacts.verifier.read_text()


def export(artifacts: CircuitArtifacts) -> None:
    """Write the build's verifying key and verifier over the committed ones."""
    shutil.copyfile(artifacts.vkey, committed_vkey_path())
    shutil.copyfile(artifacts.verifier, committed_verifier_path())


def ensure_built(ptau: Path | None = None, *, log: bool = False) -> CircuitArtifacts:
    """Build (or reuse) the circuit and fail if the committed verifier/key do not match it."""
    artifacts = build(ptau, log=log)
    if not committed_matches(artifacts):
        raise BuildError(
            f"the committed {VERIFIER_NAME} / {VKEY_NAME} do not match build {artifacts.key}: "
            "run `python -m marketplace.zk.build --export` and commit them"
        )
    return artifacts


def main(argv: list[str] | None = None) -> int:
    """Command line: build (cached), check or export the verifier and verifying key."""
    parser = argparse.ArgumentParser(prog="python -m marketplace.zk.build", description=__doc__.splitlines()[0])
    parser.add_argument("--ptau", type=Path, help="ceremony powers-of-tau file for a production setup")
    parser.add_argument("--export", action="store_true", help="overwrite the committed verifier and verifying key")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        artifacts = build(args.ptau, log=True)
        if args.export:
            export(artifacts)
            _say(True, f"exported {committed_verifier_path()} and {committed_vkey_path()}")
        elif not committed_matches(artifacts):
            raise BuildError(
                f"the committed {VERIFIER_NAME} / {VKEY_NAME} do not match build {artifacts.key}: "
                "rerun with --export and commit them"
            )
    except (BuildError, MissingToolError) as error:
        print(f"[zk build] error: {error}", file=sys.stderr)
        return 1
    _say(True, f"build {artifacts.key} ready in {artifacts.directory} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
