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

import importlib
import pkgutil
from types import ModuleType

from uagents import Model

import protocols


def protocol_modules() -> tuple[ModuleType, ...]:
    """Every module of the `protocols` package that declares a protocol `SPEC`, found by walking the package."""
    found = []
    for info in sorted(pkgutil.iter_modules(protocols.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"protocols.{info.name}")
        if hasattr(module, "SPEC"):
            found.append(module)
    return tuple(found)


PROTOCOL_MODULES: tuple[ModuleType, ...] = protocol_modules()

PROTOCOL_DIGESTS: dict[str, str] = {
    "agora-ads": "proto:ad42c9e9e56c2590d97fbde7adcf310ebd9f24993b967e2cb18949217f8de351",
    "agora-blobs": "proto:739710121f0a303848604a6e19a17621837997e29b81b35d93fc31e7f587e163",
    "agora-control": "proto:dd85d1bf4c093e10ab8dc655e48fe78cfe37005d93c2cbe41c133538d1fdd85e",
    "agora-disputes": "proto:303a085df590e9deba625d0e14bd906fe3c58948d548c063d87007f86a042fb1",
    "agora-errors": "proto:165f3c2379f952941dc945355ba2dd6afd407ce1c18ddd3dd3930fe4f93233ce",
    "agora-evaluation": "proto:42608cb199117310b953b6971ae169e4a05e40dd64a9722c710574d45d6eab7f",
    "agora-federated": "proto:216f897c5b0965dd51043c9a73bef3a27fdfc7e4291cb68658f1e3d8a93fafd2",
    "agora-jobs": "proto:ab7b3ae665f650aebab60cde1561dbb1c98154e508a10ae0f23138e8bf8f8302",
    "agora-negotiation": "proto:272a1771e5328968c44dac7cd6c570859381604bee61f5edda1e5546d3288bc1",
    "agora-payment": "proto:a6d38b8e55835ace405f80ec01a09b4c5a2a6ec314baf3726355fe6c25b3d5ef",
    "agora-validation": "proto:cf95542279394328e00d1a5b973b6c9ce96228cd97a5168d68f0aad4c0bcf19c",
}

MODEL_DIGESTS: dict[str, str] = {
    "Creative": "model:67476e6ec914aa4c4a8880ad06208b5ad39ca988cd9118dd464c5d62f39f81cf",
    "CreativeAnnounce": "model:0ede6db5ae5df6a9019b3c7b15a7a13df612b9d45f2267aeb0c96b3cd29f3a96",
    "CreativeReceived": "model:42b5fb19010bee576e37c5580d24c4659686668bbf7f913557ce08cda76a19a2",
    "ConversionCommitment": "model:6b90ca69c5e19feaa504dd7bbceaeea8ae9b03e13854cc04815373bbb33e0438",
    "CommitmentAccepted": "model:fa89bc319e57b19e2e8ca9c92a7d4a11aadf495b07e9d4e74060ce02aa7b5c76",
    "RootNotice": "model:1a3ead08088d2a5673101b571ec4442b4b18e487fbe30ae12a96a542c9557fd6",
    "RootReceived": "model:76aa5dddd2044cc174bb9968996fbf2a1b74c45d5c12de4ab88333d925b83048",
    "RelayedClaim": "model:accd50b9ec21500d06e21ab4302c9d769b532950d8fcb8df6e85fbcbfa034d3c",
    "ClaimRelay": "model:a05bdc1b65e4d37261c5a90d90f2fa59961e27260b84e86b0107e8aece165bf8",
    "ClaimsQueued": "model:dbac6d7a25521df52ac0d55844c910dd4317743fb1a7e2dd6db19b007b26af13",
    "BlobGrant": "model:cb541e6651a5840dd33a950280fb5c36574029d08f85283792d40e1c76cdb9e3",
    "BlobRef": "model:34f3e263fda432a9d6249aa671f8904a9bb325d83cd26b45b17ec6ea916afee8",
    "GrantRequest": "model:b8c9497f64d7e54d44c2e6748132f867c3ff573ced2df870eae46001c2e8e213",
    "ControlCommand": "model:3255ab586635293170c190bdbb007a8727ed0a15826f36030a40db9d27e6bc3c",
    "ControlResult": "model:68c11b57a836fa0ea557d79b8682daddc7f758b5005305f6c82a8e97458d5ed7",
    "DisputeVoteRequest": "model:0b177465e8663b2bfd7da5e2f7160fa76321c40fc28964b3752a4f7290d0a100",
    "ErrorReply": "model:ce6f178d81537133f1505408a53eb40046130bbbce787e8c5b55ee6caa4d9d53",
    "EvaluationTerms": "model:76ae8e334183e470c6a3418d97daf601bb3634ea44f787e18dd687efde8600c5",
    "TermsAccepted": "model:b52ebfb798d786803394e019b03c057568b565689ed14dd08ef6be8013048acb",
    "EvaluationRequest": "model:3ce729da6bfa612c36c0011aac5521cfa6072bc4077c11bc6aaf857cc33ec49f",
    "EvaluationResult": "model:72294bf1f3e5ce4078807f5c3ef0a1c740e7dbfcc705613aae4e903c94f1b06b",
    "FederatedPlan": "model:dc58063fa454128cee8be219b2928ff7a75d6cd6dd2b0e2eee71709a93bc1014",
    "FederatedAssignment": "model:0fb8051979f8f68b781b93754949c0e011f3d2f6bf69d21c2bf71165ca3e4e2c",
    "AssignmentAccepted": "model:841472187e78899bca938ddd34c9bc7f6797fb2fe3176e9fe4aff8215e5fe321",
    "FederatedInvite": "model:2c39ce975c8cf08d07f952a17f24c5fc899018e93d4bcb05b5029626013ca15b",
    "FederatedJoin": "model:e752039708e8279a9c59612deae5f1f280570aa351f7d064e744a20e15a66b11",
    "RoundStart": "model:e519dbbae3c977b9487ae57bde912e44635c656a2525eecfcfc01926e0e61575",
    "RoundKeys": "model:daa23784c10cec654dbb0361ed8795615247509ec887191f92904a5be114bdcf",
    "RoundAdverts": "model:5f475a96a01e77af07cec22d9167e2876a84e7b008ea572d7ef6ecf805ec5c1c",
    "SealedShare": "model:1747aac41effd324f92be136b149cff9546e8953a7d7825596079031f2be9cd8",
    "RoundShares": "model:95e864623c7d3a72cdd9082c77f2b14c36217baac6b34f28b3b5d550eed0f827",
    "MaskedUpdate": "model:0b5ae84fc814a3aca3f65a75b25100f3f9e28710e4e8b2dbf9d3fff9fcd6dbb6",
    "RoundUnmask": "model:00816db92d1e5f1707b8528a214733e423e69eb97b7ea87be9c7193b3ee0b6de",
    "UnmaskShares": "model:030d5a7472b49aea9dba18340a61ef344bf5c36f724d8bfa10fa4bb552d9a062",
    "RoundResult": "model:c0c8972e07276415dbd4909f50ef2d162b1ec5a737be0860f745dc50d5e240c4",
    "NewModelVersion": "model:52089b05bbbefa9dd555e027e37494d2ad4fc6d85111e9ad475a7785a5c9e2c3",
    "VersionRegistered": "model:07e00a5032d9c0571b1c1f72d8542b5740236d0a03d555302dd428914c740bd5",
    "InferenceRequest": "model:d098136a415c2891c27064dedaa8381c2f7f3466cdeda8070ec0756a450d590e",
    "InferenceResult": "model:40f87357981ec5b540f967a996fcdeef4ecd0179d43e9f5b2835fd3c87ca92f6",
    "TrainingRequest": "model:54568e5ee5db13dcfd2ce3d54de3d8f087a80192fc25168cf202d272e4b3e711",
    "TrainingResult": "model:5f6aaba9914620b9311bd455deac1453ef3a5b65ba42c0706c8cdc80a2ed60c3",
    "JobSpec": "model:8390a3cd3e95647f06ed72c83e0610fa33c8a92f74445368c4de54cf1bae42a5",
    "CallForProposals": "model:4bb9442dbf61c9c9782d7c0a2118fb6bf0266542e5a66e9f3c98a9d3f15076eb",
    "Proposal": "model:3106386a164a914ae08ae5d25e4b0127dba7267b17d88eda773413cdff2123a3",
    "CounterOffer": "model:eef3dfd4ab9b8b49b05bdd580d17fa5226d08b611490765abfb0fa44ebb37541",
    "Accept": "model:a02494cb5001697555a45c5c15f248dd65836c344dcd0869d9b076a739d5628f",
    "Reject": "model:9f851c5c6e95550ddca101af7546ff5fc8b6c69b9f2ee60410f3cc214cfbf135",
    "ChannelOpened": "model:98244b0a369bf2b60b2326d51e5d2809b474947b03b01c4d001dc59af432efdc",
    "Voucher": "model:3a4310af8227af0ed621b1bddba8d930843f97feb0702d35c461bbf9d2677c1e",
    "Receipt": "model:9a108b9945309aae7e056e4016a446cf94c5f2b334406b3b46a1709ac0c4f5f9",
    "ValidationRequest": "model:2948e4f501069b4959d410ec02cbf5c9487a18b239d13433eed7f72e028b6359",
    "Attestation": "model:855ab51e9ae7c65c53e7948e6ea857cb6ce926fb9aa79c1a19620c9ff352e02e",
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
