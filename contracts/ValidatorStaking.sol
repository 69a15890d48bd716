// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IValidatorStaking} from "./interfaces/IValidatorStaking.sol";
import {RoyaltyMath} from "./libraries/RoyaltyMath.sol";

/// @title ValidatorStaking
/// @notice Stake, unbonding, stake-weighted selection, attestations, and committee disputes.
/// @dev Eligible set: exactly the accounts whose active stake is at least minStake; they are
///      listed when they reach it and removed (swap-and-pop) when they fall below it, so dust
///      stakes never enter the list and filling it costs MAX_VALIDATORS * minStake.
///
///      Disputes: a challenger with its own, different attestation opens a dispute within
///      attestationWindow of the accused's attestation. The committee is drawn by stake weight
///      from the eligible set, minus both parties, seeded by the hash of the block that included
///      the open. The challenger signs its transaction before that block exists and cannot know
///      its hash; once the block exists its hash is fixed, so whoever calls drawCommittee, and
///      whenever, the same committee comes out. Only a producer of that very block could grind
///      the hash (on a local chain the node's owner is one), which is why committees weigh stake:
///      capturing one needs a majority of the committee's stake. A blockhash (rather than
///      prevrandao) is used because a past block's hash stays readable for 256 blocks, while
///      prevrandao is only readable in the current block, whose caller could pick the block.
///
///      Windows: an attestation can be disputed for attestationWindow, a dispute takes
///      disputeWindow, and both together are shorter than unbondingPeriod, so the accused, the
///      challenger and every committee member are still slashable (unbonding stake is) when the
///      dispute resolves.
contract ValidatorStaking is IValidatorStaking, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Tunables fixed at deployment.
    /// @param minStake Active stake needed to be listed, attest, challenge and sit on committees.
    /// @param unbondingPeriod Delay between requestUnstake and withdraw.
    /// @param attestationWindow How long after an attestation disputes may open against it.
    /// @param disputeWindow How long a dispute accepts committee votes
    ///        (attestationWindow + disputeWindow must be < unbondingPeriod).
    /// @param slashBps Share of a loser's total stake taken per lost dispute.
    /// @param treasuryBps Share of the slashed pot that goes to the treasury.
    /// @param committeeSize Members drawn per dispute (1..MAX_COMMITTEE_SIZE).
    struct Config {
        uint128 minStake;
        uint64 unbondingPeriod;
        uint64 attestationWindow;
        uint64 disputeWindow;
        uint16 slashBps;
        uint16 treasuryBps;
        uint8 committeeSize;
    }

    /// @dev A committee seat: the member's weight (its active stake at the draw) and vote.
    struct Seat {
        uint128 weight;
        Ballot ballot;
    }

    /// @notice Most accounts the eligible set holds (bounds selection and draw gas).
    uint256 public constant MAX_VALIDATORS = 256;
    /// @notice Largest committee a deployment may configure (bounds resolution gas).
    uint256 public constant MAX_COMMITTEE_SIZE = 15;

    /// @notice The staking token (AGT).
    IERC20 public immutable token;
    /// @notice Receives the treasury share of slashed stake.
    address public immutable treasury;
    /// @notice Active stake needed to be in the eligible set.
    uint128 public immutable minStake;
    /// @notice Delay between requestUnstake and withdraw.
    uint64 public immutable unbondingPeriod;
    /// @notice How long after an attestation disputes may open against it.
    uint64 public immutable attestationWindow;
    /// @notice How long a dispute accepts committee votes.
    uint64 public immutable disputeWindow;
    /// @notice Share of a loser's total stake taken per lost dispute, in basis points.
    uint16 public immutable slashBps;
    /// @notice Share of the slashed pot that goes to the treasury, in basis points.
    uint16 public immutable treasuryBps;
    /// @notice Members drawn per dispute.
    uint8 public immutable committeeSize;

    // `_validators` stays the first storage slot (tests fill the set by writing its length).
    address[] private _validators;
    mapping(address account => uint256 position) private _positions; // 1-based index in _validators; 0: not listed
    mapping(address account => StakeInfo) private _stakes;
    mapping(bytes32 taskId => mapping(address validator => Attestation)) private _attestations;
    mapping(bytes32 taskId => mapping(address accused => mapping(address challenger => uint256 disputeId))) private
        _challenges;
    uint256 private _disputeCount;
    mapping(uint256 disputeId => Dispute) private _disputes;
    mapping(uint256 disputeId => address[]) private _committees;
    mapping(uint256 disputeId => mapping(address member => Seat)) private _seats;

    /// @param token_ The staking token (AGT).
    /// @param treasury_ Receives the treasury share of slashed stake.
    /// @param config The tunables.
    constructor(IERC20 token_, address treasury_, Config memory config) {
        if (
            address(token_) == address(0) || treasury_ == address(0) || config.minStake == 0
                || config.attestationWindow == 0 || config.disputeWindow == 0
                || uint256(config.attestationWindow) + config.disputeWindow >= config.unbondingPeriod
                || config.slashBps > RoyaltyMath.BPS || config.treasuryBps > RoyaltyMath.BPS || config.committeeSize == 0
                || config.committeeSize > MAX_COMMITTEE_SIZE
        ) revert InvalidConfig();
        token = token_;
        treasury = treasury_;
        minStake = config.minStake;
        unbondingPeriod = config.unbondingPeriod;
        attestationWindow = config.attestationWindow;
        disputeWindow = config.disputeWindow;
        slashBps = config.slashBps;
        treasuryBps = config.treasuryBps;
        committeeSize = config.committeeSize;
    }

    /// @inheritdoc IValidatorStaking
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        _stakes[msg.sender].active += SafeCast.toUint128(amount);
        _syncListing(msg.sender);
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
        _syncListing(msg.sender);
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
        Attestation storage record = _attestations[taskId][msg.sender];
        if (record.attestedAt != 0) revert AlreadyAttested(taskId);
        record.resultHash = resultHash;
        record.attestedAt = uint64(block.timestamp);
        emit Attested(taskId, msg.sender, resultHash);
    }

    /// @inheritdoc IValidatorStaking
    function openDispute(bytes32 taskId, address accused, bytes32 resultHash) external returns (uint256 disputeId) {
        _requireValidator(msg.sender);
        if (accused == msg.sender) revert CannotDisputeSelf();
        Attestation storage attested = _attestations[taskId][accused];
        uint64 attestedAt = attested.attestedAt;
        if (attestedAt == 0) revert NoAttestation(taskId, accused);
        uint64 closedAt = attestedAt + attestationWindow;
        if (block.timestamp >= closedAt) revert AttestationWindowClosed(closedAt);
        if (attested.slashed) revert AttestationAlreadySlashed(taskId, accused);
        bytes32 accusedResult = attested.resultHash;
        if (resultHash == accusedResult) revert ResultMatchesAttestation();
        Attestation storage own = _attestations[taskId][msg.sender];
        if (own.attestedAt == 0 || own.resultHash != resultHash) revert ChallengerNotAttested(taskId, resultHash);
        uint256 existing = _challenges[taskId][accused][msg.sender];
        if (existing != 0) revert AlreadyChallenged(existing);

        disputeId = ++_disputeCount;
        _challenges[taskId][accused][msg.sender] = disputeId;
        uint64 deadline = uint64(block.timestamp) + disputeWindow;
        Dispute storage dispute = _disputes[disputeId];
        dispute.taskId = taskId;
        dispute.accusedResult = accusedResult;
        dispute.accused = accused;
        dispute.deadline = deadline;
        dispute.challenger = msg.sender;
        dispute.drawBlock = uint64(block.number);
        emit DisputeOpened(disputeId, taskId, accused, msg.sender, uint64(block.number), deadline);
    }

    /// @inheritdoc IValidatorStaking
    function drawCommittee(uint256 disputeId) external returns (address[] memory members) {
        Dispute storage dispute = _requireDispute(disputeId);
        if (dispute.drawn) revert CommitteeAlreadyDrawn();
        if (block.timestamp >= dispute.deadline) revert VotingClosed(dispute.deadline);
        uint64 drawBlock = dispute.drawBlock;
        if (block.number <= drawBlock) revert DrawTooEarly(uint256(drawBlock) + 1);
        bytes32 entropy = blockhash(drawBlock);
        if (entropy == bytes32(0)) {
            // Nobody drew within 256 blocks; seed from this block instead (its hash is unknown now).
            dispute.drawBlock = uint64(block.number);
            emit CommitteeDrawDeferred(disputeId, uint64(block.number));
            return members;
        }
        uint256[] memory weights;
        (members, weights) =
            _draw(keccak256(abi.encode(entropy, disputeId)), committeeSize, dispute.accused, dispute.challenger);
        dispute.drawn = true;
        for (uint256 i = 0; i < members.length; ++i) {
            _committees[disputeId].push(members[i]);
            _seats[disputeId][members[i]] = Seat({weight: uint128(weights[i]), ballot: Ballot.Absent}); // fits: a stake
        }
        emit CommitteeDrawn(disputeId, members, weights);
    }

    /// @inheritdoc IValidatorStaking
    function vote(uint256 disputeId, bytes32 resultHash) external {
        Dispute storage dispute = _requireDispute(disputeId);
        if (block.timestamp >= dispute.deadline) revert VotingClosed(dispute.deadline);
        Seat storage seat = _seats[disputeId][msg.sender];
        uint128 weight = seat.weight;
        if (weight == 0) revert NotCommitteeMember(msg.sender);
        if (seat.ballot != Ballot.Absent) revert AlreadyVoted(msg.sender);
        bool agrees = resultHash == dispute.accusedResult;
        if (agrees) {
            seat.ballot = Ballot.Supports;
            dispute.supportWeight += weight;
        } else {
            seat.ballot = Ballot.Opposes;
            dispute.opposeWeight += weight;
        }
        emit Voted(disputeId, msg.sender, agrees, weight);
    }

    /// @inheritdoc IValidatorStaking
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage dispute = _requireDispute(disputeId);
        if (dispute.resolved) revert DisputeResolvedAlready();
        if (block.timestamp < dispute.deadline) revert VotingOpen(dispute.deadline);
        dispute.resolved = true;

        address[] storage committee = _committees[disputeId];
        mapping(address member => Seat) storage seats = _seats[disputeId];
        uint256 members = committee.length;
        uint256 committeeWeight = 0;
        for (uint256 i = 0; i < members; ++i) {
            committeeWeight += seats[committee[i]].weight;
        }
        uint256 support = dispute.supportWeight;
        uint256 oppose = dispute.opposeWeight;
        if ((support + oppose) * 2 <= committeeWeight) {
            // No quorum (also: never drawn, or nobody eligible to draw): nobody is slashed.
            emit DisputeResolved(disputeId, false, false, 0, 0, 0);
            return;
        }
        // The parties' own results weigh the same and cancel: the committee's stake decides.
        bool upheld = oppose <= support;
        dispute.decided = true;
        dispute.upheld = upheld;

        uint256 pot = 0;
        if (upheld) {
            pot += _slash(dispute.challenger);
        } else {
            Attestation storage accusedAttestation = _attestations[dispute.taskId][dispute.accused];
            // One wrong attestation costs its author once, however many disputes find it wrong.
            if (!accusedAttestation.slashed) {
                accusedAttestation.slashed = true;
                pot += _slash(dispute.accused);
            }
        }
        Ballot losing = upheld ? Ballot.Opposes : Ballot.Supports;
        address[] memory winners = new address[](members + 1);
        winners[0] = upheld ? dispute.accused : dispute.challenger;
        uint256 winnerCount = 1;
        for (uint256 i = 0; i < members; ++i) {
            address member = committee[i];
            Ballot ballot = seats[member].ballot;
            if (ballot == losing) {
                pot += _slash(member);
            } else if (ballot != Ballot.Absent) {
                winners[winnerCount++] = member;
            }
        }
        uint256 shared = pot - RoyaltyMath.portion(pot, treasuryBps);
        uint256 perWinner = shared / winnerCount;
        // The treasury takes its share plus the rounding dust of the equal split.
        uint256 toTreasury = pot - shared + (shared % winnerCount);
        emit DisputeResolved(disputeId, true, upheld, pot, perWinner, toTreasury);
        if (perWinner > 0) {
            for (uint256 i = 0; i < winnerCount; ++i) {
                token.safeTransfer(winners[i], perWinner);
            }
        }
        if (toTreasury > 0) token.safeTransfer(treasury, toTreasury);
    }

    /// @inheritdoc IValidatorStaking
    function selectValidators(bytes32 seed, uint256 count) external view returns (address[] memory selected) {
        (selected,) = _draw(seed, count, address(0), address(0));
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
        return _attestations[taskId][validator].resultHash;
    }

    /// @inheritdoc IValidatorStaking
    function attestationInfo(bytes32 taskId, address validator) external view returns (Attestation memory) {
        return _attestations[taskId][validator];
    }

    /// @inheritdoc IValidatorStaking
    function challengeOf(bytes32 taskId, address accused, address challenger) external view returns (uint256) {
        return _challenges[taskId][accused][challenger];
    }

    /// @inheritdoc IValidatorStaking
    function disputeOf(uint256 disputeId)
        external
        view
        returns (Dispute memory dispute, address[] memory supporters, address[] memory opponents)
    {
        dispute = _requireDispute(disputeId);
        address[] storage committee = _committees[disputeId];
        uint256 members = committee.length;
        supporters = new address[](members + 1);
        opponents = new address[](members + 1);
        supporters[0] = dispute.accused;
        opponents[0] = dispute.challenger;
        uint256 supporting = 1;
        uint256 opposing = 1;
        for (uint256 i = 0; i < members; ++i) {
            Ballot ballot = _seats[disputeId][committee[i]].ballot;
            if (ballot == Ballot.Supports) supporters[supporting++] = committee[i];
            else if (ballot == Ballot.Opposes) opponents[opposing++] = committee[i];
        }
        assembly ("memory-safe") {
            mstore(supporters, supporting)
            mstore(opponents, opposing)
        }
    }

    /// @inheritdoc IValidatorStaking
    function committeeOf(uint256 disputeId)
        external
        view
        returns (address[] memory members, uint256[] memory weights, Ballot[] memory ballots)
    {
        _requireDispute(disputeId);
        members = _committees[disputeId];
        weights = new uint256[](members.length);
        ballots = new Ballot[](members.length);
        for (uint256 i = 0; i < members.length; ++i) {
            Seat storage seat = _seats[disputeId][members[i]];
            weights[i] = seat.weight;
            ballots[i] = seat.ballot;
        }
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

    /// @dev Lists an account whose active stake reached the minimum and removes one that fell
    ///      below it (swap-and-pop), keeping the list equal to the eligible set.
    function _syncListing(address account) private {
        bool eligible = _stakes[account].active >= minStake;
        uint256 position = _positions[account];
        if (eligible && position == 0) {
            if (_validators.length >= MAX_VALIDATORS) revert TooManyValidators();
            _validators.push(account);
            _positions[account] = _validators.length;
            emit ValidatorListed(account);
        } else if (!eligible && position != 0) {
            uint256 last = _validators.length;
            if (position != last) {
                address moved = _validators[last - 1];
                _validators[position - 1] = moved;
                _positions[moved] = position;
            }
            _validators.pop();
            delete _positions[account];
            emit ValidatorDelisted(account);
        }
    }

    /// @dev Up to `count` distinct eligible accounts other than `skipA` and `skipB`, each picked
    ///      with probability proportional to its active stake among those not yet picked.
    function _draw(bytes32 seed, uint256 count, address skipA, address skipB)
        private
        view
        returns (address[] memory picked, uint256[] memory pickedWeights)
    {
        uint256 listed = _validators.length;
        address[] memory pool = new address[](listed);
        uint256[] memory weights = new uint256[](listed);
        uint256 size = 0;
        uint256 totalWeight = 0;
        for (uint256 i = 0; i < listed; ++i) {
            address account = _validators[i];
            uint256 active = _stakes[account].active;
            // Every listed account is eligible; the check keeps the draw total even if not.
            if (account == skipA || account == skipB || active < minStake) continue;
            pool[size] = account;
            weights[size] = active;
            totalWeight += active;
            ++size;
        }
        if (count > size) count = size;
        picked = new address[](count);
        pickedWeights = new uint256[](count);
        for (uint256 k = 0; k < count; ++k) {
            // The seed is a past block's hash (drawCommittee) or the caller's (selectValidators);
            // see the contract notes for who could grind it.
            // slither-disable-next-line weak-prng
            uint256 target = uint256(keccak256(abi.encode(seed, k))) % totalWeight;
            uint256 j = 0;
            // Walk the cumulative weights; picked entries have weight 0 and are never chosen.
            while (target >= weights[j]) {
                target -= weights[j];
                ++j;
            }
            picked[k] = pool[j];
            pickedWeights[k] = weights[j];
            totalWeight -= weights[j];
            weights[j] = 0;
        }
    }

    /// @dev Takes slashBps of the validator's total stake, from active stake first; delists it
    ///      when its active stake falls below the minimum.
    function _slash(address validator) private returns (uint256 amount) {
        StakeInfo storage info = _stakes[validator];
        uint256 total = uint256(info.active) + info.unbonding;
        amount = RoyaltyMath.portion(total, slashBps);
        if (amount == 0) return 0;
        uint128 fromActive = amount > info.active ? info.active : uint128(amount);
        info.active -= fromActive;
        info.unbonding -= uint128(amount - fromActive);
        _syncListing(validator);
        emit Slashed(validator, amount);
    }
}
