"""The deployment manifest: which contracts live where on a chain, with their ABIs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from marketplace.paths import state_dir

ABI = list[dict[str, Any]]


def abi_id(abi: ABI) -> str:
    """A stable content id for an ABI: sha256 of its canonical JSON."""
    canonical = json.dumps(abi, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class DeployedContract(BaseModel):
    """One deployed contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str
    abi_id: str
    block: int
    tx_hash: str


class Deployment(BaseModel):
    """Everything a client needs to talk to agora's contracts on one chain."""

    model_config = ConfigDict(extra="forbid")

    chain_id: int
    network: str
    rpc_url: str
    deployer: str
    treasury: str
    block: int
    contracts: dict[str, DeployedContract]
    abis: dict[str, ABI]

    def address(self, name: str) -> str:
        """Address of a deployed contract by name; KeyError names what is deployed."""
        try:
            return self.contracts[name].address
        except KeyError:
            raise KeyError(f"{name} is not in this deployment (have: {', '.join(self.contracts)})") from None

    def abi(self, name: str) -> ABI:
        """ABI of a deployed contract by name."""
        return self.abis[self.contracts[name].abi_id]

    def save(self, path: Path | None = None) -> Path:
        """Write the manifest (default: <state dir>/deployments/<chain id>.json)."""
        path = path or default_manifest_path(self.chain_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a manifest written by save()."""
        return cls.model_validate_json(path.read_text())


def default_manifest_path(chain_id: int) -> Path:
    """Where `agora chain up` writes the manifest of a chain."""
    return state_dir() / "deployments" / f"{chain_id}.json"
