// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title AgoraToken (AGT)
/// @notice The settlement token of the agora economy: a fixed-supply ERC-20 with EIP-2612 permit.
/// @dev The whole supply is minted once to `treasury`; nothing can mint or burn afterwards,
///      so the total supply is an invariant that economy reports check.
contract AgoraToken is ERC20, ERC20Permit {
    /// @notice The treasury address was the zero address.
    error ZeroTreasury();

    /// @param treasury Receives the whole supply (a faucet on local chains).
    /// @param supply Total supply in base units (18 decimals).
    constructor(address treasury, uint256 supply) ERC20("Agora Token", "AGT") ERC20Permit("Agora Token") {
        if (treasury == address(0)) revert ZeroTreasury();
        _mint(treasury, supply);
    }
}
