// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IFederatedRewards
/// @notice Rewards for federated-learning contributions: a sponsor escrows a budget, a named
///         aggregator posts one Merkle root of {account: amount} per training round, contributors
///         (or anyone for them) claim their leaf, and the sponsor takes back what was never posted
///         after the deadline and what was never claimed after the claim window.
/// @dev Leaves are OpenZeppelin standard-Merkle-tree leaves over
///      (uint256 jobId, uint256 round, address account, uint256 amount):
///      keccak256(bytes.concat(keccak256(abi.encode(jobId, round, account, amount)))), in a tree
///      hashed with sorted pairs. Binding job and round into the leaf means a leaf proves nothing
///      against another round's or another job's root.
///      Time: roots may be posted while block.timestamp < deadline; claims while
///      block.timestamp < claimDeadline (deadline + claimWindow); the unposted budget is refundable
///      from deadline on, and everything unclaimed from claimDeadline on.
interface IFederatedRewards {
    /// @notice One federated job, in five storage slots.
    /// @param sponsor Who escrowed the budget and gets refunds.
    /// @param deadline Roots may be posted while block.timestamp < deadline.
    /// @param aggregator The only account that may post roots.
    /// @param budget Escrowed reward budget, token base units.
    /// @param posted Sum of the totals of every posted root (never above budget).
    /// @param claimed Sum paid out by claims (never above posted).
    /// @param claimDeadline Claims are accepted while block.timestamp < claimDeadline.
    /// @param refunded Sum returned to the sponsor (never above budget - claimed).
    /// @param specHash Hash of the off-chain job specification (model, rounds, privacy terms).
    struct Job {
        address sponsor;
        uint64 deadline;
        address aggregator;
        uint96 budget;
        uint96 posted;
        uint96 claimed;
        uint64 claimDeadline;
        uint96 refunded;
        bytes32 specHash;
    }

    /// @notice One posted round.
    /// @param root The Merkle root of the round's rewards (zero while not posted).
    /// @param total What the round's leaves may pay in total (reserved from the budget).
    /// @param claimed Paid so far from this round.
    struct Round {
        bytes32 root;
        uint96 total;
        uint96 claimed;
    }

    /// @notice One leaf to claim, with its proof (claimMany).
    /// @param jobId The job.
    /// @param round The round whose root contains the leaf.
    /// @param account Who is paid.
    /// @param amount How much the leaf pays.
    /// @param proof Sibling hashes from the leaf up to the root.
    struct Claim {
        uint256 jobId;
        uint256 round;
        address account;
        uint256 amount;
        bytes32[] proof;
    }

    /// @notice A sponsor escrowed a budget for a federated job.
    /// @param jobId The job.
    /// @param sponsor The sponsor.
    /// @param aggregator Who may post roots.
    /// @param budget Amount escrowed.
    /// @param deadline Roots may be posted before this time.
    /// @param claimDeadline Claims may be made before this time.
    /// @param specHash Hash of the job specification.
    event JobCreated(
        uint256 indexed jobId,
        address indexed sponsor,
        address indexed aggregator,
        uint256 budget,
        uint64 deadline,
        uint64 claimDeadline,
        bytes32 specHash
    );

    /// @notice The aggregator posted a round's reward root.
    /// @param jobId The job.
    /// @param round The round.
    /// @param root The Merkle root.
    /// @param total What the round pays in total.
    event RootPosted(uint256 indexed jobId, uint256 indexed round, bytes32 root, uint256 total);

    /// @notice A leaf was claimed and its amount paid to its account.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account paid.
    /// @param amount Amount paid.
    event RewardClaimed(uint256 indexed jobId, uint256 indexed round, address indexed account, uint256 amount);

    /// @notice claimMany passed over a leaf that was already claimed (the rest of the batch settled).
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account whose leaf was claimed before.
    event ClaimSkipped(uint256 indexed jobId, uint256 indexed round, address indexed account);

    /// @notice The sponsor took back unposted (after the deadline) or unclaimed (after the claim
    ///         window) budget.
    /// @param jobId The job.
    /// @param sponsor The sponsor.
    /// @param amount Amount returned by this refund.
    /// @param closed True once the claim window is over: nothing is left in the job.
    event JobRefunded(uint256 indexed jobId, address indexed sponsor, uint256 amount, bool closed);

    /// @notice A required address was zero.
    error ZeroAddress();

    /// @notice A job needs a budget above zero.
    error ZeroBudget();

    /// @notice The deadline is not in the future (or too far to add a claim window to).
    /// @param deadline The deadline given.
    error InvalidDeadline(uint64 deadline);

    /// @notice The claim window is shorter than minClaimWindow or longer than MAX_CLAIM_WINDOW.
    /// @param claimWindow The window given.
    error InvalidClaimWindow(uint64 claimWindow);

    /// @notice The aggregator is neither the sponsor nor an eligible validator.
    /// @param aggregator The account named.
    error AggregatorNotValidator(address aggregator);

    /// @notice The job id does not exist.
    /// @param jobId The id.
    error UnknownJob(uint256 jobId);

    /// @notice Only the job's sponsor may do this.
    /// @param caller The caller.
    error NotSponsor(address caller);

    /// @notice Only the job's aggregator may do this.
    /// @param caller The caller.
    error NotAggregator(address caller);

    /// @notice The job's deadline has passed: no more roots.
    /// @param deadline The deadline.
    error DeadlinePassed(uint64 deadline);

    /// @notice The job's deadline has not passed yet: no refund.
    /// @param deadline The deadline.
    error DeadlineNotPassed(uint64 deadline);

