// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IValidatorStaking
/// @notice Validators stake AGT to check work; stake-weighted selection, attestations, majority
///         disputes and slashing of the losing side to the honest side and the treasury.
interface IValidatorStaking {
    /// @notice Stake of one validator.
    /// @param active Stake that counts for selection and voting.
    /// @param unbonding Stake waiting for its release time (still slashable).
    /// @param releaseAt When the unbonding stake may be withdrawn.
    struct StakeInfo {
        uint128 active;
        uint128 unbonding;
        uint64 releaseAt;
    }

    /// @notice A dispute over one attestation.
    /// @param taskId The task whose result is disputed.
    /// @param accused The validator whose attestation is challenged.
    /// @param accusedResult The result hash the accused attested.
    /// @param deadline Votes are accepted until this time; resolution after it.
    /// @param resolved Whether it has been resolved.
    /// @param upheld After resolution: true when the accused's result won.
    struct Dispute {
        bytes32 taskId;
        address accused;
        bytes32 accusedResult;
        uint64 deadline;
        bool resolved;
        bool upheld;
    }

    /// @notice `validator` added stake.
    /// @param validator The validator.
    /// @param amount Amount added.
    event Staked(address indexed validator, uint256 amount);

    /// @notice `validator` moved stake into unbonding.
    /// @param validator The validator.
    /// @param amount Amount moved.
    /// @param releaseAt When it may be withdrawn.
    event UnstakeRequested(address indexed validator, uint256 amount, uint64 releaseAt);

    /// @notice `validator` withdrew unbonded stake.
    /// @param validator The validator.
    /// @param amount Amount withdrawn.
    event Withdrawn(address indexed validator, uint256 amount);

    /// @notice `validator` attested a result for a task.
    /// @param taskId The task.
    /// @param validator The validator.
    /// @param resultHash The attested result.
    event Attested(bytes32 indexed taskId, address indexed validator, bytes32 resultHash);

    /// @notice A dispute was opened against an attestation.
    /// @param disputeId The dispute.
    /// @param taskId The task.
    /// @param accused The challenged validator.
    /// @param challenger The validator that opened it.
    event DisputeOpened(uint256 indexed disputeId, bytes32 indexed taskId, address indexed accused, address challenger);

    /// @notice A validator voted in a dispute by re-executing the task.
    /// @param disputeId The dispute.
    /// @param voter The voter.
    /// @param supportsAccused True when the voter's result equals the accused's.
    event Voted(uint256 indexed disputeId, address indexed voter, bool supportsAccused);

    /// @notice A validator lost stake.
    /// @param validator The slashed validator.
    /// @param amount Amount taken.
    event Slashed(address indexed validator, uint256 amount);

    /// @notice A dispute was resolved and the slashed stake distributed.
    /// @param disputeId The dispute.
    /// @param upheld True when the accused's result won.
    /// @param slashed Total stake taken from the losing side.
    /// @param perWinner Amount paid to each member of the winning side.
    /// @param toTreasury Amount paid to the treasury (its share plus rounding).
    event DisputeResolved(uint256 indexed disputeId, bool upheld, uint256 slashed, uint256 perWinner, uint256 toTreasury);

    /// @notice An amount of zero was given.
    error ZeroAmount();

    /// @notice The account's active stake is below the minimum.
    /// @param account The account.
    error NotValidator(address account);

    /// @notice Not enough active stake to move into unbonding.
    /// @param active Active stake.
    /// @param requested Requested amount.
    error InsufficientStake(uint256 active, uint256 requested);

    /// @notice Nothing is unbonding, or its release time has not come.
    /// @param releaseAt The release time (0 when nothing unbonds).
    error NothingToWithdraw(uint64 releaseAt);

    /// @notice The validator set is full.
    error TooManyValidators();

    /// @notice Fewer eligible validators than requested.
    /// @param requested Requested count.
    /// @param available Eligible count.
    error NotEnoughValidators(uint256 requested, uint256 available);

    /// @notice The validator already attested this task.
    /// @param taskId The task.
    error AlreadyAttested(bytes32 taskId);

    /// @notice The accused has no attestation for this task.
    /// @param taskId The task.
    /// @param accused The accused.
    error NoAttestation(bytes32 taskId, address accused);

