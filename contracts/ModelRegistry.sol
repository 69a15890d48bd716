// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC2981} from "@openzeppelin/contracts/token/common/ERC2981.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {RoyaltyMath} from "./libraries/RoyaltyMath.sol";

/// @title ModelRegistry
/// @notice One ERC-721 token per registered model; lineage-aware royalty splits for every payment.
/// @dev Lineage is immutable after registration and parents always have smaller ids, so the
///      lineage graph is acyclic. Split size is bounded at registration (MAX_SPLIT_RECIPIENTS)
///      and depth is capped (MAX_LINEAGE_DEPTH), which bounds the gas of every settlement.
contract ModelRegistry is IModelRegistry, ERC721, ERC2981 {
    /// @notice Generations above the served model that a payment reaches.
    uint256 public constant MAX_LINEAGE_DEPTH = 3;
    /// @notice Most direct parents one model may declare.
    uint256 public constant MAX_PARENTS = 8;
    /// @notice Most entries one split may produce (bounds settlement gas).
    uint256 public constant MAX_SPLIT_RECIPIENTS = 64;
    /// @notice Highest EIP-2981 royalty a creator may set (50%).
    uint256 public constant MAX_ROYALTY_BPS = 5_000;

    uint256 private _count;
    mapping(uint256 modelId => Model) private _models;
    mapping(uint256 modelId => Lineage) private _lineages;
    mapping(uint256 modelId => string) private _uris;
    /// @dev Per creator: anyone may register any hash, so a global index would let a squatter who copies a
    ///      creator's published hash first lock the creator out of registering its own model.
    mapping(address creator => mapping(bytes32 contentHash => uint256 modelId)) private _byContent;

    constructor() ERC721("Agora Model", "AGM") {}

    /// @inheritdoc IModelRegistry
    function registerModel(ModelSpec calldata spec, Lineage calldata lineage) external returns (uint256 modelId) {
        if (spec.contentHash == bytes32(0)) revert ZeroContentHash();
        uint256 existing = _byContent[msg.sender][spec.contentHash];
        if (existing != 0) revert DuplicateContent(spec.contentHash, existing);
        if (spec.royaltyBps > MAX_ROYALTY_BPS) revert RoyaltyTooHigh(spec.royaltyBps);
        uint32 bounds = _validateLineage(lineage);

        modelId = ++_count;
        _models[modelId] = Model({
            contentHash: spec.contentHash,
            pricePerCall: spec.pricePerCall,
            pricePerJob: spec.pricePerJob,
            creator: msg.sender,
            registeredAt: uint64(block.timestamp),
            splitBounds: bounds
        });
        _lineages[modelId] = lineage;
        _uris[modelId] = spec.uri;
        _byContent[msg.sender][spec.contentHash] = modelId;
        if (spec.royaltyBps > 0) _setTokenRoyalty(modelId, msg.sender, spec.royaltyBps);
        emit ModelRegistered(modelId, msg.sender, spec.contentHash, lineage.parents);
        _mint(msg.sender, modelId);
    }

    /// @inheritdoc IModelRegistry
    function setPriceHints(uint256 modelId, uint128 pricePerCall, uint128 pricePerJob) external {
        if (_ownerOf(modelId) != msg.sender) revert NotModelOwner(msg.sender, modelId);
        _models[modelId].pricePerCall = pricePerCall;
        _models[modelId].pricePerJob = pricePerJob;
        emit PriceHintsUpdated(modelId, pricePerCall, pricePerJob);
    }

    /// @inheritdoc IModelRegistry
    function split(uint256 modelId, uint256 amount, address payee)
        external
        view
        returns (address[] memory recipients, uint256[] memory amounts)
    {
        if (modelId == 0) {
            recipients = new address[](1);
            amounts = new uint256[](1);
            recipients[0] = payee;
            amounts[0] = amount;
            return (recipients, amounts);
        }
        _requireKnown(modelId);
        uint256 bound = _models[modelId].splitBounds & 0xff;
        recipients = new address[](bound);
        amounts = new uint256[](bound);
        uint256 n = _splitInto(modelId, amount, payee, 0, recipients, amounts, 0);
        // Shrink the arrays to the entries actually written (zero shares are skipped).
        assembly ("memory-safe") {
            mstore(recipients, n)
            mstore(amounts, n)
        }
    }

    /// @inheritdoc IModelRegistry
    function modelOf(uint256 modelId) external view returns (Model memory) {
        _requireKnown(modelId);
        return _models[modelId];
    }

    /// @inheritdoc IModelRegistry
    function lineageOf(uint256 modelId) external view returns (Lineage memory) {
        _requireKnown(modelId);
        return _lineages[modelId];
    }

    /// @inheritdoc IModelRegistry
    function modelByContent(address creator, bytes32 contentHash) external view returns (uint256) {
        return _byContent[creator][contentHash];
    }

    /// @inheritdoc IModelRegistry
    function modelCount() external view returns (uint256) {
        return _count;
    }

    /// @notice The model's metadata URI.
    /// @param tokenId The model id.
    /// @return The URI given at registration.
    function tokenURI(uint256 tokenId) public view override returns (string memory) {
        _requireKnown(tokenId);
        return _uris[tokenId];
    }

    /// @notice ERC-165: ERC-721, ERC-2981 and the metadata extension.
    /// @param interfaceId The interface id.
    /// @return True when supported.
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, ERC2981) returns (bool) {
        return super.supportsInterface(interfaceId);
    }

    function _requireKnown(uint256 modelId) private view {
        if (modelId == 0 || modelId > _count) revert UnknownModel(modelId);
    }

    /// @dev Checks a lineage and returns its packed split bounds: byte d bounds the entries a
    ///      split produces when this model sits d generations above the served one.
    function _validateLineage(Lineage calldata lineage) private view returns (uint32 bounds) {
        uint256 parentCount = lineage.parents.length;
        if (parentCount != lineage.parentBps.length || lineage.contributors.length != lineage.contributorBps.length) {
            revert LineageLengthMismatch();
        }
        if (parentCount > MAX_PARENTS) revert TooManyParents(parentCount);
        RoyaltyMath.requireWithinTotal(lineage.parentBps, lineage.contributorBps);
        for (uint256 i = 0; i < parentCount; ++i) {
            _requireKnown(lineage.parents[i]);
            if (lineage.parentBps[i] == 0) revert ZeroShare();
        }
        for (uint256 i = 0; i < lineage.contributors.length; ++i) {
            if (lineage.contributors[i] == address(0)) revert ZeroContributor();
            if (lineage.contributorBps[i] == 0) revert ZeroShare();
        }
        for (uint256 depth = 0; depth <= MAX_LINEAGE_DEPTH; ++depth) {
            uint256 bound = 1;
            if (depth < MAX_LINEAGE_DEPTH) {
                bound += lineage.contributors.length;
                for (uint256 i = 0; i < parentCount; ++i) {
                    bound += (_models[lineage.parents[i]].splitBounds >> (8 * (depth + 1))) & 0xff;
                }
            }
            if (bound > MAX_SPLIT_RECIPIENTS) revert LineageTooLarge(bound);
            bounds |= uint32(bound << (8 * depth));
        }
    }

    function _splitInto(
        uint256 modelId,
        uint256 amount,
        address payee,
        uint256 depth,
        address[] memory recipients,
        uint256[] memory amounts,
        uint256 n
    ) private view returns (uint256) {
        uint256 rest = amount;
        if (depth < MAX_LINEAGE_DEPTH) {
            Lineage storage lineage = _lineages[modelId];
            uint256 parentCount = lineage.parents.length;
            for (uint256 i = 0; i < parentCount; ++i) {
                uint256 share = RoyaltyMath.portion(amount, lineage.parentBps[i]);
                if (share == 0) continue;
                rest -= share;
                uint256 parent = lineage.parents[i];
                n = _splitInto(parent, share, _ownerOf(parent), depth + 1, recipients, amounts, n);
            }
            uint256 contributorCount = lineage.contributors.length;
            for (uint256 i = 0; i < contributorCount; ++i) {
                uint256 share = RoyaltyMath.portion(amount, lineage.contributorBps[i]);
                if (share == 0) continue;
                rest -= share;
                recipients[n] = lineage.contributors[i];
                amounts[n] = share;
                ++n;
            }
        }
        if (rest > 0) {
            recipients[n] = payee;
            amounts[n] = rest;
            ++n;
        }
        return n;
    }
}
