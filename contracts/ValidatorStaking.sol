// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IValidatorStaking} from "./interfaces/IValidatorStaking.sol";
import {RoyaltyMath} from "./libraries/RoyaltyMath.sol";

/// @title ValidatorStaking
/// @notice Stake, unbonding, stake-weighted selection, attestations, and majority disputes.
/// @dev Unbonding stake stays slashable until withdrawn, and the dispute window must be shorter
///      than the unbonding delay, so a validator cannot vote or attest and then leave with its
///      stake before a dispute over that act resolves. Votes count one per validator (each must
///      hold the minimum stake, which is what makes a sybil vote costly and slashable).
contract ValidatorStaking is IValidatorStaking, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Tunables fixed at deployment.
    /// @param minStake Active stake needed to attest, vote and be selected.
    /// @param unbondingPeriod Delay between requestUnstake and withdraw.
    /// @param disputeWindow How long a dispute accepts votes (must be < unbondingPeriod).
    /// @param slashBps Share of a loser's total stake taken per lost dispute.
    /// @param treasuryBps Share of the slashed pot that goes to the treasury.
    struct Config {
        uint128 minStake;
        uint64 unbondingPeriod;
        uint64 disputeWindow;
        uint16 slashBps;
        uint16 treasuryBps;
    }

    /// @notice Most validators that may ever join (bounds selection gas).
    uint256 public constant MAX_VALIDATORS = 256;
    /// @notice Most participants (both sides) in one dispute (bounds resolution gas).
    uint256 public constant MAX_DISPUTE_PARTICIPANTS = 32;

    IERC20 public immutable token;
    address public immutable treasury;
    uint128 public immutable minStake;
    uint64 public immutable unbondingPeriod;
    uint64 public immutable disputeWindow;
    uint16 public immutable slashBps;
    uint16 public immutable treasuryBps;

    address[] private _validators;
    mapping(address account => StakeInfo) private _stakes;
    mapping(address account => bool) private _listed;
    mapping(bytes32 taskId => mapping(address validator => bytes32 resultHash)) private _attestations;
    mapping(bytes32 attestationKey => uint256 disputeId) private _disputeByAttestation;
    uint256 private _disputeCount;
    mapping(uint256 disputeId => Dispute) private _disputes;
    mapping(uint256 disputeId => address[]) private _supporters;
    mapping(uint256 disputeId => address[]) private _opponents;
    mapping(uint256 disputeId => mapping(address account => bool)) private _participated;

    /// @param token_ The staking token (AGT).
    /// @param treasury_ Receives the treasury share of slashed stake.
    /// @param config The tunables.
    constructor(IERC20 token_, address treasury_, Config memory config) {
        if (
            address(token_) == address(0) || treasury_ == address(0) || config.minStake == 0
                || config.disputeWindow >= config.unbondingPeriod || config.slashBps > RoyaltyMath.BPS
                || config.treasuryBps > RoyaltyMath.BPS
        ) revert InvalidConfig();
        token = token_;
        treasury = treasury_;
        minStake = config.minStake;
        unbondingPeriod = config.unbondingPeriod;
        disputeWindow = config.disputeWindow;
        slashBps = config.slashBps;
        treasuryBps = config.treasuryBps;
    }

    /// @inheritdoc IValidatorStaking
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        if (!_listed[msg.sender]) {
            if (_validators.length >= MAX_VALIDATORS) revert TooManyValidators();
            _listed[msg.sender] = true;
            _validators.push(msg.sender);
        }
        _stakes[msg.sender].active += SafeCast.toUint128(amount);
        emit Staked(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IValidatorStaking
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        StakeInfo storage info = _stakes[msg.sender];
        if (amount > info.active) revert InsufficientStake(info.active, amount);
        uint128 moved = uint128(amount); // fits: amount <= info.active
        info.active -= moved;
        info.unbonding += moved;
        info.releaseAt = uint64(block.timestamp) + unbondingPeriod;
        emit UnstakeRequested(msg.sender, amount, info.releaseAt);
    }

    /// @inheritdoc IValidatorStaking
    function withdraw() external nonReentrant {
        StakeInfo storage info = _stakes[msg.sender];
        uint256 amount = info.unbonding;
        if (amount == 0 || block.timestamp < info.releaseAt) revert NothingToWithdraw(info.releaseAt);
        info.unbonding = 0;
        info.releaseAt = 0;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IValidatorStaking
    function attest(bytes32 taskId, bytes32 resultHash) external {
        _requireValidator(msg.sender);
        if (_attestations[taskId][msg.sender] != bytes32(0)) revert AlreadyAttested(taskId);
        _attestations[taskId][msg.sender] = resultHash;
        emit Attested(taskId, msg.sender, resultHash);
    }

    /// @inheritdoc IValidatorStaking
    function openDispute(bytes32 taskId, address accused, bytes32 resultHash) external returns (uint256 disputeId) {
        _requireValidator(msg.sender);
        if (accused == msg.sender) revert CannotDisputeSelf();
        bytes32 attested = _attestations[taskId][accused];
        if (attested == bytes32(0)) revert NoAttestation(taskId, accused);
        if (resultHash == attested) revert ResultMatchesAttestation();
        bytes32 key = keccak256(abi.encode(taskId, accused));
        uint256 existing = _disputeByAttestation[key];
        if (existing != 0) revert DisputeExists(existing);

        disputeId = ++_disputeCount;
        _disputeByAttestation[key] = disputeId;
        _disputes[disputeId] = Dispute({
            taskId: taskId,
            accused: accused,
            accusedResult: attested,
            deadline: uint64(block.timestamp) + disputeWindow,
            resolved: false,
            upheld: false
        });
        // The accused's attestation is its vote; the challenger's result is a vote against, so
        // a lone challenger ties and loses: a dispute needs other validators to agree.
        _supporters[disputeId].push(accused);
        _opponents[disputeId].push(msg.sender);
        _participated[disputeId][accused] = true;
        _participated[disputeId][msg.sender] = true;
        emit DisputeOpened(disputeId, taskId, accused, msg.sender);
    }

    /// @inheritdoc IValidatorStaking
    function vote(uint256 disputeId, bytes32 resultHash) external {
        Dispute storage dispute = _requireDispute(disputeId);
        if (block.timestamp >= dispute.deadline) revert VotingClosed(dispute.deadline);
        _requireValidator(msg.sender);
        if (_participated[disputeId][msg.sender]) revert AlreadyVoted(msg.sender);
        if (_supporters[disputeId].length + _opponents[disputeId].length >= MAX_DISPUTE_PARTICIPANTS) {
            revert DisputeFull();
        }
        _participated[disputeId][msg.sender] = true;
        bool agrees = resultHash == dispute.accusedResult;
        if (agrees) _supporters[disputeId].push(msg.sender);
        else _opponents[disputeId].push(msg.sender);
        emit Voted(disputeId, msg.sender, agrees);
    }

    /// @inheritdoc IValidatorStaking
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage dispute = _requireDispute(disputeId);
        if (dispute.resolved) revert DisputeResolvedAlready();
        if (block.timestamp < dispute.deadline) revert VotingOpen(dispute.deadline);
        address[] storage supporters = _supporters[disputeId];
        address[] storage opponents = _opponents[disputeId];
        bool upheld = opponents.length <= supporters.length;
        dispute.resolved = true;
        dispute.upheld = upheld;

        address[] storage losers = upheld ? opponents : supporters;
        address[] storage winners = upheld ? supporters : opponents;
        uint256 pot = 0;
        for (uint256 i = 0; i < losers.length; ++i) {
            pot += _slash(losers[i]);
        }
        uint256 shared = pot - RoyaltyMath.portion(pot, treasuryBps);
        uint256 perWinner = shared / winners.length;
        // The treasury takes its share plus the rounding dust of the equal split.
        uint256 toTreasury = pot - shared + (shared % winners.length);
        emit DisputeResolved(disputeId, upheld, pot, perWinner, toTreasury);
        if (perWinner > 0) {
            for (uint256 i = 0; i < winners.length; ++i) {
                token.safeTransfer(winners[i], perWinner);
            }
        }
        if (toTreasury > 0) token.safeTransfer(treasury, toTreasury);
    }

    /// @inheritdoc IValidatorStaking
    function selectValidators(bytes32 seed, uint256 count) external view returns (address[] memory selected) {
        uint256 total = _validators.length;
        address[] memory pool = new address[](total);
        uint256[] memory weights = new uint256[](total);
        uint256 eligible = 0;
        uint256 totalWeight = 0;
        for (uint256 i = 0; i < total; ++i) {
            uint256 active = _stakes[_validators[i]].active;
            if (active >= minStake) {
                pool[eligible] = _validators[i];
                weights[eligible] = active;
                totalWeight += active;
                ++eligible;
            }
        }
        if (count > eligible) revert NotEnoughValidators(count, eligible);
        selected = new address[](count);
        for (uint256 k = 0; k < count; ++k) {
            uint256 target = uint256(keccak256(abi.encode(seed, k))) % totalWeight;
            uint256 j = 0;
            // Walk the cumulative weights; picked entries have weight 0 and are never chosen.
            while (target >= weights[j]) {
                target -= weights[j];
                ++j;
            }
            selected[k] = pool[j];
            totalWeight -= weights[j];
            weights[j] = 0;
        }
    }

    /// @inheritdoc IValidatorStaking
    function isValidator(address account) public view returns (bool) {
        return _stakes[account].active >= minStake;
    }

    /// @inheritdoc IValidatorStaking
    function stakeOf(address account) external view returns (StakeInfo memory) {
        return _stakes[account];
    }

    /// @inheritdoc IValidatorStaking
    function attestationOf(bytes32 taskId, address validator) external view returns (bytes32) {
        return _attestations[taskId][validator];
    }

    /// @inheritdoc IValidatorStaking
    function disputeOf(uint256 disputeId)
        external
        view
        returns (Dispute memory dispute, address[] memory supporters, address[] memory opponents)
    {
        dispute = _requireDispute(disputeId);
        supporters = _supporters[disputeId];
        opponents = _opponents[disputeId];
    }

    /// @inheritdoc IValidatorStaking
    function validators() external view returns (address[] memory) {
        return _validators;
    }

    function _requireValidator(address account) private view {
        if (!isValidator(account)) revert NotValidator(account);
    }

    function _requireDispute(uint256 disputeId) private view returns (Dispute storage dispute) {
        if (disputeId == 0 || disputeId > _disputeCount) revert UnknownDispute(disputeId);
        dispute = _disputes[disputeId];
    }

    /// @dev Takes slashBps of the validator's total stake, from active stake first.
    function _slash(address validator) private returns (uint256 amount) {
        StakeInfo storage info = _stakes[validator];
        uint256 total = uint256(info.active) + info.unbonding;
        amount = RoyaltyMath.portion(total, slashBps);
        if (amount == 0) return 0;
        uint128 fromActive = amount > info.active ? info.active : uint128(amount);
        info.active -= fromActive;
        info.unbonding -= uint128(amount - fromActive);
        emit Slashed(validator, amount);
    }
}