    /// @notice A validator tried to dispute its own attestation.
    error CannotDisputeSelf();

    /// @notice The challenger's result equals the attested one: nothing to dispute.
    error ResultMatchesAttestation();

    /// @notice A dispute over this attestation already exists.
    /// @param disputeId The existing dispute.
    error DisputeExists(uint256 disputeId);

    /// @notice The dispute id does not exist.
    /// @param disputeId The id.
    error UnknownDispute(uint256 disputeId);

    /// @notice The voting window of the dispute has closed.
    /// @param deadline The deadline.
    error VotingClosed(uint64 deadline);

    /// @notice The voting window is still open.
    /// @param deadline The deadline.
    error VotingOpen(uint64 deadline);

    /// @notice The account already took part in the dispute.
    /// @param account The account.
    error AlreadyVoted(address account);

    /// @notice The dispute has the maximum number of participants.
    error DisputeFull();

    /// @notice The dispute was already resolved.
    error DisputeResolvedAlready();

    /// @notice Constructor parameters are inconsistent.
    error InvalidConfig();

    /// @notice Add stake (pulls tokens from the caller).
    /// @param amount Amount in token base units.
    function stake(uint256 amount) external;

    /// @notice Move active stake into unbonding; restarts the unbonding delay for all unbonding stake.
    /// @param amount Amount in token base units.
    function requestUnstake(uint256 amount) external;

    /// @notice Withdraw all unbonding stake after its release time.
    function withdraw() external;

    /// @notice Attest a task result (active validators only, once per task).
    /// @param taskId The task.
    /// @param resultHash The result hash the validator computed.
    function attest(bytes32 taskId, bytes32 resultHash) external;

    /// @notice Challenge another validator's attestation with a different result.
    /// @param taskId The task.
    /// @param accused The validator whose attestation is challenged.
    /// @param resultHash The challenger's result (counts as a vote against).
    /// @return disputeId The new dispute id.
    function openDispute(bytes32 taskId, address accused, bytes32 resultHash) external returns (uint256 disputeId);

    /// @notice Vote in an open dispute with the voter's own re-executed result.
    /// @param disputeId The dispute.
    /// @param resultHash The voter's result.
    function vote(uint256 disputeId, bytes32 resultHash) external;

    /// @notice Resolve a dispute after its deadline: strict majority against the accused slashes
    ///         the accused; otherwise every voter against is slashed. Anyone may call.
    /// @param disputeId The dispute.
    function resolve(uint256 disputeId) external;

    /// @notice Pick `count` distinct validators, stake-weighted, from `seed`.
    /// @dev The seed decides everything; on a chain whose block producer is a party (any local
    ///      chain) a seed from block data can be ground. Use a seed neither party controls alone,
    ///      e.g. keccak(job id, a blockhash after the job was funded) on a public chain.
    /// @param seed The randomness.
    /// @param count How many to pick.
    /// @return selected The chosen validators in pick order.
    function selectValidators(bytes32 seed, uint256 count) external view returns (address[] memory selected);

    /// @notice Whether `account` has at least the minimum active stake.
    /// @param account The account.
    /// @return True for an active validator.
    function isValidator(address account) external view returns (bool);

    /// @notice The stake of an account.
    /// @param account The account.
    /// @return The stake record.
    function stakeOf(address account) external view returns (StakeInfo memory);

    /// @notice The attested result of a validator for a task (zero if none).
    /// @param taskId The task.
    /// @param validator The validator.
    /// @return The result hash.
    function attestationOf(bytes32 taskId, address validator) external view returns (bytes32);

    /// @notice A dispute and its participants.
    /// @param disputeId The dispute.
    /// @return dispute The dispute record.
    /// @return supporters Validators whose result equals the accused's (the accused first).
    /// @return opponents Validators with a different result (the challenger first).
    function disputeOf(uint256 disputeId)
        external
        view
        returns (Dispute memory dispute, address[] memory supporters, address[] memory opponents);

    /// @notice All validators that ever staked (selection considers those with minimum stake).
    /// @return The list.
    function validators() external view returns (address[] memory);
}
