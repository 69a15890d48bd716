// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title IGroth16Verifier
/// @notice The verifier snarkjs generates for the conversion circuit (contracts/Groth16Verifier.sol).
/// @dev Public signals in the circuit's order: root, nullifier, campaignId, payee. pB holds each G2
///      coordinate as (c1, c0). The generated code returns false (does not revert) on a bad proof, on
///      a signal outside the scalar field and when the pairing precompile runs short of gas.
interface IGroth16Verifier {
    /// @notice Whether (pA, pB, pC) proves the conversion circuit for pubSignals.
    /// @param pA Proof point A (G1).
    /// @param pB Proof point B (G2, halves swapped).
    /// @param pC Proof point C (G1).
    /// @param pubSignals root, nullifier, campaignId, payee.
    /// @return valid True for a valid proof.
    function verifyProof(
        uint256[2] calldata pA,
        uint256[2][2] calldata pB,
        uint256[2] calldata pC,
        uint256[4] calldata pubSignals
    ) external view returns (bool valid);
}

/// @title IAdCampaigns
/// @notice Ad campaigns paid per provable conversion: an advertiser escrows a budget with a payout per
///         conversion and a publisher share; the merchant named at creation publishes Merkle roots of
///         conversion commitments; a user proves in zero knowledge that it knows the secret behind one
///         commitment of a published root and is paid at a payee address of its choice, without the
///         advertiser or the merchant learning which purchase (or which user) the claim comes from.
/// @dev Commitment (Merkle leaf) = Poseidon(secret, campaignId, salt); nullifier = Poseidon(secret,
///      campaignId), burned per campaign so a conversion pays once; the payee is a public input of the
///      proof, so a proof seen in the mempool cannot be redirected. Trees are Poseidon Merkle trees of
///      depth 20 (contracts/circuits/conversion.circom). Time: roots are published and conversions
///      claimed while block.timestamp < end; from end on the advertiser takes back what was not paid.
///      Claims must be sent with an explicit gas limit (~450k per claim): the verifier returns false,
///      so the claim reverts with InvalidProof, when the pairing runs short of gas, which misleads gas
///      estimation.
interface IAdCampaigns {
    /// @notice One campaign, in five storage slots.
    /// @param advertiser Who escrowed the budget and gets the refund.
    /// @param end Roots and claims are accepted while block.timestamp < end.
    /// @param publisherBps Publisher's share of each payout, in basis points.
    /// @param merchant The only account that may publish roots.
    /// @param payout Paid per conversion (user share + publisher share), token base units.
    /// @param publisher Receives the publisher share (may be zero when publisherBps is zero).
    /// @param budget Escrowed, token base units.
    /// @param spent Paid out by claims (never above budget).
    /// @param refunded Returned to the advertiser (never above budget - spent).
    /// @param creativeHash Hash of the off-chain creatives and targeting embeddings.
    struct Campaign {
        address advertiser;
        uint64 end;
        uint16 publisherBps;
        address merchant;
        uint96 payout;
        address publisher;
        uint96 budget;
        uint96 spent;
        uint96 refunded;
        bytes32 creativeHash;
    }

    /// @notice What an advertiser sets when creating a campaign.
    /// @param merchant Publishes roots of conversion commitments.
    /// @param publisher Receives the publisher share.
    /// @param budget Amount to escrow.
    /// @param payout Paid per conversion (1..budget).
    /// @param publisherBps Publisher's share of each payout (0..10000).
    /// @param end End of the campaign (roots and claims before it, refund from it on).
    /// @param creativeHash Hash of the off-chain creatives.
    struct CampaignTerms {
        address merchant;
        address publisher;
        uint256 budget;
        uint256 payout;
        uint16 publisherBps;
        uint64 end;
        bytes32 creativeHash;
    }

    /// @notice One conversion to claim (claimMany).
    /// @param campaignId The campaign.
    /// @param root A root the campaign's merchant published.
    /// @param nullifier Poseidon(secret, campaignId).
    /// @param payee Receives the user share.
    /// @param proof Groth16 proof: a.x, a.y, b (G2, halves swapped), c.x, c.y.
    struct ConversionClaim {
        uint256 campaignId;
        uint256 root;
        uint256 nullifier;
        address payee;
        uint256[8] proof;
    }

    /// @notice An advertiser escrowed a campaign budget.
    /// @param campaignId The campaign.
    /// @param advertiser The advertiser.
    /// @param merchant Who may publish roots.
    /// @param publisher Who receives the publisher share.
    /// @param budget Amount escrowed.
    /// @param payout Paid per conversion.
    /// @param publisherBps Publisher share in basis points.
    /// @param end End of the campaign.
    /// @param creativeHash Hash of the creatives.
    event CampaignCreated(
        uint256 indexed campaignId,
        address indexed advertiser,
        address indexed merchant,
        address publisher,
        uint256 budget,
        uint256 payout,
        uint16 publisherBps,
        uint64 end,
        bytes32 creativeHash
    );

    /// @notice The merchant published a root of conversion commitments.
    /// @param campaignId The campaign.
    /// @param root The Poseidon Merkle root.
    event RootPublished(uint256 indexed campaignId, uint256 indexed root);

    /// @notice A conversion was proven and paid.
    /// @param campaignId The campaign.
    /// @param nullifier The burned nullifier.
    /// @param payee Who received the user share.
    /// @param userAmount Paid to the payee.
    /// @param publisherAmount Paid to the publisher.
    event ConversionClaimed(
        uint256 indexed campaignId,
        uint256 indexed nullifier,
        address indexed payee,
        uint256 userAmount,
        uint256 publisherAmount
    );

