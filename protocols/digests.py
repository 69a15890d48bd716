"""Pinned schema digests of every agora wire message and protocol, checked by tests/agents/test_digests.py.

Compatibility note. A message's digest is the sha256 of its JSON schema, which includes the class
name, the docstring and every field: renaming, re-documenting or retyping a message makes a new
wire type that old agents silently ignore. So:

1. Never edit a released message in place. Add a new class (e.g. `ProposalV2`) or an optional field
   with a default only when every peer can ignore it, and keep handling the old one for a while.
2. Bump the protocol spec's `version` (semver: major for removed/changed messages, minor for added).
3. Update the tables below in the same commit (`python -m protocols.digests` prints them), and say
   in CHANGELOG.md which digests changed. The test fails until the tables match the code, so an
   accidental rename breaks a test, not a live network.
"""

from __future__ import annotations

from types import ModuleType

from uagents import Model

from protocols import errors, evaluation, jobs, negotiation, payment, validation

PROTOCOL_MODULES: tuple[ModuleType, ...] = (errors, negotiation, jobs, payment, validation, evaluation)

PROTOCOL_DIGESTS: dict[str, str] = {
    "agora-errors": "proto:165f3c2379f952941dc945355ba2dd6afd407ce1c18ddd3dd3930fe4f93233ce",
    "agora-negotiation": "proto:272a1771e5328968c44dac7cd6c570859381604bee61f5edda1e5546d3288bc1",
    "agora-jobs": "proto:cfeb966fc2d8bd5428377c615ce27e05c4b8b830cc6b08019384cd7efba6bc5c",
    "agora-payment": "proto:a6d38b8e55835ace405f80ec01a09b4c5a2a6ec314baf3726355fe6c25b3d5ef",
    "agora-evaluation": "proto:040f1135e4b991754126c9c5f97bbaf21c36dc7bf20e618762a94bd21970319d",
    "agora-validation": "proto:c8166e8c3dfd7225756460bd731ba1baf1f1440f40b8cea7c163f00f96417f57",
}

MODEL_DIGESTS: dict[str, str] = {
    "ErrorReply": "model:ce6f178d81537133f1505408a53eb40046130bbbce787e8c5b55ee6caa4d9d53",
    "Accept": "model:a02494cb5001697555a45c5c15f248dd65836c344dcd0869d9b076a739d5628f",
    "CallForProposals": "model:4bb9442dbf61c9c9782d7c0a2118fb6bf0266542e5a66e9f3c98a9d3f15076eb",
    "CounterOffer": "model:eef3dfd4ab9b8b49b05bdd580d17fa5226d08b611490765abfb0fa44ebb37541",
    "JobSpec": "model:8390a3cd3e95647f06ed72c83e0610fa33c8a92f74445368c4de54cf1bae42a5",
    "Proposal": "model:3106386a164a914ae08ae5d25e4b0127dba7267b17d88eda773413cdff2123a3",
    "Reject": "model:9f851c5c6e95550ddca101af7546ff5fc8b6c69b9f2ee60410f3cc214cfbf135",
    "InferenceRequest": "model:d098136a415c2891c27064dedaa8381c2f7f3466cdeda8070ec0756a450d590e",
    "InferenceResult": "model:40f87357981ec5b540f967a996fcdeef4ecd0179d43e9f5b2835fd3c87ca92f6",
    "TrainingRequest": "model:34f8b9bbfdc0a105656b673060da3f50b68e7cea7c9bea923bce0385e7e4dd07",
    "TrainingResult": "model:ef992c1a5835d64d8f3574c120b7c4274d674e7e5c38bbd2c5b95513d1418464",
    "ChannelOpened": "model:98244b0a369bf2b60b2326d51e5d2809b474947b03b01c4d001dc59af432efdc",
    "Receipt": "model:9a108b9945309aae7e056e4016a446cf94c5f2b334406b3b46a1709ac0c4f5f9",
    "Voucher": "model:3a4310af8227af0ed621b1bddba8d930843f97feb0702d35c461bbf9d2677c1e",
    "Attestation": "model:855ab51e9ae7c65c53e7948e6ea857cb6ce926fb9aa79c1a19620c9ff352e02e",
    "EvaluationRequest": "model:c505586405749c122a0d700bd44f3268324abd03824907995a5995172b4bda20",
    "EvaluationResult": "model:72294bf1f3e5ce4078807f5c3ef0a1c740e7dbfcc705613aae4e903c94f1b06b",
    "DisputeVoteRequest": "model:85cd5042a4511d922b6a1b4057f5642ff60e8638d8783518b6f42b2d68e471f0",
    "ValidationRequest": "model:b0397759dc066b1329693035ce167913cfa02eecd8c3ebd98e706835c7828544",
}


def current_model_digests() -> dict[str, str]:
    """The digests the code produces now, by message class name."""
    found: dict[str, str] = {}
    for module in PROTOCOL_MODULES:
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Model) and obj.__module__ == module.__name__:
                found[obj.__name__] = Model.build_schema_digest(obj)
    return found


def current_protocol_digests() -> dict[str, str]:
    """The protocol-spec digests the code produces now, by protocol name."""
    return {module.SPEC.name: module.SPEC.digest for module in PROTOCOL_MODULES}


if __name__ == "__main__":
    print("PROTOCOL_DIGESTS =", current_protocol_digests())
    print("MODEL_DIGESTS =", current_model_digests())
