"""Model weights between agents: a seller shares the artifacts it lists with staked accounts; others fetch them.

Weights stay in the seller's own store. A validator that must re-execute a call, a committee member, or a
seller fine-tuning a listed parent asks the model's creator for a grant with a request signed by its
settlement account; the creator grants it only when that account is staked in ValidatorStaking (a bond
that can be slashed), and the reader checks the bytes against the content hash ModelRegistry lists.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from eth_account import Account
from eth_account.messages import encode_defunct
from uagents import Context

from agents.base import AgoraAgent, RemoteError
from agents.blobs import BlobRefused
from agents.capabilities.catalogue import ModelCatalogue
from agents.capabilities.kit import Capability, Handlers
from agents.mods import Rejected
from agents.settlement import ListedModel, Settlement
from agents.transport import DeliveryError
from protocols import blobs
from protocols.blobs import BlobRef, GrantRequest, grant_request_text
from protocols.errors import ErrorCode

GRANT_TTL = 3600
"""How long a shared artifact stays readable by the account's agent (seconds)."""


class ArtifactSharing(Capability):
    """Grants read access to this seller's listed model artifacts to agents of staked accounts."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement, catalogue: ModelCatalogue) -> None:
        super().__init__(agent)
        self.settlement = settlement
        self.catalogue = catalogue

    def handlers(self) -> Iterable[Handlers]:
        """GrantRequest, in the owner role of the blobs protocol."""
        return (Handlers(blobs.SPEC, "owner", {GrantRequest: self._on_request}),)

    async def _on_request(self, ctx: Context, sender: str, msg: GrantRequest) -> None:
        if not any(entry.content_hash == msg.blob_id for entry in self.catalogue.entries.values()):
            raise Rejected(ErrorCode.REJECTED, "no model listed here has that artifact")
        if msg.expires <= time.time():
            raise Rejected(ErrorCode.EXPIRED, "the grant request has expired")
        text = grant_request_text(msg.blob_id, sender, msg.expires)
        try:
            signer = Account.recover_message(encode_defunct(text=text), signature=msg.signature)
        except ValueError as exc:
            raise Rejected(ErrorCode.UNAUTHORIZED, "undecodable account signature") from exc
        if signer.lower() != msg.account.lower():
            raise Rejected(ErrorCode.UNAUTHORIZED, "the request is not signed by the account it names")
        if not await self.settlement.staking.is_validator(msg.account):
            raise Rejected(ErrorCode.UNAUTHORIZED, "artifacts are shared with staked accounts only")
        await ctx.send(sender, self.agent.blobs.grant(msg.blob_id, sender, GRANT_TTL))


class ArtifactFetcher:
    """Gets a listed model's weights: from this agent's store, else from the agents of the model's creator."""

    def __init__(self, agent: AgoraAgent, settlement: Settlement) -> None:
        self.agent = agent
        self.settlement = settlement

    async def weights(self, listed: ListedModel) -> bytes:
        """The artifact bytes of `listed`, hash-checked against its on-chain content hash; Rejected if unobtainable."""
        blobs = self.agent.blobs
        if blobs.has(listed.content_hash):
            return blobs.get(listed.content_hash)
        expires = int(time.time()) + 300
        text = grant_request_text(listed.content_hash, self.agent.address, expires)
        signature = Account.sign_message(encode_defunct(text=text), self.settlement.conn.account.key).signature
        request = GrantRequest(
            blob_id=listed.content_hash, account=self.settlement.account, expires=expires,
            signature="0x" + signature.hex(),
        )  # fmt: skip
        candidates = await self.settlement.agents_of({listed.creator})
        for address in candidates[listed.creator.lower()]:
            try:
                ref = await self.agent.request(address, request, BlobRef, wait=30)
                if ref.blob_id != listed.content_hash:
                    continue  # not the listed weights: ask the next candidate
                return await blobs.fetch(ref)
            except (RemoteError, DeliveryError, TimeoutError, BlobRefused) as err:
                self.agent.logger.info("no artifact from %s: %s", address[:16], err)
        raise Rejected(ErrorCode.REJECTED, f"the creator of {listed.model_id} did not share its weights")
