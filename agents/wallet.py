"""Agent key material: an Ethereum account for settlement and a uAgents identity for messaging, never logged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from uagents_core.identity import Identity

from agents.crypto import FastIdentity


class Wallet:
    """An agent's keys: `account` signs transactions and vouchers, `identity` signs message envelopes."""

    __slots__ = ("_account", "_identity")

    def __init__(self, account: LocalAccount, identity: Identity) -> None:
        self._account = account
        self._identity = FastIdentity.from_identity(identity)

    @classmethod
    def from_seed(cls, seed: str) -> Wallet:
        """Derive both keys deterministically from one secret seed phrase (separate keys per purpose)."""
        # A domain-separated hash keeps the settlement key independent of the messaging key.
        eth_key = hashlib.sha256(b"agora/eth-account/v1\x00" + seed.encode()).digest()
        return cls(Account.from_key(eth_key), Identity.from_seed(seed, 0))

    @classmethod
    def from_keystore(cls, path: str | os.PathLike[str], password: str) -> Wallet:
        """Load the settlement key from an encrypted Ethereum keystore file; the identity uses the same key."""
        keystore = json.loads(Path(path).read_text())
        key: bytes = Account.decrypt(keystore, password)
        return cls(Account.from_key(key), Identity.from_string(key.hex()))

    @classmethod
    def generate(cls) -> Wallet:
        """Fresh random keys (from os.urandom)."""
        return cls.from_seed(os.urandom(32).hex())

    def write_keystore(
        self, path: str | os.PathLike[str], password: str, *, pbkdf2_iterations: int | None = None
    ) -> None:
        """Save the settlement key as an encrypted keystore file (mode 0600); scrypt unless iterations are given."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if pbkdf2_iterations is None:
            keystore = Account.encrypt(self._account.key, password)
        else:
            keystore = Account.encrypt(self._account.key, password, kdf="pbkdf2", iterations=pbkdf2_iterations)
        # Create with 0600 from the start: the file must never be readable by others, even briefly.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(keystore))

    @property
    def account(self) -> LocalAccount:
        """The Ethereum account (eth-account LocalAccount) used for settlement."""
        return self._account

    @property
    def eth_address(self) -> str:
        """The checksummed Ethereum address."""
        return str(self._account.address)

    @property
    def identity(self) -> FastIdentity:
        """The uAgents identity that signs envelopes."""
        return self._identity

    @property
    def agent_address(self) -> str:
        """The uAgents address (`agent1…`) derived from the identity."""
        return str(self._identity.address)

    def __repr__(self) -> str:
        # Never include key material: wallets end up in logs and tracebacks.
        return f"Wallet(eth={self.eth_address}, agent={self.agent_address})"

    __str__ = __repr__
