// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IValidatorStaking
/// @notice Validators stake AGT to check work: stake-weighted selection over the eligible set,
///         attestations, and disputes decided by a stake-weighted committee drawn at random, with
///         the losing side slashed to the winning side and the treasury.
interface IValidatorStaking {
    /// @notice Stake of one validator.
    /// @param active Stake that counts for selection, committees and voting weight.
    /// @param unbonding Stake waiting for its release time (still slashable).
    /// @param releaseAt When the unbonding stake may be withdrawn.
    struct StakeInfo {
        uint128 active;
        uint128 unbonding;
        uint64 releaseAt;
    }

    /// @notice One validator's attestation of a task result.
    /// @param resultHash The attested result.
    /// @param attestedAt When it was attested (0: no attestation); disputes open until
    ///        attestedAt + attestationWindow.
    /// @param slashed Set once the attestation lost a dispute as the accused; it is never slashed again.
    struct Attestation {
        bytes32 resultHash;
        uint64 attestedAt;
        bool slashed;
    }

    /// @notice A dispute over one attestation.
    /// @param taskId The task whose result is disputed.
    /// @param accusedResult The result hash the accused attested.
    /// @param accused The validator whose attestation is challenged.
    /// @param deadline Committee votes are accepted until this time; resolution after it.
    /// @param resolved Whether it has been resolved.
    /// @param upheld After a decided resolution: true when the accused's result won.
    /// @param decided After resolution: true when the committee reached quorum (otherwise nobody
    ///        was slashed).
    /// @param drawn Whether the committee has been drawn.
    /// @param challenger The validator that opened it (its own attestation is its result).
    /// @param drawBlock The block whose hash seeds the committee draw.
    /// @param supportWeight Stake of the committee members who voted for the accused's result.
    /// @param opposeWeight Stake of the committee members who voted against it.
    struct Dispute {
        bytes32 taskId;
        bytes32 accusedResult;
        address accused;
        uint64 deadline;
        bool resolved;
        bool upheld;
        bool decided;
        bool drawn;
        address challenger;
        uint64 drawBlock;
        uint128 supportWeight;
        uint128 opposeWeight;
    }

    /// @notice How a committee member voted.
    enum Ballot {
        Absent,
        Supports,
        Opposes
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

    /// @notice `validator`'s active stake reached the minimum: it joined the eligible set.
    /// @param validator The validator.
    event ValidatorListed(address indexed validator);

    /// @notice `validator`'s active stake fell below the minimum (unstake or slash): it left the
    ///         eligible set.
    /// @param validator The validator.
    event ValidatorDelisted(address indexed validator);

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
    /// @param drawBlock The block whose hash will seed the committee (drawable from the next block).
    /// @param deadline End of the voting window.
    event DisputeOpened(
        uint256 indexed disputeId,
        bytes32 indexed taskId,
        address indexed accused,
        address challenger,
        uint64 drawBlock,
        uint64 deadline
    );

    /// @notice The committee of a dispute was drawn.
    /// @param disputeId The dispute.
    /// @param members The members, in draw order.
    /// @param weights Each member's voting weight (its active stake at the draw).
    event CommitteeDrawn(uint256 indexed disputeId, address[] members, uint256[] weights);

    /// @notice The seed block of a dispute had left the 256 blocks whose hash the EVM keeps, so
    ///         the committee will be seeded by `drawBlock` instead (draw again from the next block).
    /// @param disputeId The dispute.
    /// @param drawBlock The new seed block.
    event CommitteeDrawDeferred(uint256 indexed disputeId, uint64 drawBlock);

    /// @notice A committee member voted by re-executing the task.
    /// @param disputeId The dispute.
    /// @param voter The member.
    /// @param supportsAccused True when the member's result equals the accused's.
    /// @param weight The member's voting weight.
    event Voted(uint256 indexed disputeId, address indexed voter, bool supportsAccused, uint256 weight);

    /// @notice A validator lost stake.
    /// @param validator The slashed validator.
    /// @param amount Amount taken.
    event Slashed(address indexed validator, uint256 amount);

    /// @notice A dispute was resolved and any slashed stake distributed.
    /// @param disputeId The dispute.
    /// @param decided False when the committee missed quorum: nobody was slashed.
    /// @param upheld True when the accused's result won (false when undecided).
    /// @param slashed Total stake taken from the losing side.
    /// @param perWinner Amount paid to each member of the winning side.
    /// @param toTreasury Amount paid to the treasury (its share plus rounding).
    event DisputeResolved(
        uint256 indexed disputeId, bool decided, bool upheld, uint256 slashed, uint256 perWinner, uint256 toTreasury
    );

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

    /// @notice The eligible set already holds MAX_VALIDATORS accounts with the minimum stake.
    error TooManyValidators();

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

    /// @notice The challenger has not attested `resultHash` for the task itself.
    /// @param taskId The task.
    /// @param resultHash The result the challenger disputes with.
    error ChallengerNotAttested(bytes32 taskId, bytes32 resultHash);

    /// @notice Disputes over this attestation closed at `closedAt` (attestedAt + attestationWindow).
    /// @param closedAt When the window closed.
    error AttestationWindowClosed(uint64 closedAt);

    /// @notice The accused's attestation already lost a dispute and was slashed.
    /// @param taskId The task.
    /// @param accused The accused.
    error AttestationAlreadySlashed(bytes32 taskId, address accused);

    /// @notice The caller already disputes this attestation.
    /// @param disputeId Its dispute.
    error AlreadyChallenged(uint256 disputeId);

    /// @notice The dispute id does not exist.
    /// @param disputeId The id.
    error UnknownDispute(uint256 disputeId);

