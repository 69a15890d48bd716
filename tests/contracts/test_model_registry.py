"""ModelRegistry on anvil: registration, lineage validation, conserving splits, EIP-2981."""

from __future__ import annotations

import pytest

from marketplace.chain import ChainConnection, Lineage, ModelListing, Payout
from tests.contracts.conftest import AGT, Actors, clients_for, expect_revert

pytestmark = pytest.mark.chain


def _hash(n: int) -> bytes:
    return n.to_bytes(32, "big")


async def test_registerModel_mintsTokenToCreator(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    spec = ModelListing(_hash(1), "ipfs://card", price_per_call=10**15, price_per_job=5 * AGT, royalty_bps=250)
    registered = await bob.models.register_model(spec)
    assert (registered.model_id, registered.creator, registered.parents) == (1, actors.bob.address, ())
    assert await bob.models.owner_of(1) == actors.bob.address
    assert await bob.models.token_uri(1) == "ipfs://card"
    info = await bob.models.model_of(1)
    assert (info.content_hash, info.price_per_call, info.price_per_job, info.creator) == (
        _hash(1),
        10**15,
        5 * AGT,
        actors.bob.address,
    )
    assert await bob.models.model_by_content(actors.bob.address, _hash(1)) == 1
    assert await bob.models.model_by_content(actors.carol.address, _hash(1)) == 0
    assert await bob.models.model_count() == 1


async def test_registerModel_storesLineage(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    a = (await bob.models.register_model(ModelListing(_hash(1)))).model_id
    b = (await bob.models.register_model(ModelListing(_hash(2)))).model_id
    lineage = Lineage(parents=((a, 1_000), (b, 500)), contributors=((actors.carol.address, 300),))
    child = await bob.models.register_model(ModelListing(_hash(3)), lineage)
    assert child.parents == (a, b)
    assert await bob.models.lineage_of(child.model_id) == lineage


async def test_registerModel_revertsOnDuplicateContent(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.models.register_model(ModelListing(_hash(1)))
    error = await expect_revert("DuplicateContent", bob.models.register_model(ModelListing(_hash(1))))
    assert error.args_values == (_hash(1), 1)


async def test_registerModel_squattedContentHashDoesNotLockOutItsCreator(conn: ChainConnection, actors: Actors) -> None:
    """A squatter that registers a creator's published hash first does not stop the creator registering it."""
    squatter, bob = clients_for(conn, actors.carol), clients_for(conn, actors.bob)
    squatted = (await squatter.models.register_model(ModelListing(_hash(1)))).model_id
    own = (await bob.models.register_model(ModelListing(_hash(1)))).model_id
    assert own != squatted
    assert await bob.models.model_by_content(actors.bob.address, _hash(1)) == own
    assert (await bob.models.model_of(own)).creator == actors.bob.address


async def test_registerModel_revertsOnZeroContentHash(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("ZeroContentHash", clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(0))))


async def test_registerModel_revertsOnUnknownParent(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(1)), Lineage(parents=((1, 100),)))
    error = await expect_revert("UnknownModel", call)
    assert error.args_values == (1,)


async def test_registerModel_revertsWhenSharesExceedTotal(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.models.register_model(ModelListing(_hash(1)))
    lineage = Lineage(parents=((1, 6_000),), contributors=((actors.carol.address, 4_001),))
    error = await expect_revert("SharesExceedTotal", bob.models.register_model(ModelListing(_hash(2)), lineage))
    assert error.args_values == (10_001,)


async def test_registerModel_revertsOnZeroShare(conn: ChainConnection, actors: Actors) -> None:
    lineage = Lineage(contributors=((actors.carol.address, 0),))
    await expect_revert(
        "ZeroShare", clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(1)), lineage)
    )


async def test_registerModel_revertsOnZeroContributor(conn: ChainConnection, actors: Actors) -> None:
    lineage = Lineage(contributors=(("0x" + "00" * 20, 10),))
    call = clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(1)), lineage)
    await expect_revert("ZeroContributor", call)


async def test_registerModel_revertsOnLengthMismatch(conn: ChainConnection, actors: Actors) -> None:
    models = clients_for(conn, actors.bob).models
    fn = models.contract.functions.registerModel(
        ModelListing(_hash(1)).as_tuple(), ([], [], [actors.carol.address], [])
    )
    await expect_revert("LineageLengthMismatch", conn.with_account(actors.bob).send(fn))


async def test_registerModel_revertsOnTooManyParents(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.models.register_model(ModelListing(_hash(1)))
    lineage = Lineage(parents=tuple((1, 10) for _ in range(9)))
    error = await expect_revert("TooManyParents", bob.models.register_model(ModelListing(_hash(2)), lineage))
    assert error.args_values == (9,)


async def test_registerModel_revertsWhenSplitWouldBeTooLarge(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    pool = tuple((actors.carol.address, 10) for _ in range(40))
    wide = (await bob.models.register_model(ModelListing(_hash(1)), Lineage(contributors=pool))).model_id
    lineage = Lineage(parents=((wide, 100),), contributors=pool)
    error = await expect_revert("LineageTooLarge", bob.models.register_model(ModelListing(_hash(2)), lineage))
    assert error.args_values == (82,)


async def test_registerModel_revertsOnRoyaltyAboveCap(conn: ChainConnection, actors: Actors) -> None:
    call = clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(1), royalty_bps=5_001))
    await expect_revert("RoyaltyTooHigh", call)


