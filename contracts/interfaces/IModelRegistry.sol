// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice ERC-721 registry of ML models with lineage (parent models + contributor pool) and a
///         conserving royalty split that pays the whole upstream chain.
interface IModelRegistry {
    /// @notice What a creator declares when registering a model.
    /// @param contentHash Hash of the model weights/artifact (unique per creator).
    /// @param uri Metadata URI (model card).
    /// @param pricePerCall Price hint per inference call, token base units.
    /// @param pricePerJob Price hint per training job, token base units.
    /// @param royaltyBps EIP-2981 royalty on secondary sales of the model token, paid to the creator.
    struct ModelSpec {
        bytes32 contentHash;
        string uri;
        uint128 pricePerCall;
        uint128 pricePerJob;
        uint96 royaltyBps;
    }

    /// @notice Upstream shares of a model's revenue, in basis points of each payment.
    /// @param parents Parent model ids (must already exist).
    /// @param parentBps Share of each parent (recursively split along its own lineage).
    /// @param contributors Contributor accounts (e.g. federated-learning participants).
    /// @param contributorBps Share of each contributor.
    struct Lineage {
        uint256[] parents;
        uint16[] parentBps;
        address[] contributors;
        uint16[] contributorBps;
    }

    /// @notice Stored facts of a model.
    /// @param contentHash Hash of the artifact.
    /// @param pricePerCall Price hint per call.
    /// @param pricePerJob Price hint per training job.
    /// @param creator The registering account.
    /// @param registeredAt Block timestamp of registration.
    /// @param splitBounds Packed upper bounds (one byte per depth) on the number of split entries.
    struct Model {
        bytes32 contentHash;
        uint128 pricePerCall;
        uint128 pricePerJob;
        address creator;
        uint64 registeredAt;
        uint32 splitBounds;
    }

    /// @notice A model was registered and its token minted to `creator`.
    /// @param modelId The new token id.
    /// @param creator The registering account.
    /// @param contentHash Hash of the artifact.
    /// @param parents Parent model ids.
    event ModelRegistered(uint256 indexed modelId, address indexed creator, bytes32 contentHash, uint256[] parents);

    /// @notice The owner changed a model's price hints.
    /// @param modelId The model.
    /// @param pricePerCall New per-call hint.
    /// @param pricePerJob New per-job hint.
    event PriceHintsUpdated(uint256 indexed modelId, uint128 pricePerCall, uint128 pricePerJob);

    /// @notice The model id does not exist.
    /// @param modelId The id.
    error UnknownModel(uint256 modelId);

    /// @notice The caller already registered a model with this content hash.
    /// @param contentHash The hash.
    /// @param existingId The model registered with it.
    error DuplicateContent(bytes32 contentHash, uint256 existingId);

    /// @notice The content hash was zero.
    error ZeroContentHash();

    /// @notice Parallel arrays of a lineage have different lengths.
    error LineageLengthMismatch();

    /// @notice More parents than MAX_PARENTS were given.
    /// @param count The number given.
    error TooManyParents(uint256 count);

    /// @notice A share of zero basis points was given (omit the entry instead).
    error ZeroShare();

    /// @notice A contributor was the zero address.
    error ZeroContributor();

    /// @notice The split of this model would exceed MAX_SPLIT_RECIPIENTS entries.
    /// @param bound The computed upper bound.
    error LineageTooLarge(uint256 bound);

    /// @notice The EIP-2981 royalty exceeds MAX_ROYALTY_BPS.
    /// @param royaltyBps The royalty given.
    error RoyaltyTooHigh(uint256 royaltyBps);

    /// @notice The caller does not own the model token.
    /// @param caller The caller.
    /// @param modelId The model.
    error NotModelOwner(address caller, uint256 modelId);

    /// @notice Register a model and mint its token to the caller.
    /// @param spec The model's facts and price hints.
    /// @param lineage Its parents and contributors with basis-point shares (sum at most 10_000).
    /// @return modelId The new token id (ids start at 1; 0 means "no model").
    function registerModel(ModelSpec calldata spec, Lineage calldata lineage) external returns (uint256 modelId);

    /// @notice Update a model's price hints (token owner only).
    /// @param modelId The model.
    /// @param pricePerCall New per-call hint.
    /// @param pricePerJob New per-job hint.
    function setPriceHints(uint256 modelId, uint128 pricePerCall, uint128 pricePerJob) external;

    /// @notice Split a payment for using `modelId` along its lineage.
    /// @dev Each parent receives floor(amount * bps / 10_000), split again along its own lineage
    ///      (down to MAX_LINEAGE_DEPTH generations; deeper, the share goes to that ancestor's
    ///      owner whole); each contributor floor(amount * bps / 10_000); `payee` receives the rest,
    ///      including every rounding remainder, so the amounts always sum to `amount`. Zero
    ///      entries are omitted; an account may appear more than once. modelId 0 pays `payee` all.
    /// @param modelId The model used (0 for none).
    /// @param amount The payment in token base units.
    /// @param payee Who receives the root share (the seller who served the model).
    /// @return recipients The accounts to pay.
    /// @return amounts What each receives, summing to `amount`.
    function split(uint256 modelId, uint256 amount, address payee)
        external
        view
        returns (address[] memory recipients, uint256[] memory amounts);

    /// @notice The stored facts of a model.
    /// @param modelId The model.
    /// @return The model record.
    function modelOf(uint256 modelId) external view returns (Model memory);

    /// @notice The lineage of a model.
    /// @param modelId The model.
    /// @return The parents and contributors with their shares.
    function lineageOf(uint256 modelId) external view returns (Lineage memory);

    /// @notice The model `creator` registered with a content hash (0 if none).
    /// @param creator The registering account.
    /// @param contentHash The hash.
    /// @return The model id.
    function modelByContent(address creator, bytes32 contentHash) external view returns (uint256);

    /// @notice Number of models registered so far (also the highest id).
    /// @return The count.
    function modelCount() external view returns (uint256);
}
