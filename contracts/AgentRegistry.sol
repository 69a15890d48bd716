// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IAgentRegistry} from "./interfaces/IAgentRegistry.sol";

/// @title AgentRegistry
/// @notice Agent identities and receipt-backed reputation.
/// @dev Anyone may register an identity, but only recorder contracts can write reputation, and they do so
///      only inside a settlement that moves tokens. The recorder set is fixed once, at deployment: the owner
///      (the deployer) proposes the settlement contracts (JobEscrow, PaymentChannels), then `freezeRecorders`
///      makes exactly those recorders and gives up ownership in the same call. Until then no address can
///      record at all, and afterwards nobody can add, remove or replace a recorder, so every receipt ever
///      recorded was written by a contract whose code anyone can read in `recorders()`.
contract AgentRegistry is IAgentRegistry, Ownable {
    uint8 private constant MAX_SCORE = 100;
    /// @notice Most recorders a registry can be frozen with (keeps freezing bounded).
    uint256 public constant MAX_RECORDERS = 8;

    mapping(address owner => Agent) private _agents;
    mapping(address subject => Reputation) private _reputations;
    mapping(address recorder => bool) private _recorders;
    address[] private _recorderList;
    bool private _frozen;

    /// @param initialOwner Proposes the recorders and freezes them (the deployer, which wires the settlement
    ///        contracts); it has no power left after `freezeRecorders`.
    constructor(address initialOwner) Ownable(initialOwner) {}

    /// @inheritdoc IAgentRegistry
    function register(string calldata agentAddress, Role role, string calldata metadataURI) external {
        if (bytes(agentAddress).length == 0) revert EmptyAgentAddress();
        _agents[msg.sender] = Agent({
            agentAddress: agentAddress,
            metadataURI: metadataURI,
            role: role,
            registeredAt: uint64(block.timestamp)
        });
        emit AgentRegistered(msg.sender, agentAddress, role, metadataURI);
    }

    /// @inheritdoc IAgentRegistry
    function updateMetadata(string calldata metadataURI) external {
        Agent storage agent = _agents[msg.sender];
        if (agent.registeredAt == 0) revert AgentNotRegistered(msg.sender);
        agent.metadataURI = metadataURI;
        emit MetadataUpdated(msg.sender, metadataURI);
    }

    /// @inheritdoc IAgentRegistry
    function addRecorder(address recorder) external {
        if (_frozen) revert RecordersAlreadyFrozen();
        _checkOwner();
        if (recorder == address(0)) revert ZeroAddress();
        if (recorder.code.length == 0) revert RecorderNotContract(recorder);
        uint256 count = _recorderList.length;
        for (uint256 i; i < count; ++i) {
            if (_recorderList[i] == recorder) revert RecorderAlreadyAdded(recorder);
        }
        if (count == MAX_RECORDERS) revert TooManyRecorders(MAX_RECORDERS);
        _recorderList.push(recorder);
        emit RecorderAdded(recorder);
    }

    /// @inheritdoc IAgentRegistry
    function freezeRecorders() external {
        if (_frozen) revert RecordersAlreadyFrozen();
        _checkOwner();
        address[] memory list = _recorderList;
        if (list.length == 0) revert NoRecorders();
        _frozen = true;
        for (uint256 i; i < list.length; ++i) {
            _recorders[list[i]] = true;
        }
        emit RecordersFrozen(list);
        _transferOwnership(address(0));
    }

    /// @inheritdoc IAgentRegistry
    function recordReceipt(address subject, uint8 score, uint256 amount, bytes32 jobRef) external {
        if (!_recorders[msg.sender]) revert NotRecorder(msg.sender);
        if (score > MAX_SCORE) revert ScoreOutOfRange(score);
        Reputation storage rep = _reputations[subject];
        rep.count = uint32(_saturating(rep.count, 1, type(uint32).max));
        rep.volume = uint112(_saturating(rep.volume, amount, type(uint112).max));
        rep.scoredVolume = uint112(_saturating(rep.scoredVolume, (amount * score) / MAX_SCORE, type(uint112).max));
        emit ReceiptRecorded(subject, msg.sender, jobRef, score, amount);
    }

    /// @inheritdoc IAgentRegistry
    function agentOf(address owner) external view returns (Agent memory) {
        return _agents[owner];
    }

    /// @inheritdoc IAgentRegistry
    function isRecorder(address recorder) external view returns (bool) {
        return _recorders[recorder];
    }

    /// @inheritdoc IAgentRegistry
    function recorders() external view returns (address[] memory) {
        return _recorderList;
    }

    /// @inheritdoc IAgentRegistry
    function recordersFrozen() external view returns (bool) {
        return _frozen;
    }

    /// @inheritdoc IAgentRegistry
    function reputationOf(address subject) external view returns (Reputation memory) {
        return _reputations[subject];
    }

    /// @inheritdoc IAgentRegistry
    function reputation(address subject) external view returns (uint256 count, uint256 volume, uint256 scoreBps) {
        Reputation memory rep = _reputations[subject];
        count = rep.count;
        volume = rep.volume;
        scoreBps = volume == 0 ? 0 : (uint256(rep.scoredVolume) * 10_000) / volume;
    }

    function _saturating(uint256 current, uint256 add, uint256 max) private pure returns (uint256) {
        // current <= max always holds, so max - current cannot underflow.
        return add >= max - current ? max : current + add;
    }
}