    /// @notice A root of zero (zero marks an unposted round).
    error ZeroRoot();

    /// @notice A root must reserve a total above zero.
    error ZeroTotal();

    /// @notice The round already has a root.
    /// @param jobId The job.
    /// @param round The round.
    error RoundAlreadyPosted(uint256 jobId, uint256 round);

    /// @notice The root's total is more than the budget not yet posted.
    /// @param remaining Budget not yet posted.
    /// @param total The total given.
    error ExceedsBudget(uint256 remaining, uint256 total);

    /// @notice The round has no root.
    /// @param jobId The job.
    /// @param round The round.
    error UnknownRound(uint256 jobId, uint256 round);

    /// @notice The claim window is over.
    /// @param claimDeadline The job's claim deadline.
    error ClaimWindowClosed(uint64 claimDeadline);

    /// @notice The account's leaf of this round was claimed already.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account.
    error AlreadyClaimed(uint256 jobId, uint256 round, address account);

    /// @notice The proof does not lead from the leaf to the round's root.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account claimed for.
    error InvalidProof(uint256 jobId, uint256 round, address account);

    /// @notice The round's leaves pay more than the total its root reserved (a faulty tree).
    /// @param unclaimed What the round has left.
    /// @param amount The leaf's amount.
    error ExceedsRoundTotal(uint256 unclaimed, uint256 amount);

    /// @notice Nothing is refundable now.
    /// @param jobId The job.
    error NothingToRefund(uint256 jobId);

    /// @notice claimMany was given no claims.
    error EmptyBatch();

    /// @notice Escrow `budget` from the caller (it approved this contract) for a new federated job.
    /// @param aggregator Who may post roots: the caller itself or an eligible validator.
    /// @param budget Reward budget in token base units.
    /// @param deadline Roots may be posted before this time (must be in the future).
    /// @param claimWindow How long after the deadline claims stay open (minClaimWindow..MAX_CLAIM_WINDOW).
    /// @param specHash Hash of the off-chain job specification.
    /// @return jobId The new job id (ids start at 1).
    function createJob(address aggregator, uint256 budget, uint64 deadline, uint64 claimWindow, bytes32 specHash)
        external
        returns (uint256 jobId);

    /// @notice Post the reward root of one round (aggregator only, before the deadline, once per
    ///         round); reserves `total` from the budget.
    /// @param jobId The job.
    /// @param round The round number (any value, each once).
    /// @param root Merkle root of the round's leaves.
    /// @param total Sum of the round's leaf amounts; claims from the round never pay more.
    function postRoot(uint256 jobId, uint256 round, bytes32 root, uint256 total) external;

    /// @notice Pay `account` its leaf of a posted round. Anyone may submit; the tokens always go to
    ///         `account`. Each account's leaf of a round pays once, until the claim deadline.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account the leaf pays.
    /// @param amount The leaf's amount.
    /// @param proof Sibling hashes from the leaf up to the round's root.
    function claim(uint256 jobId, uint256 round, address account, uint256 amount, bytes32[] calldata proof)
        external;

    /// @notice Claim several leaves (any jobs, rounds and accounts) in one transaction. An entry
    ///         whose account was already paid for that round (for instance by someone claiming it
    ///         ahead of the batch, or a repeat within the batch) is skipped (ClaimSkipped) without
    ///         further checks; any other invalid entry reverts the whole batch.
    /// @param claims The leaves with their proofs.
    function claimMany(Claim[] calldata claims) external;

    /// @notice Return to the sponsor (sponsor only) what it can take back now: from the deadline
    ///         on, the budget never posted in a root; from the claim deadline on, also every posted
    ///         reward left unclaimed.
    /// @param jobId The job.
    function refund(uint256 jobId) external;

    /// @notice A job by id.
    /// @param jobId The job.
    /// @return The job record.
    function getJob(uint256 jobId) external view returns (Job memory);

    /// @notice Number of jobs created so far (also the highest id).
    /// @return The count.
    function jobCount() external view returns (uint256);

    /// @notice A round of a job (root zero when not posted).
    /// @param jobId The job.
    /// @param round The round.
    /// @return The round record.
    function getRound(uint256 jobId, uint256 round) external view returns (Round memory);

    /// @notice Whether `account`'s leaf of a round has been claimed.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account.
    /// @return True once claimed.
    function isClaimed(uint256 jobId, uint256 round, address account) external view returns (bool);

    /// @notice Budget not yet reserved by a posted root (what the aggregator may still post).
    /// @param jobId The job.
    /// @return budget - posted.
    function remainingBudget(uint256 jobId) external view returns (uint256);

    /// @notice What refund would pay the sponsor now (0 before the deadline).
    /// @param jobId The job.
    /// @return The amount.
    function refundable(uint256 jobId) external view returns (uint256);

    /// @notice Whether a leaf proves against its round's posted root (claimed or not).
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account.
    /// @param amount The amount.
    /// @param proof Sibling hashes from the leaf up to the root.
    /// @return True when the round is posted and the proof leads to its root.
    function verifyClaim(uint256 jobId, uint256 round, address account, uint256 amount, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice The standard-Merkle-tree leaf of a reward.
    /// @param jobId The job.
    /// @param round The round.
    /// @param account The account.
    /// @param amount The amount.
    /// @return keccak256(bytes.concat(keccak256(abi.encode(jobId, round, account, amount)))).
    function leafHash(uint256 jobId, uint256 round, address account, uint256 amount) external pure returns (bytes32);
}
