// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IJobEscrow
/// @notice Escrowed jobs (training and other deliverables), after the Agentic Commerce draft:
///         Open -> Funded -> Submitted -> Completed | Rejected | Expired.
interface IJobEscrow {
    /// @notice Where a job stands.
    enum Status {
        None,
        Open,
        Funded,
        Submitted,
        Completed,
        Rejected,
        Expired
    }

    /// @notice One job.
    /// @param client Who pays.
    /// @param deadline After this time the job can be expired and refunded; a submission moves it
    ///        to at least submission time + evaluationWindow.
    /// @param status Lifecycle state.
    /// @param evaluatorFeeBps Evaluator's fee in basis points of the budget, paid on completion.
    /// @param provider Who does the work.
    /// @param budget Price in token base units (escrowed from Funded on).
    /// @param evaluator The validator that completes or rejects.
    /// @param modelId The model whose lineage earns royalties (0 for none).
    /// @param specHash Hash of the job specification.
    /// @param deliverable Hash of the submitted artifact (and metrics).
    /// @param reason Hash of the evaluator's reasoning.
    struct Job {
        address client;
        uint64 deadline;
        Status status;
        uint16 evaluatorFeeBps;
        address provider;
        uint96 budget;
        address evaluator;
        uint96 modelId;
        bytes32 specHash;
        bytes32 deliverable;
        bytes32 reason;
    }

    /// @notice What a client fixes when creating a job.
    /// @param provider Who does the work.
    /// @param evaluator An active validator (neither the provider nor the client).
    /// @param deadline Expiry time (must be in the future).
    /// @param budget Initial price (may be changed with setBudget while Open).
    /// @param modelId The model whose lineage earns royalties (0 for none).
    /// @param evaluatorFeeBps Evaluator fee in basis points (at most MAX_EVALUATOR_FEE_BPS).
    /// @param specHash Hash of the job specification.
    struct JobSpec {
        address provider;
        address evaluator;
        uint64 deadline;
        uint96 budget;
        uint96 modelId;
        uint16 evaluatorFeeBps;
        bytes32 specHash;
    }

    /// @notice A job was created (Open).
    /// @param jobId The job.
    /// @param client The client.
    /// @param provider The provider.
    /// @param evaluator The evaluator.
    /// @param budget The initial budget.
    /// @param deadline The deadline.
    event JobCreated(
        uint256 indexed jobId,
        address indexed client,
        address indexed provider,
        address evaluator,
        uint256 budget,
        uint64 deadline
    );

    /// @notice The budget of an Open job changed.
    /// @param jobId The job.
    /// @param budget The new budget.
    event BudgetSet(uint256 indexed jobId, uint256 budget);

    /// @notice The client escrowed the budget (Funded).
    /// @param jobId The job.
    /// @param amount Amount escrowed.
    event JobFunded(uint256 indexed jobId, uint256 amount);

    /// @notice The provider submitted the deliverable (Submitted).
    /// @param jobId The job.
    /// @param deliverable Hash of the artifact.
    /// @param deadline The job's deadline now: no refund before it, so the evaluator has at least
    ///        evaluationWindow to judge.
    event JobSubmitted(uint256 indexed jobId, bytes32 deliverable, uint64 deadline);

    /// @notice The evaluator accepted the work and the budget was paid out (Completed).
    /// @param jobId The job.
    /// @param reason Hash of the evaluator's reasoning.
    /// @param score Quality score 0-100 recorded as the provider's receipt.
    /// @param evaluatorFee Paid to the evaluator.
    /// @param royalties Paid along the model's lineage.
    /// @param providerAmount Paid to the provider.
    event JobCompleted(
        uint256 indexed jobId,
        bytes32 reason,
        uint8 score,
        uint256 evaluatorFee,
        uint256 royalties,
        uint256 providerAmount
    );

    /// @notice The job was rejected; any escrow went back to the client (Rejected).
    /// @param jobId The job.
    /// @param by Who rejected (client while Open, evaluator afterwards).
    /// @param reason Hash of the reasoning.
    /// @param refunded Amount returned to the client.
    event JobRejected(uint256 indexed jobId, address indexed by, bytes32 reason, uint256 refunded);

    /// @notice The deadline passed and any escrow went back to the client (Expired).
    /// @param jobId The job.
    /// @param refunded Amount returned to the client.
    event JobExpired(uint256 indexed jobId, uint256 refunded);

