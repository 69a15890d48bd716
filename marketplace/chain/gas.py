"""Gas of the settlement hot paths, measured on a real node (the gas snapshot test and bench/gas.py)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.types import RPCEndpoint

from marketplace.chain.base import ContractClient
from marketplace.chain.channels import ChannelsClient
from marketplace.chain.client import ChainConnection
from marketplace.chain.escrow import EscrowClient, EscrowTerms
from marketplace.chain.federated import FederatedRewardsClient, FederatedTerms, RewardTree
from marketplace.chain.local import LocalChain
from marketplace.chain.models import Lineage, ModelListing, ModelRegistryClient
from marketplace.chain.staking import StakingClient
from marketplace.chain.token import TokenClient

AGT = 10**18
PRICE_PER_CALL = 10**15
"""0.001 AGT per inference call."""


@dataclass(frozen=True)
class Cast:
    """The accounts a measurement uses: buyer pays, seller serves, evaluator judges, creators own models."""

    buyer: LocalAccount
    seller: LocalAccount
    evaluator: LocalAccount
    creators: tuple[LocalAccount, LocalAccount, LocalAccount]
    conns: dict[str, ChainConnection]
    """One connection per dev account (the cast and any other staker a committee may draw), so each signer
    has one nonce tracker."""

    def on(self, account: LocalAccount) -> ChainConnection:
        """The connection signing as `account`."""
        return self.conns[account.address]


def _gas(client: ContractClient) -> int:
    if client.last_receipt is None:
        raise ValueError(f"{client.contract_name} client has sent no transaction yet")
    return int(client.last_receipt["gasUsed"])


async def prepare(conn: ChainConnection, chain: LocalChain) -> Cast:
    """Fund and approve the cast from the treasury and stake the evaluator (deterministic state)."""
    a = chain.accounts
    cast = Cast(a[1], a[2], a[3], (a[4], a[5], a[6]), {x.address: conn.with_account(x) for x in a[1:]})
    treasury = TokenClient(conn)
    for account in (cast.buyer, cast.seller, cast.evaluator, *cast.creators):
        await treasury.transfer(account.address, 1_000_000 * AGT)
        for spender in ("JobEscrow", "PaymentChannels", "ValidatorStaking", "FederatedRewards"):
            await TokenClient(cast.on(account)).approve(chain.deployment.address(spender), 2**256 - 1)
    await StakingClient(cast.on(cast.evaluator)).stake(1_000 * AGT)
    return cast


async def three_level_model(cast: Cast, salt: int = 0) -> tuple[int, int]:
    """A served model whose parent and grandparent (and a contributor each) take royalties.

    Returns the model id and the gas of registering it (with its lineage).
    """
    owners = [ModelRegistryClient(cast.on(c)) for c in cast.creators]
    grand = await owners[0].register_model(ModelListing((salt * 8 + 1).to_bytes(32, "big")))
    lineage = Lineage(parents=((grand.model_id, 2_000),), contributors=((cast.creators[2].address, 500),))
    parent = await owners[1].register_model(ModelListing((salt * 8 + 2).to_bytes(32, "big")), lineage)
    lineage = Lineage(parents=((parent.model_id, 3_000),), contributors=((cast.creators[0].address, 1_000),))
    seller = ModelRegistryClient(cast.on(cast.seller))
    model_id = (await seller.register_model(ModelListing((salt * 8 + 3).to_bytes(32, "big")), lineage)).model_id
    return model_id, _gas(seller)


async def hot_paths(cast: Cast) -> dict[str, int]:
    """gasUsed of each hot path in a fixed scenario (the figures of contracts/gas-snapshot.json)."""
    figures: dict[str, int] = {}
    buyer = ChannelsClient(cast.on(cast.buyer))
    seller = ChannelsClient(cast.on(cast.seller))
    expiry = int((await buyer.conn.w3.eth.get_block("latest"))["timestamp"]) + 86_400

    first = (await buyer.open_channel(cast.seller.address, 10 * AGT, expiry)).channel_id
    figures["channel_open"] = _gas(buyer)
    await seller.claim(await buyer.sign(cast.buyer, first, 100 * PRICE_PER_CALL))
    figures["channel_claim_first_voucher"] = _gas(seller)
    await seller.claim(await buyer.sign(cast.buyer, first, 200 * PRICE_PER_CALL))
    figures["channel_claim_later_voucher"] = _gas(seller)

    batch = [(await buyer.open_channel(cast.seller.address, AGT, expiry)).channel_id for _ in range(10)]
    await seller.claim_many([await buyer.sign(cast.buyer, c, 100 * PRICE_PER_CALL) for c in batch])
    figures["channel_claim_many_10"] = _gas(seller)

    models = ModelRegistryClient(cast.on(cast.creators[0]))
    await models.register_model(ModelListing(b"\xee" * 32, "ipfs://model-card"))
    figures["model_register"] = _gas(models)
    model_id, figures["model_register_with_lineage"] = await three_level_model(cast)
    split = models.contract.functions.split(model_id, 10 * AGT, cast.seller.address)
    figures["model_split_3_level_view"] = int(await split.estimate_gas({"from": cast.seller.address}))

    lineage_channel = (await buyer.open_channel(cast.seller.address, 10 * AGT, expiry, model_id)).channel_id
    await seller.claim(await buyer.sign(cast.buyer, lineage_channel, 100 * PRICE_PER_CALL))
    figures["channel_claim_3_level_lineage"] = _gas(seller)

    client = EscrowClient(cast.on(cast.buyer))
    provider = EscrowClient(cast.on(cast.seller))
    evaluator = EscrowClient(cast.on(cast.evaluator))
    for label, model in (("escrow", 0), ("escrow_3_level", model_id)):
        spec = EscrowTerms(cast.seller.address, cast.evaluator.address, expiry, 100 * AGT, model, 500)
        job_id = (await client.create_job(spec)).job_id
        if model == 0:
            figures["escrow_create"] = _gas(client)
        await client.fund(job_id, 100 * AGT)
        figures[f"{label}_fund"] = _gas(client)
        await provider.submit(job_id, b"\x01" * 32)
        await evaluator.complete(job_id, b"\x02" * 32, 90)
        figures[f"{label}_complete"] = _gas(evaluator)
    figures.update(await dispute_paths(cast))
    figures.update(await federated_paths(cast))
    return figures


async def dispute_paths(cast: Cast) -> dict[str, int]:
    """gasUsed of one committee dispute: the seller's attestation is challenged by the evaluator, a committee of
    three is drawn from the other stakers (at least the buyer and two creators, 1,000 AGT each) and votes against
    it, and the seller is slashed."""
    figures: dict[str, int] = {}
    for i, account in enumerate((cast.buyer, cast.seller, *cast.creators[:2])):
        staker = StakingClient(cast.on(account))
        await staker.stake(1_000 * AGT)
        if i == 0:
            figures["staking_stake_joins_set"] = _gas(staker)
    task, honest, wrong = b"\x0a" * 32, b"\x0b" * 32, b"\x0c" * 32
    seller = StakingClient(cast.on(cast.seller))
    challenger = StakingClient(cast.on(cast.evaluator))
    await seller.attest(task, wrong)
    figures["staking_attest"] = _gas(seller)
    await challenger.attest(task, honest)
    dispute_id = (await challenger.open_dispute(task, cast.seller.address, honest)).dispute_id
    figures["staking_open_dispute"] = _gas(challenger)
    committee = await challenger.draw_committee(dispute_id)
    if committee is None or len(committee.members) != 3:
        raise RuntimeError(f"expected a committee of three, drew {committee}")
    figures["staking_draw_committee_3"] = _gas(challenger)
    for i, member in enumerate(committee.members):
        voter = StakingClient(cast.conns[member])
        await voter.vote(dispute_id, honest)
        if i == 0:
            figures["staking_vote_first"] = _gas(voter)
    window = await challenger.dispute_window()
    provider = challenger.conn.w3.provider
    await provider.make_request(RPCEndpoint("evm_increaseTime"), [window])
    await provider.make_request(RPCEndpoint("evm_mine"), [])
    await challenger.resolve(dispute_id)
    figures["staking_resolve_3_members"] = _gas(challenger)
    return figures


FEDERATED_CONTRIBUTORS = 100
"""Contributors rewarded in the measured federated round (proofs of 6-7 hashes)."""


async def federated_paths(cast: Cast) -> dict[str, int]:
    """gasUsed of one federated job: the buyer sponsors 100 AGT, the evaluator (a staked validator) posts a round
    rewarding FEDERATED_CONTRIBUTORS fresh accounts, and the seller relays the claims (each pays a fresh account)."""
    figures: dict[str, int] = {}
    sponsor = FederatedRewardsClient(cast.on(cast.buyer))
    aggregator = FederatedRewardsClient(cast.on(cast.evaluator))
    relayer = FederatedRewardsClient(cast.on(cast.seller))
    deadline = int((await sponsor.conn.w3.eth.get_block("latest"))["timestamp"]) + 86_400
    terms = FederatedTerms(cast.evaluator.address, 100 * AGT, deadline, await sponsor.min_claim_window(), b"\x0f" * 32)
    job_id = (await sponsor.create_job(terms)).job_id
    figures["federated_create_job"] = _gas(sponsor)
    contributors = {_contributor(i): AGT // 10 + i for i in range(FEDERATED_CONTRIBUTORS)}
    tree = RewardTree(job_id, 1, contributors)
    await aggregator.post_tree(tree)
    figures["federated_post_root"] = _gas(aggregator)
    claims = tree.claims()
    await relayer.claim(claims[0])
    figures["federated_claim"] = _gas(relayer)
    await relayer.claim_many(claims[1:4])
    figures["federated_claim_many_3"] = _gas(relayer)
    return figures


def _contributor(index: int) -> str:
    """A fresh account (no balance, never seen by the token) for the index-th federated contributor."""
    return str(to_checksum_address(keccak(b"agora-gas-contributor" + index.to_bytes(4, "big"))[-20:]))


async def amortized_per_call(cast: Cast, calls: int = 100) -> dict[str, float]:
    """Gas per paid inference call: `calls` calls settled by one channel claim vs one ERC-20 transfer each.

    "cold" is the very first channel on a fresh deployment (it pays for first-time global storage);
    the other channel figures are steady state (the contract and both parties already active).
    """
    buyer = ChannelsClient(cast.on(cast.buyer))
    seller = ChannelsClient(cast.on(cast.seller))
    token = TokenClient(cast.on(cast.buyer))
    expiry = int((await buyer.conn.w3.eth.get_block("latest"))["timestamp"]) + 86_400
    deposit = calls * PRICE_PER_CALL

    async def open_and_claim(model_id: int = 0) -> tuple[int, int]:
        channel_id = (await buyer.open_channel(cast.seller.address, deposit, expiry, model_id)).channel_id
        opened = _gas(buyer)
        await seller.claim(await buyer.sign(cast.buyer, channel_id, deposit))
        return opened, _gas(seller)

    cold_open, cold_claim = await open_and_claim()
    warm_open, warm_claim = await open_and_claim()
    model_id, _ = await three_level_model(cast, salt=1)
    await open_and_claim(model_id)  # first claim of this model pays its recipients' first receipts
    lineage_open, lineage_claim = await open_and_claim(model_id)

    many = [(await buyer.open_channel(cast.seller.address, deposit, expiry)).channel_id for _ in range(10)]
    many_open = _gas(buyer) * 10  # every steady-state open costs the same
    await seller.claim_many([await buyer.sign(cast.buyer, c, deposit) for c in many])
    many_claim = _gas(seller)

    transfer_gas = 0
    for _ in range(calls):
        receipt = await token.transfer(cast.seller.address, PRICE_PER_CALL)
        transfer_gas += int(receipt["gasUsed"])

    return {
        "erc20_transfer_per_call": transfer_gas / calls,
        "channel_cold_open_plus_claim_per_call": (cold_open + cold_claim) / calls,
        "channel_open_plus_claim_per_call": (warm_open + warm_claim) / calls,
        "channel_claim_only_per_call": warm_claim / calls,
        "channel_3_level_lineage_per_call": (lineage_open + lineage_claim) / calls,
        "claim_many_10_channels_per_call": (many_open + many_claim) / (10 * calls),
    }
