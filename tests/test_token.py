"""AgoraToken deployed by Ape on a real anvil node, driven through the typed async client."""

from __future__ import annotations

import pytest
from eth_account import Account

from marketplace.chain import ChainConnection, ContractRevert, LocalChain, TokenClient

pytestmark = pytest.mark.chain

AGT = 10**18


async def test_deploy_mintsWholeSupplyToTreasury(chain: LocalChain, conn: ChainConnection) -> None:
    token = TokenClient(conn)
    supply = await token.total_supply()
    assert supply == 1_000_000_000 * AGT
    assert await token.balance_of(chain.treasury.address) == supply
    assert chain.deployment.chain_id == 1337


async def test_transfer_movesTokensBetweenWallets(chain: LocalChain, conn: ChainConnection) -> None:
    token = TokenClient(conn)
    alice, bob = chain.accounts[1], chain.accounts[2]
    receipt = await token.transfer(alice.address, 10 * AGT)
    assert [(t.recipient, t.amount) for t in token.transfers_in(receipt)] == [(alice.address, 10 * AGT)]
    await TokenClient(conn.with_account(alice)).transfer(bob.address, 3 * AGT)
    assert await token.balance_of(alice.address) == 7 * AGT
    assert await token.balance_of(bob.address) == 3 * AGT
    assert await token.total_supply() == 1_000_000_000 * AGT


async def test_transfer_revertsWithNamedErrorWhenBalanceTooLow(chain: LocalChain, conn: ChainConnection) -> None:
    poor = TokenClient(conn.with_account(chain.accounts[3]))
    with pytest.raises(ContractRevert) as caught:
        await poor.transfer(chain.accounts[4].address, 1)
    assert caught.value.name == "ERC20InsufficientBalance"
    assert caught.value.args_values == (chain.accounts[3].address, 0, 1)


async def test_permit_letsSpenderMoveTokensWithoutOwnerTransaction(chain: LocalChain, conn: ChainConnection) -> None:
    treasury = TokenClient(conn)
    owner = Account.create()  # holds no ETH: the permit is relayed by someone else
    spender = chain.accounts[5]
    await treasury.transfer(owner.address, 5 * AGT)
    block = await conn.w3.eth.get_block("latest")
    v, r, s = await treasury.sign_permit(owner, spender.address, 2 * AGT, block["timestamp"] + 3600)
    await treasury.permit(owner.address, spender.address, 2 * AGT, block["timestamp"] + 3600, v, r, s)
    assert await treasury.allowance(owner.address, spender.address) == 2 * AGT


async def test_permit_revertsWhenSignedByAnotherKey(chain: LocalChain, conn: ChainConnection) -> None:
    treasury = TokenClient(conn)
    owner, impostor = Account.create(), Account.create()
    block = await conn.w3.eth.get_block("latest")
    deadline = block["timestamp"] + 3600
    v, r, s = await treasury.sign_permit(impostor, chain.accounts[5].address, AGT, deadline)
    with pytest.raises(ContractRevert) as caught:
        await treasury.permit(owner.address, chain.accounts[5].address, AGT, deadline, v, r, s)
    assert caught.value.name == "ERC2612InvalidSigner"
