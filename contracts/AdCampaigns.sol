// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAdCampaigns, IGroth16Verifier} from "./interfaces/IAdCampaigns.sol";
import {ConversionBatchVerifier} from "./libraries/ConversionBatchVerifier.sol";

/// @title AdCampaigns
/// @notice Escrowed ad budgets paid per conversion proven in zero knowledge (Groth16, BN254) against
///         Merkle roots of conversion commitments published by each campaign's merchant.
/// @dev Per campaign, spent + refunded <= budget and spent only grows by whole payouts, so a campaign
///      never pays out more than it escrowed, and tokens held always equal the sum over campaigns of
///      budget - spent - refunded. A nullifier pays once per campaign; the payee is a public input of
///      the proof, so nobody can redirect a claim. Campaign ids are sequential (assigned here). Every
///      token-moving path books first and transfers last (checks-effects-interactions) under
///      nonReentrant. There is no owner: only the advertiser gets refunds, only proven payees and the
///      named publisher get payouts. A batch's proofs are checked together (ConversionBatchVerifier: n + 3
///      pairings instead of 4n), generated from the same verifying key as `verifier`; when the batch fails,
///      each proof is checked alone to name the invalid one.
contract AdCampaigns is IAdCampaigns, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Order of the BN254 scalar field: roots, nullifiers and ids are elements of it.
    uint256 public constant SNARK_SCALAR_FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice Basis points in a whole.
    uint16 public constant BPS = 10_000;

    /// @notice The payment token (AGT).
    IERC20 public immutable token;
    /// @notice The conversion circuit's Groth16 verifier.
    IGroth16Verifier public immutable verifier;

    uint256 private _count;
    mapping(uint256 campaignId => Campaign) private _campaigns;
    mapping(uint256 campaignId => mapping(uint256 root => bool)) private _roots;
    mapping(uint256 campaignId => mapping(uint256 nullifier => bool)) private _nullifiers;

    /// @param token_ The payment token (AGT).
    /// @param verifier_ The conversion circuit's verifier.
    constructor(IERC20 token_, IGroth16Verifier verifier_) {
        if (address(token_) == address(0) || address(verifier_) == address(0)) revert ZeroAddress();
        token = token_;
        verifier = verifier_;
    }

    /// @inheritdoc IAdCampaigns
    function createCampaign(CampaignTerms calldata terms) external nonReentrant returns (uint256 campaignId) {
        if (terms.merchant == address(0)) revert ZeroAddress();
        if (terms.publisherBps > 0 && terms.publisher == address(0)) revert ZeroAddress();
        if (terms.budget == 0) revert ZeroBudget();
        if (terms.payout == 0 || terms.payout > terms.budget) revert InvalidPayout(terms.payout);
        if (terms.publisherBps > BPS) revert InvalidPublisherShare(terms.publisherBps);
        if (terms.end <= block.timestamp) revert InvalidEnd(terms.end);
        campaignId = ++_count;
        _campaigns[campaignId] = Campaign({
            advertiser: msg.sender,
            end: terms.end,
            publisherBps: terms.publisherBps,
            merchant: terms.merchant,
            payout: uint96(terms.payout), // fits: payout <= budget, checked next
            publisher: terms.publisher,
            budget: SafeCast.toUint96(terms.budget),
            spent: 0,
            refunded: 0,
            creativeHash: terms.creativeHash
        });
        emit CampaignCreated(
            campaignId,
            msg.sender,
            terms.merchant,
            terms.publisher,
            terms.budget,
            terms.payout,
            terms.publisherBps,
            terms.end,
            terms.creativeHash
        );
        token.safeTransferFrom(msg.sender, address(this), terms.budget);
    }

    /// @inheritdoc IAdCampaigns
    function publishRoot(uint256 campaignId, uint256 root) external {
        Campaign storage c = _requireCampaign(campaignId);
        if (msg.sender != c.merchant) revert NotMerchant(msg.sender);
        if (block.timestamp >= c.end) revert CampaignEnded(c.end);
        if (root == 0 || root >= SNARK_SCALAR_FIELD) revert InvalidRoot(root);
        if (_roots[campaignId][root]) revert RootAlreadyPublished(campaignId, root);
        _roots[campaignId][root] = true;
        emit RootPublished(campaignId, root);
    }

    /// @inheritdoc IAdCampaigns
    function claim(uint256 campaignId, uint256 root, uint256 nullifier, address payee, uint256[8] calldata proof)
        external
        nonReentrant
    {
        if (_nullifiers[campaignId][nullifier]) revert NullifierUsed(campaignId, nullifier);
        (uint256 userAmount, uint256 publisherAmount, address publisher) =
            _book(campaignId, root, nullifier, payee, proof);
        token.safeTransfer(payee, userAmount);
        if (publisherAmount > 0) token.safeTransfer(publisher, publisherAmount);
    }

    /// @inheritdoc IAdCampaigns
    function claimMany(ConversionClaim[] calldata claims) external nonReentrant {
        uint256 count = claims.length;
        if (count == 0) revert EmptyBatch();
        uint256[] memory userAmounts = new uint256[](count);
        address[] memory publishers = new address[](count);
        uint256[] memory publisherAmounts = new uint256[](count);
        uint256[8][] memory proofs = new uint256[8][](count);
        uint256[4][] memory signals = new uint256[4][](count);
        uint256 booked = 0;
        for (uint256 i = 0; i < count; ++i) {
            ConversionClaim calldata c = claims[i];
            // Skipped, not reverted: a user may claim alone, so a relayer's batch must survive that.
            if (_nullifiers[c.campaignId][c.nullifier]) {
                emit ClaimSkipped(c.campaignId, c.nullifier);
                continue;
            }
            (userAmounts[i], publisherAmounts[i], publishers[i]) = _bookUnverified(c.campaignId, c.root, c.nullifier, c.payee);
            proofs[booked] = c.proof;
            signals[booked] = [c.root, c.nullifier, c.campaignId, uint256(uint160(c.payee))];
            ++booked;
        }
        if (booked > 0) _verifyBatch(proofs, signals, booked);
        // Consecutive claims to one publisher are paid in one transfer.
        uint256 pending = 0;
        for (uint256 i = 0; i < count; ++i) {
            if (userAmounts[i] > 0) token.safeTransfer(claims[i].payee, userAmounts[i]);
            pending += publisherAmounts[i];
            if (pending > 0 && (i + 1 == count || publishers[i + 1] != publishers[i])) {
                token.safeTransfer(publishers[i], pending);
                pending = 0;
            }
        }
    }

    /// @inheritdoc IAdCampaigns
    function refund(uint256 campaignId) external nonReentrant {
        Campaign storage c = _requireCampaign(campaignId);
        address advertiser = c.advertiser;
        if (msg.sender != advertiser) revert NotAdvertiser(msg.sender);
        if (block.timestamp < c.end) revert CampaignNotEnded(c.end);
        uint256 amount = uint256(c.budget) - c.spent - c.refunded;
        if (amount == 0) revert NothingToRefund(campaignId);
        c.refunded += uint96(amount); // fits: refunded + amount <= budget, a uint96
        emit CampaignRefunded(campaignId, advertiser, amount);
        token.safeTransfer(advertiser, amount);
    }

    /// @inheritdoc IAdCampaigns
    function getCampaign(uint256 campaignId) external view returns (Campaign memory) {
        return _requireCampaign(campaignId);
    }

    /// @inheritdoc IAdCampaigns
    function campaignCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IAdCampaigns
    function isRootPublished(uint256 campaignId, uint256 root) external view returns (bool) {
        return _roots[campaignId][root];
    }

    /// @inheritdoc IAdCampaigns
    function isNullifierUsed(uint256 campaignId, uint256 nullifier) external view returns (bool) {
        return _nullifiers[campaignId][nullifier];
    }

    /// @inheritdoc IAdCampaigns
    function remainingBudget(uint256 campaignId) external view returns (uint256) {
        Campaign storage c = _requireCampaign(campaignId);
        return uint256(c.budget) - c.spent - c.refunded;
    }

    /// @dev Checks one conversion whose nullifier is unused (the caller checked), proof included, and books it.
    function _book(uint256 campaignId, uint256 root, uint256 nullifier, address payee, uint256[8] calldata proof)
        private
        returns (uint256 userAmount, uint256 publisherAmount, address publisher)
    {
        (userAmount, publisherAmount, publisher) = _bookUnverified(campaignId, root, nullifier, payee);
        if (!_verify(campaignId, root, nullifier, payee, proof)) revert InvalidProof(campaignId, nullifier);
    }

    /// @dev Checks everything but the proof and books the conversion: nullifier burned, spent increased. Returns
    ///      what to pay; the caller transfers, after the proof is verified (or the whole call reverts).
    function _bookUnverified(uint256 campaignId, uint256 root, uint256 nullifier, address payee)
        private
        returns (uint256 userAmount, uint256 publisherAmount, address publisher)
    {
        Campaign storage c = _requireCampaign(campaignId);
        if (block.timestamp >= c.end) revert CampaignEnded(c.end);
        if (payee == address(0)) revert ZeroAddress();
        if (!_roots[campaignId][root]) revert UnknownRoot(campaignId, root);
        uint256 payout = c.payout;
        uint256 remaining = uint256(c.budget) - c.spent; // refunded is zero before the end
        if (payout > remaining) revert BudgetExhausted(remaining);
        _nullifiers[campaignId][nullifier] = true;
        c.spent += uint96(payout); // fits: payout <= remaining <= budget
        publisherAmount = payout * c.publisherBps / BPS;
        userAmount = payout - publisherAmount;
        publisher = c.publisher;
        emit ConversionClaimed(campaignId, nullifier, payee, userAmount, publisherAmount);
    }

    /// @dev Verifies the first `booked` proofs of a batch together; if they fail, reverts naming the first one
    ///      that fails alone (skipped claims are not in the batch: their nullifiers were burned before).
    function _verifyBatch(uint256[8][] memory proofs, uint256[4][] memory signals, uint256 booked) private view {
        assembly ("memory-safe") {
            mstore(proofs, booked)
            mstore(signals, booked)
        }
        if (ConversionBatchVerifier.verify(proofs, signals)) return;
        for (uint256 i = 0; i < booked; ++i) {
            uint256[8] memory p = proofs[i];
            uint256[4] memory s = signals[i];
            if (!verifier.verifyProof([p[0], p[1]], [[p[2], p[3]], [p[4], p[5]]], [p[6], p[7]], s)) {
                revert InvalidProof(s[2], s[1]);
            }
        }
        revert InvalidProof(0, 0); // unreachable while both verifiers share the key
    }

    /// @dev The proof against the circuit's public signals, in its order: root, nullifier, campaignId, payee.
    function _verify(uint256 campaignId, uint256 root, uint256 nullifier, address payee, uint256[8] calldata proof)
        private
        view
        returns (bool)
    {
        uint256[4] memory signals = [root, nullifier, campaignId, uint256(uint160(payee))];
        return verifier.verifyProof(
            [proof[0], proof[1]], [[proof[2], proof[3]], [proof[4], proof[5]]], [proof[6], proof[7]], signals
        );
    }

    function _requireCampaign(uint256 campaignId) private view returns (Campaign storage c) {
        if (campaignId == 0 || campaignId > _count) revert UnknownCampaign(campaignId);
        c = _campaigns[campaignId];
    }
}