    /// @notice The job id does not exist.
    /// @param jobId The id.
    error UnknownJob(uint256 jobId);

    /// @notice The job is not in a status that allows this call.
    /// @param jobId The job.
    /// @param status Its current status.
    error WrongStatus(uint256 jobId, Status status);

    /// @notice Only the client may do this.
    /// @param caller The caller.
    error NotClient(address caller);

    /// @notice Only the provider may do this.
    /// @param caller The caller.
    error NotProvider(address caller);

    /// @notice Only the evaluator may do this.
    /// @param caller The caller.
    error NotEvaluator(address caller);

    /// @notice Only the client or the provider may do this.
    /// @param caller The caller.
    error NotClientOrProvider(address caller);

    /// @notice The budget differs from what the client expected to pay.
    /// @param expected What the client expected.
    /// @param actual The job's budget.
    error BudgetMismatch(uint256 expected, uint256 actual);

    /// @notice A job cannot be funded with a zero budget.
    error ZeroBudget();

    /// @notice The deadline has passed.
    /// @param deadline The deadline.
    error DeadlinePassed(uint64 deadline);

    /// @notice The deadline has not passed yet.
    /// @param deadline The deadline.
    error NotExpired(uint64 deadline);

    /// @notice The deadline is not in the future.
    /// @param deadline The deadline given.
    error InvalidDeadline(uint64 deadline);

    /// @notice A required address was zero.
    error ZeroAddress();

    /// @notice The evaluator is not an active validator.
    /// @param evaluator The evaluator.
    error EvaluatorNotValidator(address evaluator);

    /// @notice The evaluator may not be the provider.
    error EvaluatorIsProvider();

    /// @notice The evaluator may not be the client.
    error EvaluatorIsClient();

    /// @notice The evaluation window must be longer than zero.
    error ZeroEvaluationWindow();

    /// @notice The evaluator fee exceeds MAX_EVALUATOR_FEE_BPS.
    /// @param feeBps The fee given.
    error FeeTooHigh(uint256 feeBps);

    /// @notice The model id does not exist in the ModelRegistry.
    /// @param modelId The id.
    error UnknownModelId(uint256 modelId);

    /// @notice A score above 100 was given.
    /// @param score The score.
    error ScoreOutOfRange(uint8 score);

    /// @notice Create an Open job with the caller as client.
    /// @param spec The job's parties, terms and specification hash.
    /// @return jobId The new job id (ids start at 1).
    function createJob(JobSpec calldata spec) external returns (uint256 jobId);

    /// @notice Change the budget of an Open job (client or provider: the negotiated price).
    /// @param jobId The job.
    /// @param budget The new budget.
    function setBudget(uint256 jobId, uint256 budget) external;

    /// @notice Escrow the budget (client only, before the deadline).
    /// @param jobId The job.
    /// @param expectedBudget Must equal the budget, guarding against a price changed meanwhile.
    function fund(uint256 jobId, uint256 expectedBudget) external;

    /// @notice Submit the deliverable (provider only, Funded, before the deadline); moves the
    ///         deadline to at least now + evaluationWindow.
    /// @param jobId The job.
    /// @param deliverable Hash of the artifact and metrics.
    function submit(uint256 jobId, bytes32 deliverable) external;

    /// @notice Accept the work and pay out: evaluator fee, lineage royalties, provider remainder
    ///         (evaluator only, Submitted). Records the provider's receipt in the AgentRegistry.
    /// @param jobId The job.
    /// @param reason Hash of the evaluator's reasoning.
    /// @param score Quality score 0-100.
    function complete(uint256 jobId, bytes32 reason, uint8 score) external;

    /// @notice Reject the job: the client while Open; the evaluator while Funded or Submitted
    ///         (refunds the escrow to the client).
    /// @param jobId The job.
    /// @param reason Hash of the reasoning.
    function reject(uint256 jobId, bytes32 reason) external;

    /// @notice After the deadline, expire an Open, Funded or Submitted job and refund the client.
    ///         Anyone may call. For a Submitted job the deadline is at least submission +
    ///         evaluationWindow, so the refund cannot front-run the evaluator's verdict.
    /// @param jobId The job.
    function claimRefund(uint256 jobId) external;

    /// @notice A job by id.
    /// @param jobId The job.
    /// @return The job record.
    function getJob(uint256 jobId) external view returns (Job memory);

    /// @notice Number of jobs created so far (also the highest id).
    /// @return The count.
    function jobCount() external view returns (uint256);
}
