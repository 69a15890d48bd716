// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title RoyaltyMath
/// @notice Pure basis-point arithmetic shared by the settlement contracts.
/// @dev Every share is rounded down; callers give the rounding remainder to one designated
///      recipient (the payee of a split), so a split never creates or loses a wei.
library RoyaltyMath {
    /// @notice One hundred percent in basis points.
    uint256 internal constant BPS = 10_000;

    /// @notice The shares of one lineage add up to more than 100%.
    /// @param totalBps The sum that was given.
    error SharesExceedTotal(uint256 totalBps);

    /// @notice `amount * bps / 10_000`, rounded down.
    /// @param amount The amount in token base units.
    /// @param bps The share in basis points (at most 10_000 for a meaningful result).
    /// @return The share in token base units.
    function portion(uint256 amount, uint256 bps) internal pure returns (uint256) {
        return (amount * bps) / BPS;
    }

    /// @notice Check that two lists of basis-point shares add up to at most 100%.
    /// @param first The first list (e.g. parent shares).
    /// @param second The second list (e.g. contributor shares).
    function requireWithinTotal(uint16[] calldata first, uint16[] calldata second) internal pure {
        uint256 total = 0;
        for (uint256 i = 0; i < first.length; ++i) {
            total += first[i];
        }
        for (uint256 i = 0; i < second.length; ++i) {
            total += second[i];
        }
        if (total > BPS) revert SharesExceedTotal(total);
    }
}
