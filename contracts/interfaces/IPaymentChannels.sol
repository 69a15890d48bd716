// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IPaymentChannels
/// @notice Unidirectional payment channels for per-call micropayments: the sender signs EIP-712
///         vouchers for the cumulative amount owed; the recipient claims the latest one whenever
///         it likes (one transaction for many calls, several channels in one claimMany); the
///         sender takes back the unclaimed rest after expiry.
interface IPaymentChannels {
    /// @notice One channel, in three storage slots.
    /// @dev The third slot (claimed, expiry, nonce, closed) is never zero after opening, so the
    ///      first claim rewrites a live slot instead of paying for a fresh one.
    /// @param sender Who deposits and signs vouchers.
    /// @param deposit Total deposited, token base units.
    /// @param recipient Who claims.
    /// @param modelId The model whose lineage earns royalties on claims (0 for none).
    /// @param claimed Cumulative amount claimed so far.
    /// @param expiry After this time the sender may refund the unclaimed rest.
    /// @param nonce The sender's channel counter at opening; vouchers must carry it.
    /// @param closed Set once refunded; nothing moves afterwards.
    struct Channel {
        address sender;
        uint96 deposit;
        address recipient;
        uint96 modelId;
        uint96 claimed;
        uint64 expiry;
        uint32 nonce;
        bool closed;
    }

    /// @notice Why claimMany passed over a voucher.
    enum SkipReason {
        Closed,
        AlreadyClaimed
    }

    /// @notice A signed promise: "channel `channelId` owes its recipient `amount` in total".
    /// @param channelId The channel.
    /// @param nonce The channel's nonce.
    /// @param amount Cumulative amount owed, token base units.
    struct Voucher {
        uint256 channelId;
        uint256 nonce;
        uint256 amount;
    }

    /// @notice A channel was opened.
    /// @param channelId The channel.
    /// @param sender The sender.
    /// @param recipient The recipient.
    /// @param deposit Amount deposited.
    /// @param expiry Expiry time.
    /// @param modelId The model served over it.
    event ChannelOpened(
        uint256 indexed channelId,
        address indexed sender,
        address indexed recipient,
        uint256 deposit,
        uint64 expiry,
        uint256 modelId
    );

    /// @notice The sender added to the deposit.
    /// @param channelId The channel.
    /// @param amount Amount added.
    /// @param deposit New total deposit.
    event ChannelToppedUp(uint256 indexed channelId, uint256 amount, uint256 deposit);

    /// @notice The sender moved the expiry later.
    /// @param channelId The channel.
    /// @param expiry New expiry.
    event ChannelExtended(uint256 indexed channelId, uint64 expiry);

    /// @notice The recipient claimed a voucher.
    /// @param channelId The channel.
    /// @param recipient The recipient.
    /// @param amount Newly paid by this claim (voucher amount minus what was claimed before).
    /// @param cumulative The voucher's cumulative amount.
    event ChannelClaimed(uint256 indexed channelId, address indexed recipient, uint256 amount, uint256 cumulative);

    /// @notice claimMany passed over a voucher that can no longer pay (the rest of the batch settled).
    /// @param channelId The channel.
    /// @param reason Closed: refunded since; AlreadyClaimed: its amount is not above what was claimed.
    event ClaimSkipped(uint256 indexed channelId, SkipReason reason);

    /// @notice The sender got the unclaimed rest back; the channel is closed.
    /// @param channelId The channel.
    /// @param sender The sender.
    /// @param amount Amount refunded.
    event ChannelRefunded(uint256 indexed channelId, address indexed sender, uint256 amount);

    /// @notice The channel id does not exist.
    /// @param channelId The id.
    error UnknownChannel(uint256 channelId);

    /// @notice Only the channel's sender may do this.
    /// @param caller The caller.
    error NotChannelSender(address caller);

    /// @notice Only the channel's recipient may do this.
    /// @param caller The caller.
    error NotChannelRecipient(address caller);

    /// @notice The channel was refunded and is closed.
    /// @param channelId The channel.
    error ChannelIsClosed(uint256 channelId);

    /// @notice The channel has not expired yet.
    /// @param expiry Its expiry.
    error ChannelNotExpired(uint64 expiry);

