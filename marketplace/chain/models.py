"""Typed client for ModelRegistry: model tokens, lineage, royalty splits and EIP-2981."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from marketplace.chain.base import ContractClient

BPS = 10_000
"""One hundred percent in basis points."""


@dataclass(frozen=True)
class ModelListing:
    """What a creator declares when registering a model (amounts in token base units)."""

    content_hash: bytes
    uri: str = ""
    price_per_call: int = 0
    price_per_job: int = 0
    royalty_bps: int = 0

    def as_tuple(self) -> tuple[bytes, str, int, int, int]:
        """The ABI tuple of the Solidity ModelSpec struct."""
        return (self.content_hash, self.uri, self.price_per_call, self.price_per_job, self.royalty_bps)


@dataclass(frozen=True)
class Lineage:
    """Upstream shares of a model: parent models and contributor accounts, in basis points."""

    parents: tuple[tuple[int, int], ...] = ()
    """(parent model id, share in bps) pairs."""
    contributors: tuple[tuple[str, int], ...] = ()
    """(contributor address, share in bps) pairs."""

    def as_tuple(self) -> tuple[list[int], list[int], list[str], list[int]]:
        """The ABI tuple of the Solidity Lineage struct."""
        return (
            [p for p, _ in self.parents],
            [b for _, b in self.parents],
            [c for c, _ in self.contributors],
            [b for _, b in self.contributors],
        )


@dataclass(frozen=True)
class ModelInfo:
    """Stored facts of a registered model."""

    model_id: int
    content_hash: bytes
    price_per_call: int
    price_per_job: int
    creator: str
    registered_at: int


@dataclass(frozen=True)
class Payout:
    """One entry of a royalty split."""

    recipient: str
    amount: int


@dataclass(frozen=True)
class ModelRegistered:
    """A ModelRegistered event: a model token was minted to its creator."""

    model_id: int
    creator: str
    content_hash: bytes
    parents: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PriceHintsUpdated:
    """A PriceHintsUpdated event."""

    model_id: int
    price_per_call: int
    price_per_job: int


class ModelRegistryClient(ContractClient):
    """ModelRegistry seen from one signer."""

    contract_name = "ModelRegistry"

    async def register_model(self, spec: ModelListing, lineage: Lineage | None = None) -> ModelRegistered:
        """Register a model (minting its token to this signer) and return the event with its id."""
        fn = self.contract.functions.registerModel(spec.as_tuple(), (lineage or Lineage()).as_tuple())
        return self._one(await self._send(fn), "ModelRegistered", _registered)

    async def set_price_hints(self, model_id: int, price_per_call: int, price_per_job: int) -> PriceHintsUpdated:
        """Change a model's price hints (token owner only)."""
        fn = self.contract.functions.setPriceHints(model_id, price_per_call, price_per_job)
        return self._one(
            await self._send(fn),
            "PriceHintsUpdated",
            lambda a: PriceHintsUpdated(a["modelId"], a["pricePerCall"], a["pricePerJob"]),
        )

    async def transfer_model(self, to: str, model_id: int) -> None:
        """Transfer the model token (and with it the model's future root royalties) to `to`."""
        fn = self.contract.functions.transferFrom(self.conn.address, self._cs(to), model_id)
        await self._send(fn)

    async def split(self, model_id: int, amount: int, payee: str) -> list[Payout]:
        """How a payment of `amount` for `model_id` is divided (payee gets the root share and dust)."""
        recipients, amounts = await self.conn.call(self.contract.functions.split(model_id, amount, self._cs(payee)))
        return [Payout(str(r), int(a)) for r, a in zip(recipients, amounts, strict=True)]

    async def model_of(self, model_id: int) -> ModelInfo:
        """The stored facts of a model."""
        raw = await self.conn.call(self.contract.functions.modelOf(model_id))
        return ModelInfo(model_id, bytes(raw[0]), raw[1], raw[2], str(raw[3]), raw[4])

    async def lineage_of(self, model_id: int) -> Lineage:
        """The parents and contributors of a model."""
        parents, parent_bps, contributors, contributor_bps = await self.conn.call(
            self.contract.functions.lineageOf(model_id)
        )
        return Lineage(
            tuple(zip(parents, parent_bps, strict=True)),
            tuple((str(c), b) for c, b in zip(contributors, contributor_bps, strict=True)),
        )

    async def owner_of(self, model_id: int) -> str:
        """Current owner of the model token."""
        owner: str = await self.conn.call(self.contract.functions.ownerOf(model_id))
        return owner

    async def token_uri(self, model_id: int) -> str:
        """The model's metadata URI."""
        uri: str = await self.conn.call(self.contract.functions.tokenURI(model_id))
        return uri

    async def royalty_info(self, model_id: int, sale_price: int) -> Payout:
        """EIP-2981: who receives how much on a secondary sale of the model token."""
        receiver, amount = await self.conn.call(self.contract.functions.royaltyInfo(model_id, sale_price))
        return Payout(str(receiver), int(amount))

    async def model_by_content(self, creator: str, content_hash: bytes) -> int:
        """The model id `creator` registered with a content hash (0 if none)."""
        model_id: int = await self.conn.call(self.contract.functions.modelByContent(self._cs(creator), content_hash))
        return model_id

    async def model_count(self) -> int:
        """Number of registered models (the highest id)."""
        count: int = await self.conn.call(self.contract.functions.modelCount())
        return count


def _registered(args: dict[str, Any]) -> ModelRegistered:
    return ModelRegistered(args["modelId"], args["creator"], bytes(args["contentHash"]), tuple(args["parents"]))