    /// @notice The committee is drawn from the hash of the seed block, which exists only from the
    ///         next block on.
    /// @param drawableFrom The first block in which the draw succeeds.
    error DrawTooEarly(uint256 drawableFrom);

    /// @notice The committee of this dispute has been drawn already.
    error CommitteeAlreadyDrawn();

    /// @notice Only members of the dispute's committee vote.
    /// @param account The caller.
    error NotCommitteeMember(address account);

    /// @notice The voting window of the dispute has closed.
    /// @param deadline The deadline.
    error VotingClosed(uint64 deadline);

    /// @notice The voting window is still open.
    /// @param deadline The deadline.
    error VotingOpen(uint64 deadline);

    /// @notice The member already voted.
    /// @param account The member.
    error AlreadyVoted(address account);

    /// @notice The dispute was already resolved.
    error DisputeResolvedAlready();

    /// @notice Constructor parameters are inconsistent.
    error InvalidConfig();

    /// @notice Add stake (pulls tokens from the caller); reaching the minimum lists the caller.
    /// @param amount Amount in token base units.
    function stake(uint256 amount) external;

    /// @notice Move active stake into unbonding; restarts the unbonding delay for all unbonding
    ///         stake. Falling below the minimum delists the caller.
    /// @param amount Amount in token base units.
    function requestUnstake(uint256 amount) external;

    /// @notice Withdraw all unbonding stake after its release time.
    function withdraw() external;

    /// @notice Attest a task result (eligible validators only, once per task).
    /// @param taskId The task.
    /// @param resultHash The result hash the validator computed.
    function attest(bytes32 taskId, bytes32 resultHash) external;

    /// @notice Challenge another validator's attestation with the caller's own, different,
    ///         attestation of the same task. Opens only within attestationWindow of the accused's
    ///         attestation; each validator may challenge one attestation once, and several
    ///         challengers may dispute the same attestation side by side.
    /// @param taskId The task.
    /// @param accused The validator whose attestation is challenged.
    /// @param resultHash The challenger's attested result.
    /// @return disputeId The new dispute id.
    function openDispute(bytes32 taskId, address accused, bytes32 resultHash) external returns (uint256 disputeId);

    /// @notice Draw the dispute's committee: committeeSize eligible validators (neither the accused
    ///         nor the challenger), stake-weighted, seeded by the hash of the dispute's draw block.
    ///         Anyone may call, from the block after the draw block until the voting deadline; the
    ///         caller cannot change the outcome. If the draw block is more than 256 blocks old its
    ///         hash is gone: the current block becomes the draw block (CommitteeDrawDeferred) and
    ///         nothing is drawn yet.
    /// @param disputeId The dispute.
    /// @return members The committee (empty when deferred).
    function drawCommittee(uint256 disputeId) external returns (address[] memory members);

    /// @notice Vote in a dispute as a member of its committee, with the member's own re-executed result.
    /// @param disputeId The dispute.
    /// @param resultHash The member's result.
    function vote(uint256 disputeId, bytes32 resultHash) external;

    /// @notice Resolve a dispute after its deadline (anyone). Without quorum (committee members
    ///         holding more than half the committee's weight voted) nobody is slashed. Otherwise the
    ///         side with more committee stake wins, a tie upholding the accused (the accused's and
    ///         the challenger's own results count with equal weight and cancel out); the losing
    ///         party (the accused at most once per attestation) and the members who voted with it
    ///         are slashed, and the slashed stake goes to the winning party, the winning members
    ///         and the treasury.
    /// @param disputeId The dispute.
    function resolve(uint256 disputeId) external;

    /// @notice Pick up to `count` distinct eligible validators, stake-weighted, from `seed`; fewer
    ///         when fewer are eligible (never reverts for that).
    /// @dev The seed decides everything; on a chain whose block producer is a party (any local
    ///      chain) a seed from block data can be ground. Use a seed neither party controls alone,
    ///      e.g. keccak(job id, a blockhash after the job was funded) on a public chain.
    /// @param seed The randomness.
    /// @param count How many to pick.
    /// @return selected The chosen validators in pick order.
    function selectValidators(bytes32 seed, uint256 count) external view returns (address[] memory selected);

    /// @notice Whether `account` has at least the minimum active stake (is in the eligible set).
    /// @param account The account.
    /// @return True for an eligible validator.
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

    /// @notice A validator's attestation of a task with its time and slashing state.
    /// @param taskId The task.
    /// @param validator The validator.
    /// @return The attestation record (all zero if none).
    function attestationInfo(bytes32 taskId, address validator) external view returns (Attestation memory);

    /// @notice The dispute `challenger` opened over `accused`'s attestation of a task (0 if none).
    /// @param taskId The task.
    /// @param accused The accused.
    /// @param challenger The challenger.
    /// @return The dispute id.
    function challengeOf(bytes32 taskId, address accused, address challenger) external view returns (uint256);

    /// @notice A dispute and its sides.
    /// @param disputeId The dispute.
    /// @return dispute The dispute record.
    /// @return supporters The accused, then the committee members who voted for its result.
    /// @return opponents The challenger, then the committee members who voted against it.
    function disputeOf(uint256 disputeId)
        external
        view
        returns (Dispute memory dispute, address[] memory supporters, address[] memory opponents);

    /// @notice The committee of a dispute (empty until drawn).
    /// @param disputeId The dispute.
    /// @return members The members in draw order.
    /// @return weights Each member's voting weight.
    /// @return ballots Each member's vote so far.
    function committeeOf(uint256 disputeId)
        external
        view
        returns (address[] memory members, uint256[] memory weights, Ballot[] memory ballots);

    /// @notice The eligible set: every account whose active stake is at least the minimum.
    /// @return The list (order changes as accounts join and leave).
    function validators() external view returns (address[] memory);
}
