"""Attacks on validator selection: stakes below the minimum breaking `selectValidators`, dust locking the set.

Agents pick auditors with `selectValidators(seed, validators().length)`. Before, every account that ever
staked anything was listed forever and selection reverted once any listed account was below the minimum,
so one dust stake (or one unbonding, or one slashed seller) stopped every audit, and 256 dust stakes
locked the set for good. Now the list is exactly the eligible set.
"""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from marketplace.chain import ChainConnection, LocalChain, TokenClient
from marketplace.chain.deploy import STAKING_CONFIG
from marketplace.chain.node import rpc_call
from tests.contracts.conftest import MAX_ALLOWANCE, Actors, clients_for

pytestmark = pytest.mark.chain

SEED = b"\x5e" * 32
MIN = STAKING_CONFIG.min_stake
MAX_VALIDATORS = 256


async def _select_all(conn: ChainConnection, actors: Actors) -> list[str]:
    """What the agents ask: as many validators as are listed."""
    staking = clients_for(conn, actors.alice).staking
    return await staking.select_validators(SEED, len(await staking.validators()))


async def test_dust_staker_cannot_break_selection(conn: ChainConnection, actors: Actors) -> None:
    """Anyone stakes 1 wei."""
    await clients_for(conn, actors.carol).staking.stake(1)
    picked = await _select_all(conn, actors)
    assert sorted(picked) == sorted(v.address for v in actors.validators)


async def test_unbonding_validator_cannot_break_selection(conn: ChainConnection, actors: Actors) -> None:
    """A validator starts unbonding everything (and stays listed, before)."""
    await clients_for(conn, actors.val3).staking.request_unstake(1_000 * 10**18)
    assert sorted(await _select_all(conn, actors)) == sorted([actors.val1.address, actors.val2.address])


async def test_slashed_seller_cannot_break_selection(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    """A seller that staked exactly the minimum loses a dispute (how the default demo ends)."""
    seller = actors.bob
    await clients_for(conn, seller).staking.stake(MIN)
    task, wrong, right = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    await clients_for(conn, seller).staking.attest(task, wrong)
    challenger = clients_for(conn, actors.val1).staking
    await challenger.attest(task, right)
    dispute_id = (await challenger.open_dispute(task, seller.address, right)).dispute_id
    committee = await challenger.draw_committee(dispute_id)
    assert committee is not None
    for member in (actors.val2, actors.val3):
        await clients_for(conn, member).staking.vote(dispute_id, right)
    chain.increase_time(STAKING_CONFIG.dispute_window)
    await challenger.resolve(dispute_id)
    assert (await challenger.stake_of(seller.address)).active < MIN
    assert sorted(await _select_all(conn, actors)) == sorted(v.address for v in actors.validators)


async def _dust_staker(conn: ChainConnection, chain: LocalChain, treasury: TokenClient) -> LocalAccount:
    account: LocalAccount = Account.create()
    rpc_call(chain.rpc_url, "anvil_setBalance", [account.address, hex(10**17)])
    await treasury.transfer(account.address, 1)
    return account


async def _stake_dust(conn: ChainConnection, account: LocalAccount) -> None:
    dust = clients_for(conn, account)
    await dust.token.approve(dust.staking.address, MAX_ALLOWANCE)
    await dust.staking.stake(1)


async def test_256_dust_stakers_cannot_lock_the_set(chain: LocalChain, conn: ChainConnection, actors: Actors) -> None:
    """MAX_VALIDATORS accounts stake 1 wei each; then an honest validator wants to join.

    Before, the set filled after 253 of them (3 validators were listed already), every later stake reverted
    with TooManyValidators, and selection reverted too. Now dust is never listed.
    """
    treasury = TokenClient(conn.with_account(chain.treasury))
    stakers = [await _dust_staker(conn, chain, treasury) for _ in range(MAX_VALIDATORS)]
    for start in range(0, len(stakers), 32):
        await asyncio.gather(*(_stake_dust(conn, account) for account in stakers[start : start + 32]))
    staking = clients_for(conn, actors.carol).staking
    assert len(await staking.validators()) == 3
    await staking.stake(MIN)
    assert actors.carol.address in await staking.validators()
    assert actors.carol.address in await _select_all(conn, actors)