async def test_setPriceHints_updatesForOwner(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.models.register_model(ModelListing(_hash(1)))
    updated = await bob.models.set_price_hints(1, 7, 9)
    assert (updated.price_per_call, updated.price_per_job) == (7, 9)
    info = await bob.models.model_of(1)
    assert (info.price_per_call, info.price_per_job) == (7, 9)


async def test_setPriceHints_revertsForNonOwner(conn: ChainConnection, actors: Actors) -> None:
    await clients_for(conn, actors.bob).models.register_model(ModelListing(_hash(1)))
    error = await expect_revert("NotModelOwner", clients_for(conn, actors.carol).models.set_price_hints(1, 1, 1))
    assert error.args_values == (actors.carol.address, 1)


async def test_split_paysWholeAmountToPayeeWithoutModel(conn: ChainConnection, actors: Actors) -> None:
    models = clients_for(conn, actors.bob).models
    assert await models.split(0, 123, actors.bob.address) == [Payout(actors.bob.address, 123)]


async def test_split_revertsOnUnknownModel(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownModel", clients_for(conn, actors.bob).models.split(5, 1, actors.bob.address))


async def test_split_conservesEveryWeiAcrossThreeLevels(conn: ChainConnection, actors: Actors) -> None:
    carol, dave, bob = (clients_for(conn, a) for a in (actors.carol, actors.dave, actors.bob))
    grand = (await carol.models.register_model(ModelListing(_hash(1)))).model_id
    parent_lineage = Lineage(parents=((grand, 3_333),), contributors=((actors.val1.address, 1_111),))
    parent = (await dave.models.register_model(ModelListing(_hash(2)), parent_lineage)).model_id
    child_lineage = Lineage(parents=((parent, 2_000),), contributors=((actors.val2.address, 777),))
    child = (await bob.models.register_model(ModelListing(_hash(3)), child_lineage)).model_id
    for amount in (1, 9_999, 10_007, 12_345_678_901_234_567_891):
        payouts = await bob.models.split(child, amount, actors.outsider.address)
        assert sum(p.amount for p in payouts) == amount
        parent_share = amount * 2_000 // 10_000
        grand_share = parent_share * 3_333 // 10_000
        expected = {
            actors.carol.address: grand_share,
            actors.val1.address: parent_share * 1_111 // 10_000,
            actors.val2.address: amount * 777 // 10_000,
        }
        for recipient, share in expected.items():
            assert sum(p.amount for p in payouts if p.recipient == recipient) == share
        assert all(p.amount > 0 for p in payouts)


async def test_split_stopsAtMaxDepthAndPaysAncestorWhole(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    owners = (actors.alice, actors.carol, actors.dave, actors.val1, actors.val2)
    model_id = 0
    for depth, owner in enumerate(owners):
        lineage = Lineage(parents=((model_id, 5_000),)) if model_id else Lineage()
        model_id = (
            await clients_for(conn, owner).models.register_model(ModelListing(_hash(depth + 1)), lineage)
        ).model_id
    payouts = await bob.models.split(model_id, 16_000, actors.bob.address)
    # Generations above the served model: val1 (1), dave (2), carol (3, paid whole); alice is beyond the cap.
    by = {p.recipient: p.amount for p in payouts}
    assert by == {
        actors.bob.address: 8_000,
        actors.val1.address: 4_000,
        actors.dave.address: 2_000,
        actors.carol.address: 2_000,
    }
    assert actors.alice.address not in by


async def test_split_followsTokenOwnership(conn: ChainConnection, actors: Actors) -> None:
    carol, bob = clients_for(conn, actors.carol), clients_for(conn, actors.bob)
    base = (await carol.models.register_model(ModelListing(_hash(1)))).model_id
    child = (await bob.models.register_model(ModelListing(_hash(2)), Lineage(parents=((base, 1_000),)))).model_id
    await carol.models.transfer_model(actors.dave.address, base)
    payouts = await bob.models.split(child, 1_000, actors.bob.address)
    assert Payout(actors.dave.address, 100) in payouts


async def test_royaltyInfo_paysCreatorEip2981Share(conn: ChainConnection, actors: Actors) -> None:
    bob = clients_for(conn, actors.bob)
    await bob.models.register_model(ModelListing(_hash(1), royalty_bps=250))
    await bob.models.register_model(ModelListing(_hash(2)))
    assert await bob.models.royalty_info(1, 10_000) == Payout(actors.bob.address, 250)
    assert (await bob.models.royalty_info(2, 10_000)).amount == 0
    supports = bob.models.contract.functions.supportsInterface
    assert await conn.call(supports(bytes.fromhex("2a55205a")))  # EIP-2981
    assert await conn.call(supports(bytes.fromhex("80ac58cd")))  # ERC-721


async def test_tokenURI_revertsOnUnknownModel(conn: ChainConnection, actors: Actors) -> None:
    await expect_revert("UnknownModel", clients_for(conn, actors.bob).models.token_uri(1))
