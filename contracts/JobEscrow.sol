// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAgentRegistry} from "./interfaces/IAgentRegistry.sol";
import {IJobEscrow} from "./interfaces/IJobEscrow.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {IValidatorStaking} from "./interfaces/IValidatorStaking.sol";
import {RoyaltyMath} from "./libraries/RoyaltyMath.sol";

/// @title JobEscrow
/// @notice Escrow for jobs judged by a staked validator; completion pays the evaluator fee, the
///         model lineage's royalties and the provider, and writes the provider's paid receipt.
/// @dev Every path that moves tokens sets the final status before transferring and is guarded
///      by nonReentrant. Tokens held always equal the budgets of Funded and Submitted jobs.
///      A submission moves the deadline to at least submission + evaluationWindow, so the client
///      cannot expire a delivered job before its evaluator had that long to judge it; after that a
///      refund is open again, so escrow never sticks with an absent evaluator. The client cannot
///      be its job's evaluator (it would judge the work it pays for).
contract JobEscrow is IJobEscrow, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Highest evaluator fee (20% of the budget).
    uint256 public constant MAX_EVALUATOR_FEE_BPS = 2_000;
    uint8 private constant MAX_SCORE = 100;

    /// @notice The settlement token (AGT).
    IERC20 public immutable token;
    /// @notice Lineage and royalty splits.
    IModelRegistry public immutable models;
    /// @notice Receipt-backed reputation.
    IAgentRegistry public immutable agents;
    /// @notice Decides who may act as evaluator.
    IValidatorStaking public immutable staking;
    /// @notice How long after a submission the client cannot expire the job.
    uint64 public immutable evaluationWindow;

    uint256 private _count;
    mapping(uint256 jobId => Job) private _jobs;

    /// @param token_ The settlement token (AGT).
    /// @param models_ Lineage and royalty splits.
    /// @param agents_ Receipt-backed reputation (this contract must be a recorder there).
    /// @param staking_ Decides who may act as evaluator.
    /// @param evaluationWindow_ How long after a submission the client cannot expire the job.
    constructor(
        IERC20 token_,
        IModelRegistry models_,
        IAgentRegistry agents_,
        IValidatorStaking staking_,
        uint64 evaluationWindow_
    ) {
        if (
            address(token_) == address(0) || address(models_) == address(0) || address(agents_) == address(0)
                || address(staking_) == address(0)
        ) revert ZeroAddress();
        if (evaluationWindow_ == 0) revert ZeroEvaluationWindow();
        token = token_;
        models = models_;
        agents = agents_;
        staking = staking_;
        evaluationWindow = evaluationWindow_;
    }

    /// @inheritdoc IJobEscrow
    function createJob(JobSpec calldata spec) external returns (uint256 jobId) {
        if (spec.provider == address(0) || spec.evaluator == address(0)) revert ZeroAddress();
        if (spec.evaluator == spec.provider) revert EvaluatorIsProvider();
        if (spec.evaluator == msg.sender) revert EvaluatorIsClient();
        if (!staking.isValidator(spec.evaluator)) revert EvaluatorNotValidator(spec.evaluator);
        if (spec.deadline <= block.timestamp) revert InvalidDeadline(spec.deadline);
        if (spec.evaluatorFeeBps > MAX_EVALUATOR_FEE_BPS) revert FeeTooHigh(spec.evaluatorFeeBps);
        if (spec.modelId != 0 && spec.modelId > models.modelCount()) revert UnknownModelId(spec.modelId);
        jobId = ++_count;
        _jobs[jobId] = Job({
            client: msg.sender,
            deadline: spec.deadline,
            status: Status.Open,
            evaluatorFeeBps: spec.evaluatorFeeBps,
            provider: spec.provider,
            budget: spec.budget,
            evaluator: spec.evaluator,
            modelId: spec.modelId,
            specHash: spec.specHash,
            deliverable: bytes32(0),
            reason: bytes32(0)
        });
        emit JobCreated(jobId, msg.sender, spec.provider, spec.evaluator, spec.budget, spec.deadline);
    }

    /// @inheritdoc IJobEscrow
    function setBudget(uint256 jobId, uint256 budget) external {
        Job storage job = _requireStatus(jobId, Status.Open);
        if (msg.sender != job.client && msg.sender != job.provider) revert NotClientOrProvider(msg.sender);
        job.budget = SafeCast.toUint96(budget);
        emit BudgetSet(jobId, budget);
    }

    /// @inheritdoc IJobEscrow
    function fund(uint256 jobId, uint256 expectedBudget) external nonReentrant {
        Job storage job = _requireStatus(jobId, Status.Open);
        if (msg.sender != job.client) revert NotClient(msg.sender);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(job.deadline);
        uint256 budget = job.budget;
        if (budget != expectedBudget) revert BudgetMismatch(expectedBudget, budget);
        if (budget == 0) revert ZeroBudget();
        job.status = Status.Funded;
        emit JobFunded(jobId, budget);
        token.safeTransferFrom(msg.sender, address(this), budget);
    }

    /// @inheritdoc IJobEscrow
    function submit(uint256 jobId, bytes32 deliverable) external {
        Job storage job = _requireStatus(jobId, Status.Funded);
        if (msg.sender != job.provider) revert NotProvider(msg.sender);
        if (block.timestamp >= job.deadline) revert DeadlinePassed(job.deadline);
        uint64 judgedBy = uint64(block.timestamp) + evaluationWindow;
        if (judgedBy > job.deadline) job.deadline = judgedBy;
        job.status = Status.Submitted;
        job.deliverable = deliverable;
        emit JobSubmitted(jobId, deliverable, job.deadline);
    }

    /// @inheritdoc IJobEscrow
    function complete(uint256 jobId, bytes32 reason, uint8 score) external nonReentrant {
        Job storage job = _requireStatus(jobId, Status.Submitted);
        if (msg.sender != job.evaluator) revert NotEvaluator(msg.sender);
        if (score > MAX_SCORE) revert ScoreOutOfRange(score);
        job.status = Status.Completed;
        job.reason = reason;

        uint256 budget = job.budget;
        address provider = job.provider;
        uint256 fee = RoyaltyMath.portion(budget, job.evaluatorFeeBps);
        (address[] memory recipients, uint256[] memory amounts) = models.split(job.modelId, budget - fee, provider);
        uint256 providerAmount = 0;
        for (uint256 i = 0; i < recipients.length; ++i) {
            if (recipients[i] == provider) providerAmount += amounts[i];
        }
        emit JobCompleted(jobId, reason, score, fee, budget - fee - providerAmount, providerAmount);
        agents.recordReceipt(provider, score, budget, bytes32(jobId));
        if (fee > 0) token.safeTransfer(msg.sender, fee);
        for (uint256 i = 0; i < recipients.length; ++i) {
            token.safeTransfer(recipients[i], amounts[i]);
        }
    }

    /// @inheritdoc IJobEscrow
    function reject(uint256 jobId, bytes32 reason) external nonReentrant {
        Job storage job = _requireJob(jobId);
        Status status = job.status;
        uint256 refund = 0;
        if (status == Status.Open) {
            if (msg.sender != job.client) revert NotClient(msg.sender);
        } else if (status == Status.Funded || status == Status.Submitted) {
            if (msg.sender != job.evaluator) revert NotEvaluator(msg.sender);
            refund = job.budget;
        } else {
            revert WrongStatus(jobId, status);
        }
        job.status = Status.Rejected;
        job.reason = reason;
        emit JobRejected(jobId, msg.sender, reason, refund);
        if (refund > 0) token.safeTransfer(job.client, refund);
    }

    /// @inheritdoc IJobEscrow
    function claimRefund(uint256 jobId) external nonReentrant {
        Job storage job = _requireJob(jobId);
        Status status = job.status;
        if (status != Status.Open && status != Status.Funded && status != Status.Submitted) {
            revert WrongStatus(jobId, status);
        }
        if (block.timestamp < job.deadline) revert NotExpired(job.deadline);
        uint256 refund = status == Status.Open ? 0 : job.budget;
        job.status = Status.Expired;
        emit JobExpired(jobId, refund);
        if (refund > 0) token.safeTransfer(job.client, refund);
    }

    /// @inheritdoc IJobEscrow
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _requireJob(jobId);
    }

    /// @inheritdoc IJobEscrow
    function jobCount() external view returns (uint256) {
        return _count;
    }

    function _requireJob(uint256 jobId) private view returns (Job storage job) {
        if (jobId == 0 || jobId > _count) revert UnknownJob(jobId);
        job = _jobs[jobId];
    }

    function _requireStatus(uint256 jobId, Status expected) private view returns (Job storage job) {
        job = _requireJob(jobId);
        if (job.status != expected) revert WrongStatus(jobId, job.status);
    }
}