    /// @notice The new expiry is not later than the current one (extend).
    /// @param expiry The expiry given.
    error InvalidExpiry(uint64 expiry);

    /// @notice A channel must stay open at least minChannelDuration (open).
    /// @param expiry The expiry given.
    /// @param earliest The earliest expiry accepted now.
    error ExpiryTooSoon(uint64 expiry, uint256 earliest);

    /// @notice A deposit or top-up of zero.
    error ZeroDeposit();

    /// @notice The recipient was the zero address or the sender itself.
    error InvalidRecipient();

    /// @notice The model id does not exist in the ModelRegistry.
    /// @param modelId The id.
    error UnknownModelId(uint256 modelId);

    /// @notice The voucher was not signed by the channel's sender.
    /// @param channelId The channel.
    error InvalidVoucherSignature(uint256 channelId);

    /// @notice The voucher's nonce is not the channel's.
    /// @param expected The channel's nonce.
    /// @param given The voucher's nonce.
    error VoucherNonceMismatch(uint256 expected, uint256 given);

    /// @notice The voucher does not raise the claimed total (a replay or an older voucher).
    /// @param claimed Already claimed.
    /// @param amount The voucher's cumulative amount.
    error VoucherNotIncreasing(uint256 claimed, uint256 amount);

    /// @notice The voucher promises more than the deposit.
    /// @param deposit The deposit.
    /// @param amount The voucher's cumulative amount.
    error VoucherExceedsDeposit(uint256 deposit, uint256 amount);

    /// @notice The vouchers and signatures arrays have different lengths, or are empty.
    error BadBatch();

    /// @notice Open a channel to `recipient`, depositing `deposit` from the caller.
    /// @param recipient Who may claim.
    /// @param deposit Amount in token base units.
    /// @param expiry When the sender may start refunding (at least minChannelDuration from now).
    /// @param modelId The model served over the channel (0 for none).
    /// @return channelId The new channel id (ids start at 1).
    function openChannel(address recipient, uint256 deposit, uint64 expiry, uint256 modelId)
        external
        returns (uint256 channelId);

    /// @notice Add to the deposit of an open channel (sender only).
    /// @param channelId The channel.
    /// @param amount Amount added.
    function topUp(uint256 channelId, uint256 amount) external;

    /// @notice Move the expiry later (sender only).
    /// @param channelId The channel.
    /// @param expiry New expiry, later than the current one.
    function extend(uint256 channelId, uint64 expiry) external;

    /// @notice Claim the latest voucher of one channel (recipient only); routes royalties along
    ///         the model's lineage and records the recipient's paid receipt.
    /// @param voucher The voucher.
    /// @param signature The sender's EIP-712 signature over it (65 bytes).
    function claim(Voucher calldata voucher, bytes calldata signature) external;

    /// @notice Claim vouchers of several channels, all with the caller as recipient, in one
    ///         transaction (one transfer for the recipient's total, one receipt). A voucher of a
    ///         channel refunded since, or one not above what was claimed, is skipped (ClaimSkipped);
    ///         any other invalid voucher (signature, nonce, deposit, recipient) reverts the batch.
    /// @param vouchers The vouchers.
    /// @param signatures The sender signatures, index by index.
    function claimMany(Voucher[] calldata vouchers, bytes[] calldata signatures) external;

    /// @notice After expiry, return the unclaimed rest to the sender and close the channel.
    ///         Anyone may call; the tokens always go to the sender.
    /// @param channelId The channel.
    function refund(uint256 channelId) external;

    /// @notice A channel by id.
    /// @param channelId The channel.
    /// @return The channel record.
    function getChannel(uint256 channelId) external view returns (Channel memory);

    /// @notice Number of channels opened so far (also the highest id).
    /// @return The count.
    function channelCount() external view returns (uint256);

    /// @notice The EIP-712 digest a sender signs for a voucher.
    /// @param voucher The voucher.
    /// @return The digest.
    function voucherDigest(Voucher calldata voucher) external view returns (bytes32);

    /// @notice The signer a signature over a voucher recovers to (zero if malformed).
    /// @param voucher The voucher.
    /// @param signature The signature.
    /// @return The recovered address.
    function recoverVoucherSigner(Voucher calldata voucher, bytes calldata signature) external view returns (address);
}
