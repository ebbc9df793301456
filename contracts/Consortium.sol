// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {BatchCall} from "./utils/BatchCall.sol";

/// @title Consortium
/// @notice Members, roles and signing keys of the credtrace consortium, governed by an M-of-N quorum of
/// regulator organisations. Every governance write carries EIP-712 signatures checked here, so any relayer may
/// submit it; other contracts ask {isActiveSigner} before accepting a signed write.
contract Consortium is IConsortium, EIP712, BatchCall {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    uint8 private constant _REGULATOR = 1;
    uint8 private constant _ALL_ROLES = 127;
    bytes32 private constant _PROPOSAL_TYPEHASH =
        keccak256("Proposal(uint8 action,bytes32 member,bytes payload,uint256 nonce)");
    bytes32 private constant _APPROVAL_TYPEHASH = keccak256("Approval(bytes32 proposalId)");
    bytes32 private constant _REVOCATION_TYPEHASH = keccak256("KeyRevocation(bytes32 member,address key)");

    struct KeyRecord {
        bytes32 member;
        bool active;
    }

    mapping(bytes32 id => Member) private _members;
    mapping(bytes32 id => EnumerableSet.AddressSet) private _memberKeys;
    mapping(address key => KeyRecord) private _keys;
    mapping(bytes32 proposalId => ProposalInfo) private _proposals;
    mapping(bytes32 proposalId => EnumerableSet.Bytes32Set) private _approvers;
    uint64 private immutable _lifetime;
    uint16 private _threshold;
    uint256 private _activeRegulators;

    /// @notice Bootstraps the regulators (Active, role REGULATOR, one key each) and the approval threshold.
    /// @param regulatorIds `keccak256(bytes(uscc))` of each regulator organisation.
    /// @param regulatorNames Each regulator's name.
    /// @param regulatorKeys Each regulator's signing key.
    /// @param threshold_ Approvals a proposal needs, 1 to the number of regulators.
    /// @param proposalLifetime_ Seconds a proposal stays open.
    constructor(
        bytes32[] memory regulatorIds,
        string[] memory regulatorNames,
        address[] memory regulatorKeys,
        uint16 threshold_,
        uint64 proposalLifetime_
    ) EIP712("credtrace Consortium", "1") {
        uint256 count = regulatorIds.length;
        if (regulatorNames.length != count || regulatorKeys.length != count) revert ArrayLengthMismatch();
        if (proposalLifetime_ == 0) revert InvalidProposalLifetime(proposalLifetime_);
        _lifetime = proposalLifetime_;
        for (uint256 i; i < count; ++i) {
            address[] memory keys = new address[](1);
            keys[0] = regulatorKeys[i];
            _admit(regulatorIds[i], regulatorNames[i], _REGULATOR, keys);
        }
        _setThreshold(threshold_);
    }

    /// @inheritdoc IConsortium
    function propose(uint8 action, bytes32 member, bytes calldata payload, uint256 nonce, bytes calldata signature)
        external
        returns (bytes32 proposalId)
    {
        _checkShape(action, member, payload);
        proposalId = hashProposal(action, member, payload, nonce);
        if (_proposals[proposalId].createdAt != 0) revert ProposalAlreadyExists(proposalId);
        (address signer, bytes32 org) = _regulatorSigner(proposalId, signature);
        uint64 expiresAt = uint64(block.timestamp) + _lifetime;
        _proposals[proposalId] =
            ProposalInfo(Action(action), member, payload, org, uint64(block.timestamp), expiresAt, 1, false);
        _approvers[proposalId].add(org);
        emit ProposalCreated(proposalId, action, member, org, signer, expiresAt, payload);
    }

    /// @inheritdoc IConsortium
    function approve(bytes32 proposalId, bytes calldata signature) external {
        ProposalInfo storage p = _openProposal(proposalId);
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(_APPROVAL_TYPEHASH, proposalId)));
        (address signer, bytes32 org) = _regulatorSigner(digest, signature);
        if (!_approvers[proposalId].add(org)) revert AlreadyApproved(proposalId, org);
        ++p.approvals;
        emit ProposalApproved(proposalId, org, signer);
    }

    /// @inheritdoc IConsortium
    function execute(bytes32 proposalId) external {
        ProposalInfo storage p = _openProposal(proposalId);
        uint256 approvals = _validApprovals(proposalId);
        if (approvals < _threshold) revert QuorumNotReached(proposalId, approvals, _threshold);
        p.executed = true;
        _apply(p.action, p.member, p.payload);
        emit ProposalExecuted(proposalId);
    }

    /// @inheritdoc IConsortium
    function revokeOwnKey(bytes32 member, address key, bytes calldata signature) external {
        bytes32 digest = _hashTypedDataV4(keccak256(abi.encode(_REVOCATION_TYPEHASH, member, key)));
        address signer = _recover(digest, signature);
        KeyRecord storage k = _keys[signer];
        if (k.member != member || !k.active) revert NotMemberKey(signer, member);
        _revokeKey(member, key, true);
    }

    /// @inheritdoc IConsortium
    function isActiveSigner(address key, uint8 role) external view returns (bool) {
        KeyRecord storage k = _keys[key];
        Member storage m = _members[k.member];
        return k.active && m.status == MemberStatus.Active && (m.roles & role) != 0;
    }

    /// @inheritdoc IConsortium
    function signerStanding(address key) external view returns (bytes32 member, uint8 roles) {
        KeyRecord storage k = _keys[key];
        member = k.member;
        Member storage m = _members[member];
        if (k.active && m.status == MemberStatus.Active) roles = m.roles;
    }

    /// @inheritdoc IConsortium
    function memberOf(address key) external view returns (bytes32) {
        return _keys[key].member;
    }

    /// @inheritdoc IConsortium
    function getMember(bytes32 id) external view returns (Member memory) {
        return _members[id];
    }

    /// @inheritdoc IConsortium
    function keysOf(bytes32 id) external view returns (address[] memory) {
        return _memberKeys[id].values();
    }

    /// @inheritdoc IConsortium
    function isKeyActive(address key) external view returns (bool) {
        return _keys[key].active;
    }

    /// @inheritdoc IConsortium
    function threshold() external view returns (uint16) {
        return _threshold;
    }

    /// @inheritdoc IConsortium
    function proposalLifetime() external view returns (uint64) {
        return _lifetime;
    }

    /// @inheritdoc IConsortium
    function activeRegulatorCount() external view returns (uint256) {
        return _activeRegulators;
    }

    /// @inheritdoc IConsortium
    function getProposal(bytes32 proposalId) external view returns (ProposalInfo memory) {
        return _proposals[proposalId];
    }

    /// @inheritdoc IConsortium
    function hasApproved(bytes32 proposalId, bytes32 memberId) external view returns (bool) {
        return _approvers[proposalId].contains(memberId);
    }

    /// @inheritdoc IConsortium
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IConsortium
    function hashProposal(uint8 action, bytes32 member, bytes calldata payload, uint256 nonce)
        public
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(keccak256(abi.encode(_PROPOSAL_TYPEHASH, action, member, keccak256(payload), nonce)));
    }

    function _checkShape(uint8 action, bytes32 member, bytes calldata payload) private pure {
        if (action > uint8(type(Action).max)) revert InvalidAction(action);
        Action a = Action(action);
        uint256 size = a <= Action.REMOVE ? 0 : (a == Action.ROTATE_KEY ? 64 : 32);
        bool ok = a == Action.ADMIT ? payload.length >= 96 : payload.length == size;
        // Zero is "no member": only CHANGE_THRESHOLD, which acts on no member, uses it.
        if (!ok || (a == Action.CHANGE_THRESHOLD) != (member == bytes32(0))) revert InvalidPayload(action);
        if (a == Action.ADMIT) {
            (, uint8 roles, ) = abi.decode(payload, (string, uint8, address[]));
            _checkRoles(roles);
        }
    }

    function _apply(Action a, bytes32 id, bytes memory payload) private {
        if (a == Action.ADMIT) {
            (string memory name, uint8 roles, address[] memory keys) = abi.decode(payload, (string, uint8, address[]));
            _admit(id, name, roles, keys);
            return;
        }
        if (a == Action.CHANGE_THRESHOLD) {
            _setThreshold(abi.decode(payload, (uint16)));
            return;
        }
        Member storage m = _members[id];
        MemberStatus status = m.status;
        if (status == MemberStatus.None) revert UnknownMember(id);
        if (
            status == MemberStatus.Removed || (a == Action.SUSPEND && status != MemberStatus.Active)
                || (a == Action.REINSTATE && status != MemberStatus.Suspended)
        ) revert InvalidStatusTransition(id, uint8(status));
        if (a == Action.SUSPEND) {
            _setStanding(id, MemberStatus.Suspended, m.roles);
            emit MemberSuspended(id);
        } else if (a == Action.REINSTATE) {
            _setStanding(id, MemberStatus.Active, m.roles);
            emit MemberReinstated(id);
        } else if (a == Action.REMOVE) {
            _setStanding(id, MemberStatus.Removed, m.roles);
            emit MemberRemoved(id);
        } else if (a == Action.CHANGE_ROLES) {
            uint8 roles = abi.decode(payload, (uint8));
            _checkRoles(roles);
            uint8 oldRoles = m.roles;
            _setStanding(id, status, roles);
            if (oldRoles != roles) emit MemberRolesChanged(id, oldRoles, roles);
        } else if (a == Action.ADD_KEY) {
            _addKey(id, abi.decode(payload, (address)));
        } else if (a == Action.REVOKE_KEY) {
            _revokeKey(id, abi.decode(payload, (address)), false);
        } else {
            (address oldKey, address newKey) = abi.decode(payload, (address, address));
            _revokeKey(id, oldKey, false);
            _addKey(id, newKey);
        }
    }

    function _admit(bytes32 id, string memory name, uint8 roles, address[] memory keys) private {
        _checkRoles(roles);
        if (id == bytes32(0)) revert InvalidPayload(uint8(Action.ADMIT));
        if (_members[id].status != MemberStatus.None) revert MemberAlreadyExists(id);
        _members[id] = Member(id, name, 0, MemberStatus.None, uint64(block.timestamp));
        _setStanding(id, MemberStatus.Active, roles);
        emit MemberAdmitted(id, name, roles);
        for (uint256 i; i < keys.length; ++i) _addKey(id, keys[i]);
    }

    /// @dev Sets status and roles, keeping the active regulator count and checking it still meets the threshold.
    function _setStanding(bytes32 id, MemberStatus status, uint8 roles) private {
        Member storage m = _members[id];
        bool was = _isActiveRegulator(id);
        m.status = status;
        m.roles = roles;
        bool isNow = _isActiveRegulator(id);
        if (isNow && !was) ++_activeRegulators;
        if (was && !isNow && --_activeRegulators < _threshold) revert InvalidThreshold(_threshold);
    }

    function _setThreshold(uint16 newThreshold) private {
        if (newThreshold == 0 || newThreshold > _activeRegulators) revert InvalidThreshold(newThreshold);
        uint16 oldThreshold = _threshold;
        if (oldThreshold == newThreshold) return;
        _threshold = newThreshold;
        emit ThresholdChanged(oldThreshold, newThreshold);
    }

    function _addKey(bytes32 id, address key) private {
        if (key == address(0)) revert InvalidKey(key);
        KeyRecord storage k = _keys[key];
        if (k.member != bytes32(0)) revert KeyAlreadyRegistered(key);
        k.member = id;
        k.active = true;
        _memberKeys[id].add(key);
        emit KeyAdded(id, key);
    }

    function _revokeKey(bytes32 id, address key, bool bySelf) private {
        KeyRecord storage k = _keys[key];
        if (k.member != id) revert NotMemberKey(key, id);
        if (!k.active) revert KeyNotActive(key);
        k.active = false;
        emit KeyRevoked(id, key, bySelf);
    }

    function _openProposal(bytes32 proposalId) private view returns (ProposalInfo storage p) {
        p = _proposals[proposalId];
        if (p.createdAt == 0) revert UnknownProposal(proposalId);
        if (p.executed) revert ProposalAlreadyExecuted(proposalId);
        if (block.timestamp >= p.expiresAt) revert ProposalExpired(proposalId, p.expiresAt);
    }

    function _validApprovals(bytes32 proposalId) private view returns (uint256 count) {
        EnumerableSet.Bytes32Set storage approvers = _approvers[proposalId];
        uint256 length = approvers.length();
        for (uint256 i; i < length; ++i) {
            if (_isActiveRegulator(approvers.at(i))) ++count;
        }
    }

    function _regulatorSigner(bytes32 digest, bytes calldata signature) private view returns (address, bytes32) {
        address signer = _recover(digest, signature);
        KeyRecord storage k = _keys[signer];
        if (!k.active || !_isActiveRegulator(k.member)) revert NotActiveRegulator(signer);
        return (signer, k.member);
    }

    function _isActiveRegulator(bytes32 id) private view returns (bool) {
        Member storage m = _members[id];
        return m.status == MemberStatus.Active && (m.roles & _REGULATOR) != 0;
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err, ) = ECDSA.tryRecoverCalldata(digest, signature);
        if (err != ECDSA.RecoverError.NoError) revert InvalidSignature();
    }

    function _checkRoles(uint8 roles) private pure {
        if (roles == 0 || roles > _ALL_ROLES) revert InvalidRoles(roles);
    }
}
