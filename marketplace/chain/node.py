"""Start and stop a local anvil node from node_modules, in-process or as a detached daemon."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from marketplace.paths import require_node_bin, state_dir

LOCAL_CHAIN_ID = 1337
DEFAULT_CHAIN_PORT = 8545
"""Where `agora chain up` listens when the port is free: the RPC port wallets and tools expect by default."""
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"
"""anvil's and Ape's shared default: the same funded dev accounts on both sides."""


class NodeError(RuntimeError):
    """The local node could not be started, reached or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` (default: loopback) right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a loopback listener could bind port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like anvil's own listener: a port left in TIME_WAIT by a stopped node counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def preferred_chain_port() -> int:
    """The port `agora chain up` tries first: `AGORA_CHAIN_PORT`, else 8545."""
    raw = os.environ.get("AGORA_CHAIN_PORT", "").strip()
    if not raw:
        return DEFAULT_CHAIN_PORT
    port = int(raw) if raw.isascii() and raw.isdigit() else 0
    if not 0 < port < 65536:
        raise NodeError(f"AGORA_CHAIN_PORT must be a TCP port (1-65535), not {raw!r}")
    return port


class PortBusyError(NodeError):
    """The port asked for with `--port` is already taken."""


def choose_daemon_port(port: int | None = None) -> int:
    """Exactly port when given (PortBusyError if taken); else the preferred port, or a free one when that is busy."""
    if port is not None:
        if not port_is_free(port):
            raise PortBusyError(f"port {port} is already in use on 127.0.0.1: pick another --port, or omit it")
        return port
    preferred = preferred_chain_port()
    return preferred if port_is_free(preferred) else free_port()


def rpc_call(rpc_url: str, method: str, params: list[object] | None = None, timeout: float = 2.0) -> object:
    """One JSON-RPC call over HTTP; raises NodeError when the node does not answer."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    if not rpc_url.startswith(("http://", "https://")):
        raise NodeError(f"RPC URL must be http(s): {rpc_url}")
    request = urllib.request.Request(rpc_url, data=body, headers={"Content-Type": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback RPC
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise NodeError(f"{rpc_url} did not answer {method}: {exc}") from exc
    if "error" in reply:
        raise NodeError(f"{method} failed: {reply['error']}")
    return reply["result"]


@dataclass(frozen=True)
class NodeInfo:
    """What a running node is: where to reach it and which process it is."""

    rpc_url: str
    chain_id: int
    pid: int
    port: int


class AnvilNode:
    """A fresh anvil process on loopback (or on `host`, an address of this machine that other machines reach);
    use as a context manager or call start()/stop()."""

    def __init__(
        self,
        port: int | None = None,
        chain_id: int = LOCAL_CHAIN_ID,
        accounts: int = 20,
        genesis_time: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.chain_id = chain_id
        self.accounts = accounts
        self.genesis_time = genesis_time
        """Set: the chain starts at this unix time and each block is 1 s after the last, whatever the wall
        clock says, so block hashes (which seed committee draws) repeat run after run."""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = state_dir() / f"anvil-{self.port}.log"

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC endpoint of this node."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The anvil command line this node runs."""
        return [
            str(require_node_bin("anvil")),
            "--host", self.host,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--mnemonic", DEFAULT_MNEMONIC,
            "--silent",
            *(["--timestamp", str(self.genesis_time)] if self.genesis_time is not None else []),
        ]  # fmt: skip

    def start(self, detached: bool = False, timeout: float = 10.0) -> NodeInfo:
        """Launch anvil and wait until it answers eth_chainId.

        A detached node runs in its own session and logs to a file, so it outlives this process.
        """
        if self._process is not None:
            raise NodeError("this node is already started")
        log_path = state_dir() / f"anvil-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed binary from node_modules
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=detached,
            )
        self._log_path = log_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = log_path.read_text(errors="replace")
                self._process = None
                raise NodeError(f"anvil exited at start on port {self.port}: {err.strip()}")
            try:
                chain_id = int(str(rpc_call(self.rpc_url, "eth_chainId", timeout=0.5)), 16)
            except NodeError:
                time.sleep(0.02)
                continue
            if self.genesis_time is not None:
                rpc_call(self.rpc_url, "anvil_setBlockTimestampInterval", [1])
            return NodeInfo(self.rpc_url, chain_id, self._process.pid, self.port)
        self.stop()
        raise NodeError(f"anvil did not answer on {self.rpc_url} within {timeout:.0f} s")

    def stop(self) -> None:
        """Terminate the node and reap the process."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> AnvilNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- the detached daemon behind `agora chain up|status|down` -------------------------------


def daemon_file() -> Path:
    """Where `agora chain up` records the running node."""
    return state_dir() / "chain.json"


def _alive(pid: int) -> bool:
    try:
        # Reap it first if it is our own exited child, so a zombie does not count as alive.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_daemon() -> NodeInfo | None:
    """The node started by `agora chain up`, if its process is still alive."""
    path = daemon_file()
    if not path.exists():
        return None
    info = NodeInfo(**json.loads(path.read_text()))
    if not _alive(info.pid):
        path.unlink(missing_ok=True)
        return None
    return info


class AlreadyRunningError(NodeError):
    """`chain up` was asked while a node from an earlier `chain up` still runs."""


def start_daemon(port: int | None = None) -> NodeInfo:
    """Start a detached anvil that outlives this process, and record it; the port is chosen by choose_daemon_port."""
    existing = running_daemon()
    if existing is not None:
        raise AlreadyRunningError(
            f"a local chain is already running at {existing.rpc_url} (pid {existing.pid}); run `agora chain down` first"
        )
    info = AnvilNode(port=choose_daemon_port(port)).start(detached=True)
    path = daemon_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2))
    return info


def stop_daemon(timeout: float = 5.0) -> NodeInfo | None:
    """Stop the node recorded by `chain up`; returns what was stopped, or None."""
    info = running_daemon()
    if info is None:
        return None
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(info.pid):
        os.kill(info.pid, signal.SIGKILL)
    daemon_file().unlink(missing_ok=True)
    return info
