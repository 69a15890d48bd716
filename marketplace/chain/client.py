"""Async web3.py connection to agora's contracts: signing, nonces, and custom errors as exceptions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.contract.async_contract import AsyncContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt, Wei

from marketplace.chain.manifest import ABI, Deployment


class ChainError(RuntimeError):
    """A chain interaction failed."""


class ContractRevert(ChainError):
    """A contract call reverted; `name` is the custom error (or "Error"/"Panic") and `args` its values."""

    def __init__(self, name: str, args: tuple[Any, ...], detail: str = "") -> None:
        self.name = name
        self.args_values = args
        rendered = ", ".join(repr(a) for a in args)
        super().__init__(f"reverted with {name}({rendered}){': ' + detail if detail else ''}")


class TransactionFailed(ChainError):
    """A transaction was mined but its status is 0."""


def _error_table(abis: list[ABI]) -> dict[bytes, tuple[str, list[str]]]:
    """Map 4-byte selectors of every custom error in the ABIs to (name, argument types)."""
    table: dict[bytes, tuple[str, list[str]]] = {}
    for abi in abis:
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [_canonical_type(i) for i in entry.get("inputs", [])]
            selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
            table[selector] = (entry["name"], types)
    return table


def _canonical_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param.get("components", []))
        return f"({inner}){kind[len('tuple') :]}"
    return kind


class GasMeter:
    """Gas used per contract function, summed over every transaction sent through the connections sharing it.

    `on_record` is called with the new totals after each transaction (an agent persists them in its store, so a
    restarted agent's tally goes on from where it stopped); `restore` starts from saved totals."""

    def __init__(self, on_record: Callable[[dict[str, tuple[int, int]]], None] | None = None) -> None:
        self._totals: dict[str, tuple[int, int]] = {}
        self.on_record = on_record

    def record(self, operation: str, gas_used: int) -> None:
        """Add one transaction's gas to an operation's tally."""
        count, total = self._totals.get(operation, (0, 0))
        self._totals[operation] = (count + 1, total + gas_used)
        if self.on_record is not None:
            self.on_record(self.totals())

    def restore(self, totals: dict[str, tuple[int, int]]) -> None:
        """Start from totals saved before (adds to whatever was recorded since)."""
        for operation, (count, total) in totals.items():
            known = self._totals.get(operation, (0, 0))
            self._totals[operation] = (known[0] + int(count), known[1] + int(total))

    def totals(self) -> dict[str, tuple[int, int]]:
        """(count, total gas) per operation."""
        return dict(sorted(self._totals.items()))


class ChainConnection:
    """One signer on one chain: builds, signs and sends transactions with a locally tracked nonce."""

    def __init__(
        self,
        w3: AsyncWeb3[AsyncHTTPProvider],
        deployment: Deployment,
        account: LocalAccount,
        gas_meter: GasMeter | None = None,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self.gas_meter = gas_meter or GasMeter()
        self._nonce: int | None = None
        self._lock = asyncio.Lock()
        self._errors = _error_table(list(deployment.abis.values()))

    @classmethod
    def connect(cls, deployment: Deployment, account: LocalAccount, rpc_url: str | None = None) -> ChainConnection:
        """Open an HTTP connection to rpc_url (default: the one recorded in the manifest)."""
        provider = AsyncHTTPProvider(
            rpc_url or deployment.rpc_url,
            request_kwargs={"timeout": 30},
            # web3's validation middleware asks for the chain id before every call; it never
            # changes for one endpoint, so caching just that request halves round trips.
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        return cls(AsyncWeb3(provider), deployment, account)

    def with_account(self, account: LocalAccount) -> ChainConnection:
        """The same chain and transport, another signer (close the original only)."""
        return ChainConnection(self.w3, self.deployment, account, self.gas_meter)

    def reset_nonce(self) -> None:
        """Forget the locally tracked nonce (re-read from the node), e.g. after an EVM revert."""
        self._nonce = None

    async def close(self) -> None:
        """Close the HTTP session behind this connection (shared with with_account() copies)."""
        await self.w3.provider.disconnect()

    async def __aenter__(self) -> ChainConnection:
        await self.keep_alive()
        return self

    async def keep_alive(self) -> None:
        """Reuse TCP connections to the node; web3 otherwise opens (and resolves) one per request.

        Must run inside the event loop that will use the connection; close() closes the session.
        """
        provider = self.w3.provider
        if isinstance(provider, AsyncHTTPProvider):
            session = ClientSession(
                connector=TCPConnector(limit=32), timeout=ClientTimeout(total=30), raise_for_status=True
            )
            await provider.cache_async_session(session)

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def address(self) -> str:
        """The signer's address."""
        return str(self.account.address)

    def contract(self, name: str) -> AsyncContract:
        """A web3 contract object for a deployed contract."""
        return self.w3.eth.contract(
            address=self.w3.to_checksum_address(self.deployment.address(name)), abi=self.deployment.abi(name)
        )

    def decode_revert(self, exc: Exception) -> ContractRevert:
        """Turn a web3 revert into a ContractRevert naming the custom error."""
        if isinstance(exc, ContractCustomError):
            data = exc.data if isinstance(exc.data, str) else str(exc.args[-1])
            raw = bytes.fromhex(data.removeprefix("0x"))
            if raw[:4] in self._errors:
                name, types = self._errors[raw[:4]]
                values = abi_decode(types, raw[4:])
                return ContractRevert(
                    name,
                    tuple(to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)),
                )
            return ContractRevert("UnknownError", (data,))
        if isinstance(exc, ContractPanicError):
            return ContractRevert("Panic", (str(exc),))
        return ContractRevert("Error", (str(exc),))

    async def call(self, fn: AsyncContractFunction) -> Any:
        """Read-only call; reverts become ContractRevert."""
        try:
            return await fn.call({"from": self.account.address})
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.decode_revert(exc) from exc

    async def send(self, fn: AsyncContractFunction, gas: int | None = None, value: int = 0) -> TxReceipt:
        """Sign and send a contract transaction, wait for the receipt; reverts become ContractRevert.

        Without an explicit gas limit the call is estimated first, which also surfaces reverts
        with their custom error before anything is sent.
        """
        params: TxParams = {"from": self.account.address, "value": Wei(value)}
        try:
            gas_limit = gas if gas is not None else int(await fn.estimate_gas(params) * 1.2) + 10_000
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.decode_revert(exc) from exc
        async with self._lock:
            if self._nonce is None:
                self._nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
            tx = await fn.build_transaction(
                {**params, "gas": gas_limit, "nonce": Nonce(self._nonce), "chainId": self.deployment.chain_id}
            )
            signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
            try:
                tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except Exception:
                self._nonce = None  # re-read from the node next time
                raise
            self._nonce += 1
        receipt = await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
        if receipt["status"] != 1:
            # Replay as a call to recover the named error (the state may have moved since).
            await self.call(fn)
            raise TransactionFailed(f"transaction {tx_hash.hex()} failed on chain (gas limit {gas_limit})")
        self.gas_meter.record(fn.fn_name, int(receipt["gasUsed"]))
        return receipt

    async def send_value(self, to: str, amount: int) -> TxReceipt:
        """Send native currency (gas money) to an address."""
        async with self._lock:
            if self._nonce is None:
                self._nonce = await self.w3.eth.get_transaction_count(self.account.address, "pending")
            tx: dict[str, Any] = {
                "to": self.w3.to_checksum_address(to),
                "value": amount,
                "gas": 21_000,
                "nonce": self._nonce,
                "chainId": self.deployment.chain_id,
                "maxFeePerGas": await self.w3.eth.gas_price * 2,
                "maxPriorityFeePerGas": 0,
            }
            signed = self.account.sign_transaction(tx)
            tx_hash = await self.w3.eth.send_raw_transaction(signed.raw_transaction)
            self._nonce += 1
        return await self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.01)
