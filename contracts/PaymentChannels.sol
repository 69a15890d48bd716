// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAgentRegistry} from "./interfaces/IAgentRegistry.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IPaymentChannels} from "./interfaces/IPaymentChannels.sol";

/// @title PaymentChannels
/// @notice Unidirectional micropayment channels settled with cumulative EIP-712 vouchers.
/// @dev Vouchers carry the cumulative amount, so only the latest matters and a replayed or older
///      one can never pay twice. The sender cannot cancel delivered calls: the recipient may claim
///      until the channel is refunded, and refunds wait for expiry, which is at least
///      minChannelDuration after opening so a recipient always has time to claim. Claims first
///      update every channel, then transfer (checks-effects-interactions), under nonReentrant.
///      claimMany skips (ClaimSkipped) vouchers that can no longer pay: a channel refunded since,
///      or a voucher already claimed; any other fault is the caller's and reverts the batch.
///      Tokens held always equal the sum of deposit - claimed over channels not closed.
contract PaymentChannels is IPaymentChannels, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 type hash of Voucher.
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(uint256 channelId,uint256 nonce,uint256 amount)");
    /// @notice Score written to the recipient's receipt: a claim is paid, accepted service (the
    ///         sender kept signing vouchers), and channels carry no separate quality judgement.
    uint8 public constant CLAIM_SCORE = 100;

    /// @notice The settlement token (AGT).
    IERC20 public immutable token;
    /// @notice Lineage and royalty splits.
    IModelRegistry public immutable models;
    /// @notice Receipt-backed reputation.
    IAgentRegistry public immutable agents;
    /// @notice Shortest time between opening a channel and its expiry.
    uint64 public immutable minChannelDuration;

    uint256 private _count;
    mapping(uint256 channelId => Channel) private _channels;
    mapping(address sender => uint32) private _senderNonces;

    /// @param token_ The settlement token (AGT).
    /// @param models_ Lineage and royalty splits.
    /// @param agents_ Receipt-backed reputation (this contract must be a recorder there).
    /// @param minChannelDuration_ Shortest time between opening a channel and its expiry.
    constructor(IERC20 token_, IModelRegistry models_, IAgentRegistry agents_, uint64 minChannelDuration_)
        EIP712("Agora PaymentChannels", "1")
    {
        token = token_;
        models = models_;
        agents = agents_;
        minChannelDuration = minChannelDuration_;
    }

    /// @inheritdoc IPaymentChannels
    function openChannel(address recipient, uint256 deposit, uint64 expiry, uint256 modelId)
        external
        nonReentrant
        returns (uint256 channelId)
    {
        if (recipient == address(0) || recipient == msg.sender) revert InvalidRecipient();
        if (deposit == 0) revert ZeroDeposit();
        uint256 earliest = block.timestamp + minChannelDuration;
        if (expiry < earliest || expiry <= block.timestamp) revert ExpiryTooSoon(expiry, earliest);
        if (modelId != 0 && modelId > models.modelCount()) revert UnknownModelId(modelId);
        channelId = ++_count;
        uint32 nonce = _senderNonces[msg.sender]++;
        _channels[channelId] = Channel({
            sender: msg.sender,
            deposit: SafeCast.toUint96(deposit),
            recipient: recipient,
            modelId: SafeCast.toUint96(modelId),
            claimed: 0,
            expiry: expiry,
            nonce: nonce,
            closed: false
        });
        emit ChannelOpened(channelId, msg.sender, recipient, deposit, expiry, modelId);
        token.safeTransferFrom(msg.sender, address(this), deposit);
    }

    /// @inheritdoc IPaymentChannels
    function topUp(uint256 channelId, uint256 amount) external nonReentrant {
        Channel storage ch = _senderChannel(channelId);
        if (amount == 0) revert ZeroDeposit();
        uint96 deposit = SafeCast.toUint96(ch.deposit + amount);
        ch.deposit = deposit;
        emit ChannelToppedUp(channelId, amount, deposit);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IPaymentChannels
    function extend(uint256 channelId, uint64 expiry) external {
        Channel storage ch = _senderChannel(channelId);
        if (expiry <= ch.expiry) revert InvalidExpiry(expiry);
        ch.expiry = expiry;
        emit ChannelExtended(channelId, expiry);
    }

    /// @inheritdoc IPaymentChannels
    function claim(Voucher calldata voucher, bytes calldata signature) external nonReentrant {
        uint256 paid = _settle(voucher, signature, false);
        uint256 own = _payLineage(_channels[voucher.channelId].modelId, paid);
        agents.recordReceipt(msg.sender, CLAIM_SCORE, paid, bytes32(voucher.channelId));
        if (own > 0) token.safeTransfer(msg.sender, own);
    }

    /// @inheritdoc IPaymentChannels
    function claimMany(Voucher[] calldata vouchers, bytes[] calldata signatures) external nonReentrant {
        uint256 count = vouchers.length;
        if (count == 0 || count != signatures.length) revert BadBatch();
        uint256[] memory paid = new uint256[](count);
        uint256 total = 0;
        for (uint256 i = 0; i < count; ++i) {
            paid[i] = _settle(vouchers[i], signatures[i], true);
            total += paid[i];
        }
        if (total == 0) return; // every voucher was skipped: nothing paid, nothing to record
        uint256 own = 0;
        for (uint256 i = 0; i < count; ++i) {
            if (paid[i] > 0) own += _payLineage(_channels[vouchers[i].channelId].modelId, paid[i]);
        }
        agents.recordReceipt(msg.sender, CLAIM_SCORE, total, keccak256(abi.encode(vouchers)));
        if (own > 0) token.safeTransfer(msg.sender, own);
    }

    /// @inheritdoc IPaymentChannels
    function refund(uint256 channelId) external nonReentrant {
        Channel storage ch = _requireChannel(channelId);
        if (ch.closed) revert ChannelIsClosed(channelId);
        if (block.timestamp < ch.expiry) revert ChannelNotExpired(ch.expiry);
        uint256 rest = uint256(ch.deposit) - ch.claimed;
        address sender = ch.sender;
        ch.closed = true;
        emit ChannelRefunded(channelId, sender, rest);
        if (rest > 0) token.safeTransfer(sender, rest);
    }

    /// @inheritdoc IPaymentChannels
    function getChannel(uint256 channelId) external view returns (Channel memory) {
        return _requireChannel(channelId);
    }

    /// @inheritdoc IPaymentChannels
    function channelCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IPaymentChannels
    function voucherDigest(Voucher calldata voucher) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, voucher.channelId, voucher.nonce, voucher.amount)));
    }

    /// @inheritdoc IPaymentChannels
    function recoverVoucherSigner(Voucher calldata voucher, bytes calldata signature) public view returns (address) {
        (address signer, ECDSA.RecoverError err, bytes32 errArg) = ECDSA.tryRecover(voucherDigest(voucher), signature);
        return err == ECDSA.RecoverError.NoError && errArg == bytes32(0) ? signer : address(0);
    }

    /// @notice The EIP-712 domain separator (name "Agora PaymentChannels", version "1").
    /// @return The separator for this chain and contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev Checks a voucher against its channel and books it; returns the newly owed amount.
    ///      With `skipSpent`, a closed channel or a voucher that adds nothing is skipped (0 paid,
    ///      ClaimSkipped) instead of reverting: both can happen after the recipient got the voucher.
    function _settle(Voucher calldata voucher, bytes calldata signature, bool skipSpent)
        private
        returns (uint256 paid)
    {
        Channel storage ch = _requireChannel(voucher.channelId);
        if (ch.recipient != msg.sender) revert NotChannelRecipient(msg.sender);
        if (ch.closed) {
            if (!skipSpent) revert ChannelIsClosed(voucher.channelId);
            emit ClaimSkipped(voucher.channelId, SkipReason.Closed);
            return 0;
        }
        if (voucher.nonce != ch.nonce) revert VoucherNonceMismatch(ch.nonce, voucher.nonce);
        uint256 claimed = ch.claimed;
        if (voucher.amount <= claimed) {
            if (!skipSpent) revert VoucherNotIncreasing(claimed, voucher.amount);
            emit ClaimSkipped(voucher.channelId, SkipReason.AlreadyClaimed);
            return 0;
        }
        if (voucher.amount > ch.deposit) revert VoucherExceedsDeposit(ch.deposit, voucher.amount);
        if (recoverVoucherSigner(voucher, signature) != ch.sender) revert InvalidVoucherSignature(voucher.channelId);
        paid = voucher.amount - claimed;
        ch.claimed = uint96(voucher.amount); // fits: amount <= deposit, a uint96
        emit ChannelClaimed(voucher.channelId, msg.sender, paid, voucher.amount);
    }

    /// @dev Pays the lineage shares of `amount` and returns the caller's own (root) share,
    ///      which callers transfer once for the whole claim.
    function _payLineage(uint256 modelId, uint256 amount) private returns (uint256 own) {
        if (modelId == 0) return amount;
        (address[] memory recipients, uint256[] memory amounts) = models.split(modelId, amount, msg.sender);
        for (uint256 i = 0; i < recipients.length; ++i) {
            if (recipients[i] == msg.sender) own += amounts[i];
            else token.safeTransfer(recipients[i], amounts[i]);
        }
    }

    function _requireChannel(uint256 channelId) private view returns (Channel storage ch) {
        if (channelId == 0 || channelId > _count) revert UnknownChannel(channelId);
        ch = _channels[channelId];
    }

    function _senderChannel(uint256 channelId) private view returns (Channel storage ch) {
        ch = _requireChannel(channelId);
        if (ch.sender != msg.sender) revert NotChannelSender(msg.sender);
        if (ch.closed) revert ChannelIsClosed(channelId);
    }
}
