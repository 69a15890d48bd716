"""Typed client for AgoraToken (AGT): balances, transfers, allowances and EIP-2612 permits."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from web3.types import TxReceipt

from marketplace.chain.client import ChainConnection


@dataclass(frozen=True)
class Transfer:
    """A decoded ERC-20 Transfer event."""

    sender: str
    recipient: str
    amount: int


class TokenClient:
    """AgoraToken seen from one signer."""

    def __init__(self, conn: ChainConnection) -> None:
        self.conn = conn
        self.contract = conn.contract("AgoraToken")

    @property
    def address(self) -> str:
        """The token contract's address."""
        return str(self.contract.address)

    async def balance_of(self, owner: str) -> int:
        """Balance of owner in base units."""
        result: int = await self.conn.call(self.contract.functions.balanceOf(self._cs(owner)))
        return result

    async def total_supply(self) -> int:
        """Total supply in base units (fixed at deployment)."""
        result: int = await self.conn.call(self.contract.functions.totalSupply())
        return result

    async def allowance(self, owner: str, spender: str) -> int:
        """How much spender may move from owner."""
        result: int = await self.conn.call(self.contract.functions.allowance(self._cs(owner), self._cs(spender)))
        return result

    async def transfer(self, to: str, amount: int) -> TxReceipt:
        """Send amount base units from this signer to `to`."""
        return await self.conn.send(self.contract.functions.transfer(self._cs(to), amount), gas=80_000)

    async def approve(self, spender: str, amount: int) -> TxReceipt:
        """Allow spender to move up to amount from this signer."""
        return await self.conn.send(self.contract.functions.approve(self._cs(spender), amount), gas=80_000)

    def transfers_in(self, receipt: TxReceipt) -> list[Transfer]:
        """Transfer events emitted by this token in a receipt."""
        events = self.contract.events.Transfer().process_receipt(receipt)
        return [Transfer(e["args"]["from"], e["args"]["to"], e["args"]["value"]) for e in events]

    async def sign_permit(
        self, owner: LocalAccount, spender: str, amount: int, deadline: int
    ) -> tuple[int, bytes, bytes]:
        """EIP-2612 permit signature (v, r, s) by owner for spender."""
        nonce: int = await self.conn.call(self.contract.functions.nonces(owner.address))
        typed = {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"},
                ],
            },
            "primaryType": "Permit",
            "domain": {
                "name": "Agora Token",
                "version": "1",
                "chainId": self.conn.deployment.chain_id,
                "verifyingContract": self.address,
            },
            "message": {
                "owner": owner.address,
                "spender": self._cs(spender),
                "value": amount,
                "nonce": nonce,
                "deadline": deadline,
            },
        }
        signed = Account.sign_message(encode_typed_data(full_message=typed), owner.key)
        return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")

    async def permit(
        self, owner: str, spender: str, amount: int, deadline: int, v: int, r: bytes, s: bytes
    ) -> TxReceipt:
        """Submit a permit (anyone may relay it)."""
        fn = self.contract.functions.permit(self._cs(owner), self._cs(spender), amount, deadline, v, r, s)
        return await self.conn.send(fn, gas=120_000)

    def _cs(self, address: str) -> str:
        return str(self.conn.w3.to_checksum_address(address))
