"""The first scripted economy: two fresh agent wallets are funded and pay each other in AGT."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from marketplace.chain import LocalChain, TokenClient, local_chain

AGT = 10**18
GAS_MONEY = 10**17


@dataclass(frozen=True)
class DemoOutcome:
    """Balances (base units) before and after the scripted payment, and the token supply."""

    balances_before: dict[str, int]
    balances_after: dict[str, int]
    supply_before: int
    supply_after: int


async def _run(chain: LocalChain, alice: LocalAccount, bob: LocalAccount) -> DemoOutcome:
    treasury_conn = chain.connect()
    treasury = TokenClient(treasury_conn)
    names = {"treasury": chain.treasury.address, "alice": alice.address, "bob": bob.address}

    async def balances() -> dict[str, int]:
        return {name: await treasury.balance_of(addr) for name, addr in names.items()}

    async with treasury_conn:
        supply_before = await treasury.total_supply()
        await treasury_conn.send_value(alice.address, GAS_MONEY)
        await treasury.transfer(alice.address, 100 * AGT)
        before = await balances()
        await TokenClient(treasury_conn.with_account(alice)).transfer(bob.address, 42 * AGT)
        return DemoOutcome(before, await balances(), supply_before, await treasury.total_supply())


def run_token_demo(console: Console) -> DemoOutcome:
    """Start anvil, deploy, fund alice, have alice pay bob 42 AGT, print balances, stop anvil."""
    alice, bob = Account.create(), Account.create()
    with console.status("starting anvil and deploying contracts with Ape…"), local_chain(accounts=2) as chain:
        console.print(
            f"chain {chain.deployment.chain_id} at {chain.rpc_url}; AgoraToken at "
            f"{chain.deployment.address('AgoraToken')}"
        )
        outcome = asyncio.run(_run(chain, alice, bob))
    table = Table(title="AGT balances")
    table.add_column("wallet")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for name, before in outcome.balances_before.items():
        table.add_row(name, f"{before / AGT:,.2f}", f"{outcome.balances_after[name] / AGT:,.2f}")
    console.print(table)
    console.print(f"token supply unchanged: {outcome.supply_before == outcome.supply_after}")
    return outcome
