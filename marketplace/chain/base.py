"""Shared plumbing of the typed contract clients: checksums, sending, and event decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from web3.contract.async_contract import AsyncContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from marketplace.chain.client import ChainConnection, ChainError

E = TypeVar("E")


class MissingEvent(ChainError):
    """A transaction succeeded but did not emit the event its client expected."""


class ContractClient:
    """One deployed agora contract seen from one signer; subclasses add the typed methods."""

    contract_name: str = ""

    def __init__(self, conn: ChainConnection) -> None:
        self.conn = conn
        self.contract = conn.contract(self.contract_name)
        self.last_receipt: TxReceipt | None = None
        """Receipt of the latest transaction sent through this client (for gas accounting)."""

    @property
    def address(self) -> str:
        """The contract's address."""
        return str(self.contract.address)

    def _cs(self, address: str) -> str:
        return str(self.conn.w3.to_checksum_address(address))

    async def _send(self, fn: AsyncContractFunction, gas: int | None = None) -> TxReceipt:
        receipt = await self.conn.send(fn, gas=gas)
        self.last_receipt = receipt
        return receipt

    def _decode(self, receipt: TxReceipt, event: str, build: Callable[[dict[str, Any]], E]) -> list[E]:
        """All `event` logs of this contract in a receipt, built into records from their args."""
        logs = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        return [build(dict(log["args"])) for log in logs if log["address"] == self.contract.address]

    def _one(self, receipt: TxReceipt, event: str, build: Callable[[dict[str, Any]], E]) -> E:
        found = self._decode(receipt, event, build)
        if not found:
            raise MissingEvent(f"{self.contract_name} emitted no {event} in {receipt['transactionHash'].hex()}")
        return found[0]
