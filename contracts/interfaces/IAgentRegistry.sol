// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IAgentRegistry
/// @notice On-chain identity of agora agents and their receipt-backed reputation.
/// @dev Reputation is written only by recorder contracts (JobEscrow, PaymentChannels) when a paid
///      settlement happens, so every data point is backed by tokens that actually moved. The recorder set
///      is fixed once at deployment (`freezeRecorders`) and can never change afterwards.
interface IAgentRegistry {
    /// @notice What part an agent plays in the economy.
    enum Role {
        User,
        Advertiser,
        Seller,
        Validator
    }

    /// @notice An agent's identity record.
    /// @param agentAddress The uAgents address (agent1...) of the agent.
    /// @param metadataURI Where the agent card or profile lives.
    /// @param role The agent's role.
    /// @param registeredAt Block timestamp of registration (0 if not registered).
    struct Agent {
        string agentAddress;
        string metadataURI;
        Role role;
        uint64 registeredAt;
    }

    /// @notice Aggregated paid receipts of one account, packed in one storage slot.
    /// @dev Each field saturates at its maximum instead of overflowing, so recording a receipt can
    ///      never make a settlement revert (uint112 holds millions of times the AGT supply).
    /// @param count Number of receipts.
    /// @param volume Total amount paid across receipts, in token base units.
    /// @param scoredVolume Sum over receipts of floor(amount * score / 100).
    struct Reputation {
        uint32 count;
        uint112 volume;
        uint112 scoredVolume;
    }

    /// @notice An account registered or re-registered its agent identity.
    /// @param owner The account that owns the identity.
    /// @param agentAddress The uAgents address.
    /// @param role The declared role.
    /// @param metadataURI The metadata URI.
    event AgentRegistered(address indexed owner, string agentAddress, Role role, string metadataURI);

    /// @notice The owner changed an agent's metadata URI.
    /// @param owner The identity owner.
    /// @param metadataURI The new URI.
    event MetadataUpdated(address indexed owner, string metadataURI);

    /// @notice The owner proposed a settlement contract as a recorder (it records once frozen).
    /// @param recorder The contract.
    event RecorderAdded(address indexed recorder);

    /// @notice The recorder set was fixed for good and ownership given up.
    /// @param recorders Every contract that may record receipts, now and forever.
    event RecordersFrozen(address[] recorders);

    /// @notice A paid settlement was recorded for `subject`.
    /// @param subject The account that was paid (provider / channel recipient).
    /// @param recorder The settlement contract that recorded it.
    /// @param jobRef The job id or claim reference inside the recorder.
    /// @param score Quality score 0-100.
    /// @param amount Amount paid in token base units.
    event ReceiptRecorded(
        address indexed subject, address indexed recorder, bytes32 indexed jobRef, uint8 score, uint256 amount
    );

    /// @notice The caller is not an allowed recorder contract.
    /// @param caller The caller.
    error NotRecorder(address caller);

    /// @notice A score above 100 was given.
    /// @param score The score.
    error ScoreOutOfRange(uint8 score);

    /// @notice The uAgents address was empty.
    error EmptyAgentAddress();

    /// @notice The account has no registered identity.
    /// @param owner The account.
    error AgentNotRegistered(address owner);

    /// @notice The zero address was given where an account is required.
    error ZeroAddress();

    /// @notice The recorder set is already frozen: it can never change again.
    error RecordersAlreadyFrozen();

    /// @notice A recorder must be a contract (a settlement contract whose code anyone can read).
    /// @param recorder The address without code.
    error RecorderNotContract(address recorder);

    /// @notice The contract was already proposed as a recorder.
    /// @param recorder The contract.
    error RecorderAlreadyAdded(address recorder);

    /// @notice The recorder list is full.
    /// @param max The most recorders a registry can have.
    error TooManyRecorders(uint256 max);

    /// @notice Freezing an empty recorder set would leave a registry that can never record.
    error NoRecorders();

    /// @notice Register (or re-register) the caller's agent identity.
    /// @param agentAddress The uAgents address of the agent.
    /// @param role The agent's role.
    /// @param metadataURI Where the agent card lives.
    function register(string calldata agentAddress, Role role, string calldata metadataURI) external;

    /// @notice Change the caller's metadata URI.
    /// @param metadataURI The new URI.
    function updateMetadata(string calldata metadataURI) external;

    /// @notice Propose a settlement contract as a recorder (owner only, before `freezeRecorders`).
    /// @dev A proposed recorder cannot record until the set is frozen.
    /// @param recorder The contract (must have code).
    function addRecorder(address recorder) external;

    /// @notice Make the proposed recorders the recorder set for good, and renounce ownership (owner only, once).
    function freezeRecorders() external;

    /// @notice Record a paid receipt for `subject` (recorder contracts only).
    /// @param subject The paid account.
    /// @param score Quality score 0-100.
    /// @param amount Amount paid in token base units.
    /// @param jobRef The job id or claim reference.
    function recordReceipt(address subject, uint8 score, uint256 amount, bytes32 jobRef) external;

    /// @notice The identity record of an account.
    /// @param owner The account.
    /// @return The record (registeredAt == 0 when unregistered).
    function agentOf(address owner) external view returns (Agent memory);

    /// @notice Whether an account may record receipts.
    /// @param recorder The account.
    /// @return True when allowed.
    function isRecorder(address recorder) external view returns (bool);

    /// @notice Every recorder proposed so far (after freezing: exactly the contracts that may record).
    /// @return The recorder contracts, in the order they were added.
    function recorders() external view returns (address[] memory);

    /// @notice Whether the recorder set is fixed (only then can receipts be recorded).
    /// @return True once `freezeRecorders` ran.
    function recordersFrozen() external view returns (bool);

    /// @notice Raw reputation aggregates of an account.
    /// @param subject The account.
    /// @return The aggregates.
    function reputationOf(address subject) external view returns (Reputation memory);

    /// @notice Volume-weighted average score of an account in basis points of 100 (0-10_000).
    /// @param subject The account.
    /// @return count Number of receipts.
    /// @return volume Total paid volume.
    /// @return scoreBps Volume-weighted score scaled to 0-10_000 (0 with no volume).
    function reputation(address subject) external view returns (uint256 count, uint256 volume, uint256 scoreBps);
}