    /// @notice claimMany passed over a conversion whose nullifier was already burned.
    /// @param campaignId The campaign.
    /// @param nullifier The nullifier claimed before.
    event ClaimSkipped(uint256 indexed campaignId, uint256 indexed nullifier);

    /// @notice The advertiser took back the unspent budget after the end.
    /// @param campaignId The campaign.
    /// @param advertiser The advertiser.
    /// @param amount Amount returned.
    event CampaignRefunded(uint256 indexed campaignId, address indexed advertiser, uint256 amount);

    /// @notice A required address was zero.
    error ZeroAddress();

    /// @notice A campaign needs a budget above zero.
    error ZeroBudget();

    /// @notice The payout is zero or above the budget.
    /// @param payout The payout given.
    error InvalidPayout(uint256 payout);

    /// @notice The publisher share is above 10000 basis points.
    /// @param bps The share given.
    error InvalidPublisherShare(uint16 bps);

    /// @notice The end is not in the future.
    /// @param end The end given.
    error InvalidEnd(uint64 end);

    /// @notice No campaign has this id.
    /// @param campaignId The id.
    error UnknownCampaign(uint256 campaignId);

    /// @notice Only the campaign's merchant may publish roots.
    /// @param caller The caller.
    error NotMerchant(address caller);

    /// @notice Only the campaign's advertiser may take the refund.
    /// @param caller The caller.
    error NotAdvertiser(address caller);

    /// @notice The campaign has ended: no more roots or claims.
    /// @param end The campaign's end.
    error CampaignEnded(uint64 end);

    /// @notice The campaign has not ended yet: no refund.
    /// @param end The campaign's end.
    error CampaignNotEnded(uint64 end);

    /// @notice A root must be a nonzero element of the BN254 scalar field.
    /// @param root The root given.
    error InvalidRoot(uint256 root);

    /// @notice The root was already published for this campaign.
    /// @param campaignId The campaign.
    /// @param root The root.
    error RootAlreadyPublished(uint256 campaignId, uint256 root);

    /// @notice The root was never published for this campaign by its merchant.
    /// @param campaignId The campaign.
    /// @param root The root.
    error UnknownRoot(uint256 campaignId, uint256 root);

    /// @notice The nullifier was already burned: the conversion was paid.
    /// @param campaignId The campaign.
    /// @param nullifier The nullifier.
    error NullifierUsed(uint256 campaignId, uint256 nullifier);

    /// @notice The campaign's remaining budget does not cover one payout.
    /// @param remaining What is left of the budget.
    error BudgetExhausted(uint256 remaining);

    /// @notice The proof does not prove (root, nullifier, campaignId, payee).
    /// @param campaignId The campaign.
    /// @param nullifier The nullifier claimed.
    error InvalidProof(uint256 campaignId, uint256 nullifier);

    /// @notice claimMany was called with no claims.
    error EmptyBatch();

    /// @notice Nothing is left to refund.
    /// @param campaignId The campaign.
    error NothingToRefund(uint256 campaignId);

    /// @notice Escrow `terms.budget` from the caller (the advertiser) and open a campaign.
    /// @param terms The campaign's terms.
    /// @return campaignId The new campaign's id (sequential from 1).
    function createCampaign(CampaignTerms calldata terms) external returns (uint256 campaignId);

    /// @notice Publish a root of conversion commitments (merchant only, before the end).
    /// @param campaignId The campaign.
    /// @param root The Poseidon Merkle root (a nonzero field element).
    function publishRoot(uint256 campaignId, uint256 root) external;

    /// @notice Prove a conversion against a published root, burn its nullifier and pay: the payee
    ///         gets payout minus the publisher share, the publisher the share. Anyone may send it.
    /// @param campaignId The campaign.
    /// @param root A root the merchant published for the campaign.
    /// @param nullifier Poseidon(secret, campaignId).
    /// @param payee Receives the user share (bound into the proof).
    /// @param proof Groth16 proof: a.x, a.y, b (G2, halves swapped), c.x, c.y.
    function claim(uint256 campaignId, uint256 root, uint256 nullifier, address payee, uint256[8] calldata proof)
        external;

    /// @notice Several claims in one transaction; an already-burned nullifier is skipped (so a batch
    ///         survives a front-run), any other failure reverts the batch.
    /// @param claims The conversions to claim.
    function claimMany(ConversionClaim[] calldata claims) external;

    /// @notice Return the unspent budget to the advertiser (advertiser only, from the end on).
    /// @param campaignId The campaign.
    function refund(uint256 campaignId) external;

    /// @notice The campaign's state.
    /// @param campaignId The campaign.
    /// @return The campaign.
    function getCampaign(uint256 campaignId) external view returns (Campaign memory);

    /// @notice Number of campaigns created (the last id).
    /// @return The count.
    function campaignCount() external view returns (uint256);

    /// @notice Whether the campaign's merchant published `root`.
    /// @param campaignId The campaign.
    /// @param root The root.
    /// @return True when published.
    function isRootPublished(uint256 campaignId, uint256 root) external view returns (bool);

    /// @notice Whether the nullifier was burned in the campaign.
    /// @param campaignId The campaign.
    /// @param nullifier The nullifier.
    /// @return True when the conversion was paid.
    function isNullifierUsed(uint256 campaignId, uint256 nullifier) external view returns (bool);

    /// @notice Budget not yet paid out or refunded.
    /// @param campaignId The campaign.
    /// @return The remaining budget.
    function remainingBudget(uint256 campaignId) external view returns (uint256);
}
