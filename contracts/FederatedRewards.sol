// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IFederatedRewards} from "./interfaces/IFederatedRewards.sol";
import {IValidatorStaking} from "./interfaces/IValidatorStaking.sol";

/// @title FederatedRewards
/// @notice Escrowed rewards for federated-learning rounds, paid out by Merkle proofs against one
///         root per round posted by the job's aggregator.
/// @dev Per job, claimed <= posted <= budget and refunded <= budget - claimed, so a job never pays
///      out more than it escrowed and tokens held always equal the sum over jobs of
///      budget - claimed - refunded. A round pays at most the total its root reserved, even when
///      the aggregator's tree sums to more, so a faulty tree can only short its own round, never
///      another round or job. Job ids are sequential (assigned here, never chosen by a caller, so
///      none can be squatted). Every token-moving path books first and transfers last
///      (checks-effects-interactions) under nonReentrant. There is no owner: only the sponsor
///      gets refunds, and only the accounts in the leaves get rewards.
contract FederatedRewards is IFederatedRewards, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Longest claim window a job may set (bounds how long a sponsor can lock its own refund).
    uint64 public constant MAX_CLAIM_WINDOW = 365 days;

    /// @notice The reward token (AGT).
    IERC20 public immutable token;
    /// @notice Decides who may act as aggregator (besides the sponsor itself).
    IValidatorStaking public immutable staking;
    /// @notice Shortest claim window a job may set: contributors always have this long after the
    ///         deadline (the last possible root) to claim.
    uint64 public immutable minClaimWindow;

    uint256 private _count;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => mapping(uint256 round => Round)) private _rounds;
    mapping(uint256 jobId => mapping(uint256 round => mapping(address account => bool))) private _claimed;

    /// @param token_ The reward token (AGT).
    /// @param staking_ Decides who may act as aggregator.
    /// @param minClaimWindow_ Shortest claim window a job may set (1..MAX_CLAIM_WINDOW).
    constructor(IERC20 token_, IValidatorStaking staking_, uint64 minClaimWindow_) {
        if (address(token_) == address(0) || address(staking_) == address(0)) revert ZeroAddress();
        if (minClaimWindow_ == 0 || minClaimWindow_ > MAX_CLAIM_WINDOW) revert InvalidClaimWindow(minClaimWindow_);
        token = token_;
        staking = staking_;
        minClaimWindow = minClaimWindow_;
    }

    /// @inheritdoc IFederatedRewards
    function createJob(address aggregator, uint256 budget, uint64 deadline, uint64 claimWindow, bytes32 specHash)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        if (aggregator == address(0)) revert ZeroAddress();
        if (budget == 0) revert ZeroBudget();
        if (deadline <= block.timestamp) revert InvalidDeadline(deadline);
        if (claimWindow < minClaimWindow || claimWindow > MAX_CLAIM_WINDOW) revert InvalidClaimWindow(claimWindow);
        uint256 claimDeadline = uint256(deadline) + claimWindow;
        if (claimDeadline > type(uint64).max) revert InvalidDeadline(deadline);
        if (aggregator != msg.sender && !staking.isValidator(aggregator)) revert AggregatorNotValidator(aggregator);
        jobId = ++_count;
        _jobs[jobId] = Job({
            sponsor: msg.sender,
            deadline: deadline,
            aggregator: aggregator,
            budget: SafeCast.toUint96(budget),
            posted: 0,
            claimed: 0,
            claimDeadline: uint64(claimDeadline), // fits: checked above
            refunded: 0,
            specHash: specHash
        });
        emit JobCreated(jobId, msg.sender, aggregator, budget, deadline, uint64(claimDeadline), specHash);
        token.safeTransferFrom(msg.sender, address(this), budget);
    }

    /// @inheritdoc IFederatedRewards
    function postRoot(uint256 jobId, uint256 round, bytes32 root, uint256 total) external {
        Job storage job = _requireJob(jobId);
        if (msg.sender != job.aggregator) revert NotAggregator(msg.sender);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(job.deadline);
        if (root == bytes32(0)) revert ZeroRoot();
        if (total == 0) revert ZeroTotal();
        Round storage r = _rounds[jobId][round];
        if (r.root != bytes32(0)) revert RoundAlreadyPosted(jobId, round);
        uint256 remaining = job.budget - job.posted;
        if (total > remaining) revert ExceedsBudget(remaining, total);
        job.posted += uint96(total); // fits: total <= remaining <= budget, a uint96
        r.root = root;
        r.total = uint96(total);
        emit RootPosted(jobId, round, root, total);
    }

    /// @inheritdoc IFederatedRewards
    function claim(uint256 jobId, uint256 round, address account, uint256 amount, bytes32[] calldata proof)
        external
        nonReentrant
    {
        if (_claimed[jobId][round][account]) revert AlreadyClaimed(jobId, round, account);
        _book(jobId, round, account, amount, proof);
        token.safeTransfer(account, amount);
    }

    /// @inheritdoc IFederatedRewards
    function claimMany(Claim[] calldata claims) external nonReentrant {
        uint256 count = claims.length;
        if (count == 0) revert EmptyBatch();
        bool[] memory booked = new bool[](count);
        for (uint256 i = 0; i < count; ++i) {
            Claim calldata c = claims[i];
            // Skipped, not reverted: anyone may claim any leaf, so a batch must survive someone
            // claiming one of its leaves first.
            if (_claimed[c.jobId][c.round][c.account]) {
                emit ClaimSkipped(c.jobId, c.round, c.account);
                continue;
            }
            _book(c.jobId, c.round, c.account, c.amount, c.proof);
            booked[i] = true;
        }
        for (uint256 i = 0; i < count; ++i) {
            if (booked[i]) token.safeTransfer(claims[i].account, claims[i].amount);
        }
    }

    /// @inheritdoc IFederatedRewards
    function refund(uint256 jobId) external nonReentrant {
        Job storage job = _requireJob(jobId);
        address sponsor = job.sponsor;
        if (msg.sender != sponsor) revert NotSponsor(msg.sender);
        if (block.timestamp < job.deadline) revert DeadlineNotPassed(job.deadline);
        (uint256 owed, bool closed) = _owedToSponsor(job);
        uint256 refunded = job.refunded;
        if (owed <= refunded) revert NothingToRefund(jobId);
        uint256 amount = owed - refunded;
        job.refunded = uint96(owed); // fits: owed <= budget, a uint96
        emit JobRefunded(jobId, sponsor, amount, closed);
        token.safeTransfer(sponsor, amount);
    }

    /// @inheritdoc IFederatedRewards
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _requireJob(jobId);
    }

    /// @inheritdoc IFederatedRewards
    function jobCount() external view returns (uint256) {
        return _count;
    }

    /// @inheritdoc IFederatedRewards
    function getRound(uint256 jobId, uint256 round) external view returns (Round memory) {
        _requireJob(jobId);
        return _rounds[jobId][round];
    }

    /// @inheritdoc IFederatedRewards
    function isClaimed(uint256 jobId, uint256 round, address account) external view returns (bool) {
        return _claimed[jobId][round][account];
    }

    /// @inheritdoc IFederatedRewards
    function remainingBudget(uint256 jobId) external view returns (uint256) {
        Job storage job = _requireJob(jobId);
        return job.budget - job.posted;
    }

    /// @inheritdoc IFederatedRewards
    function refundable(uint256 jobId) external view returns (uint256) {
        Job storage job = _requireJob(jobId);
        if (block.timestamp < job.deadline) return 0;
        (uint256 owed,) = _owedToSponsor(job);
        return owed - job.refunded;
    }

    /// @inheritdoc IFederatedRewards
    function verifyClaim(uint256 jobId, uint256 round, address account, uint256 amount, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        bytes32 root = _rounds[jobId][round].root;
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leafHash(jobId, round, account, amount));
    }

    /// @inheritdoc IFederatedRewards
    function leafHash(uint256 jobId, uint256 round, address account, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(jobId, round, account, amount))));
    }

    /// @dev Checks one unclaimed leaf (the caller checked the claimed flag) and books it: claimed
    ///      flag, round and job totals. The caller transfers.
    function _book(uint256 jobId, uint256 round, address account, uint256 amount, bytes32[] calldata proof)
        private
    {
        bytes32 leaf = leafHash(jobId, round, account, amount);
        Round storage r = _rounds[jobId][round];
        bytes32 root = r.root;
        if (root == bytes32(0)) {
            _requireJob(jobId);
            revert UnknownRound(jobId, round);
        }
        Job storage job = _jobs[jobId]; // exists: only an existing job has a posted round
        if (block.timestamp >= job.claimDeadline) revert ClaimWindowClosed(job.claimDeadline);
        if (account == address(0)) revert ZeroAddress();
        if (!MerkleProof.verifyCalldata(proof, root, leaf)) revert InvalidProof(jobId, round, account);
        uint256 unclaimed = r.total - r.claimed;
        if (amount > unclaimed) revert ExceedsRoundTotal(unclaimed, amount);
        _claimed[jobId][round][account] = true;
        r.claimed += uint96(amount); // fits: amount <= unclaimed
        job.claimed += uint96(amount); // fits: claimed <= posted <= budget
        emit RewardClaimed(jobId, round, account, amount);
    }

    /// @dev What the sponsor is owed in total once past the deadline (refunds included): the
    ///      unposted budget while claims are open (posted is frozen from the deadline on), and
    ///      everything not claimed once they are closed.
    function _owedToSponsor(Job storage job) private view returns (uint256 owed, bool closed) {
        closed = block.timestamp >= job.claimDeadline;
        owed = closed ? job.budget - job.claimed : job.budget - job.posted;
    }

    function _requireJob(uint256 jobId) private view returns (Job storage job) {
        if (jobId == 0 || jobId > _count) revert UnknownJob(jobId);
        job = _jobs[jobId];
    }
}
