// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {ISupervisionRegistry} from "./interfaces/ISupervisionRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";
import {MemberSigned} from "./utils/MemberSigned.sol";

/// @title SupervisionRegistry
/// @notice Inter-department collaborative supervision: cases, referrals with deadlines, evidence, findings,
/// linked decisions and joint decisions co-signed by several departments. See {ISupervisionRegistry}.
/// @dev Storage holds only what the rules need: per case its subject, opener and closed flag; per (case,
/// department) whether it is referred or on the case; per referral its case, department, deadline and whether it
/// was acknowledged; per joint decision a bitmap of the departments that signed. Texts, evidence and findings are
/// in the events as hashes. A case entry is consumed once through `MemberSigned._accept` (its digest is its id);
/// a joint decision is signed once per named department, so it uses `_standing` and its own bitmap instead.
contract SupervisionRegistry is ISupervisionRegistry, MemberSigned, BatchCall {
    uint8 private constant _REGULATOR = 1;
    uint8 private constant _OPEN = 0;
    uint8 private constant _REFER = 1;
    uint8 private constant _ACKNOWLEDGE = 2;
    uint8 private constant _EVIDENCE = 3;
    uint8 private constant _FINDING = 4;
    uint8 private constant _LINK_DECISION = 5;
    uint8 private constant _CLOSE = 6;
    uint8 private constant _REFERRED = 1;
    uint8 private constant _ON_CASE = 2;
    uint256 private constant _MAX_DEPARTMENTS = 32;

    bytes32 private constant _CASE_ENTRY_TYPEHASH = keccak256(
        "CaseEntry(bytes32 department,bytes32 caseId,uint8 action,bytes32 subject,bytes32 counterpart,"
        "uint64 deadline,bytes32 documentHash,bytes32 noteHash,bytes32 ref,uint64 at,uint256 nonce)"
    );
    bytes32 private constant _JOINT_DECISION_TYPEHASH = keccak256(
        "JointDecision(bytes32 caseId,bytes32 subject,uint8 kind,uint8 tier,uint32 measures,bytes32 documentHash,"
        "uint64 effectiveAt,uint64 validUntil,bytes32[] departments,uint256 nonce)"
    );

    struct Case {
        bytes32 subject;
        bytes32 opener;
        bool closed;
    }

    struct Referral {
        bytes32 caseId;
        bytes32 to;
        uint64 deadline;
        bool acknowledged;
    }

    struct Joint {
        uint32 signed;
        bool active;
    }

    IConsortium private immutable _members;
    mapping(bytes32 caseId => Case) private _cases;
    mapping(bytes32 caseId => mapping(bytes32 department => uint8 state)) private _onCase;
    mapping(bytes32 id => Referral) private _referrals;
    mapping(bytes32 id => Joint) private _joint;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) MemberSigned(consortium_, "credtrace SupervisionRegistry") {
        _members = consortium_;
    }

    /// @inheritdoc ISupervisionRegistry
    /// @dev Checks the signature, the signer's standing and REGULATOR first, then the action's rules.
    function record(CaseEntry calldata entry, bytes calldata signature) external {
        (bytes32 id, address signer) = _accept(_caseEntryHash(entry), signature, entry.department, _REGULATOR);
        uint8 action = entry.action;
        if (action > _CLOSE) revert UnknownAction(action);
        bytes32 caseId = entry.caseId;
        if (caseId == bytes32(0)) revert ZeroCaseId();
        Case storage c = _cases[caseId];
        bool late;
        if (action == _OPEN) {
            if (c.opener != bytes32(0)) revert CaseExists(caseId);
            if (entry.subject == bytes32(0)) revert MissingSubject();
            c.subject = entry.subject;
            c.opener = entry.department;
            _onCase[caseId][entry.department] = _ON_CASE;
        } else {
            _checkCase(c, caseId, entry.subject);
            if (action == _ACKNOWLEDGE) {
                late = _acknowledge(caseId, entry);
            } else {
                if (_onCase[caseId][entry.department] != _ON_CASE) revert NotOnCase(caseId, entry.department);
                if (action == _REFER) {
                    _refer(id, caseId, entry);
                } else if (action == _EVIDENCE) {
                    if (entry.documentHash == bytes32(0)) revert MissingDocument();
                    if (entry.noteHash == bytes32(0)) revert MissingNote();
                } else if (action == _FINDING) {
                    if (entry.noteHash == bytes32(0)) revert MissingNote();
                } else if (action == _LINK_DECISION) {
                    if (entry.ref == bytes32(0)) revert MissingReference();
                } else {
                    if (c.opener != entry.department) revert NotOpener(caseId, entry.department);
                    c.closed = true;
                }
            }
        }
        emit CaseEntryRecorded(id, caseId, entry, signer, late);
    }

    /// @inheritdoc ISupervisionRegistry
    /// @dev The whole decision is checked at each signature (its fields are signed, so they are the same each
    /// time, but the case may have closed meanwhile).
    function cosign(JointDecision calldata d, bytes calldata signature) external {
        bytes32 id = _hashTypedDataV4(_jointDecisionHash(d));
        (address signer, bytes32 organisation) = _department(id, signature);
        uint8 remaining = _sign(id, organisation, _checkDecision(d, organisation), d.departments.length);
        _emitSigned(id, organisation, signer, remaining, d);
        if (remaining == 0) emit JointDecisionActive(id, d.caseId, d.subject);
    }

    /// @inheritdoc ISupervisionRegistry
    function caseState(bytes32 caseId) external view returns (bytes32 subject, bytes32 opener, bool closed) {
        Case storage c = _cases[caseId];
        return (c.subject, c.opener, c.closed);
    }

    /// @inheritdoc ISupervisionRegistry
    function departmentState(bytes32 caseId, bytes32 department) external view returns (uint8) {
        return _onCase[caseId][department];
    }

    /// @inheritdoc ISupervisionRegistry
    function referral(bytes32 id)
        external
        view
        returns (bytes32 caseId, bytes32 to, uint64 deadline, bool acknowledged)
    {
        Referral storage r = _referrals[id];
        return (r.caseId, r.to, r.deadline, r.acknowledged);
    }

    /// @inheritdoc ISupervisionRegistry
    function jointDecisionState(bytes32 id) external view returns (uint32 signed, bool active) {
        Joint storage joint = _joint[id];
        return (joint.signed, joint.active);
    }

    /// @inheritdoc ISupervisionRegistry
    function hashCaseEntry(CaseEntry calldata entry) external view returns (bytes32) {
        return _hashTypedDataV4(_caseEntryHash(entry));
    }

    /// @inheritdoc ISupervisionRegistry
    function hashJointDecision(JointDecision calldata d) external view returns (bytes32) {
        return _hashTypedDataV4(_jointDecisionHash(d));
    }

    // rules

    /// @dev The case must be open, and `subject` zero or the case's.
    function _checkCase(Case storage c, bytes32 caseId, bytes32 subject) private view {
        if (c.opener == bytes32(0)) revert UnknownCase(caseId);
        if (c.closed) revert CaseClosed(caseId);
        if (subject != bytes32(0) && subject != c.subject) revert SubjectMismatch(c.subject, subject);
    }

    /// @dev A joint decision's rules: its case open and on its subject, a validity window, 2 to 32 distinct
    /// departments each on the case, the signer's `organisation` among them. Returns its position.
    function _checkDecision(JointDecision calldata d, bytes32 organisation) private view returns (uint256 position) {
        bytes32 caseId = d.caseId;
        _checkCase(_cases[caseId], caseId, d.subject);
        if (d.validUntil != 0 && d.validUntil <= d.effectiveAt) revert InvalidValidity(d.effectiveAt, d.validUntil);
        uint256 count = d.departments.length;
        if (count < 2 || count > _MAX_DEPARTMENTS) revert DepartmentCount(count);
        position = type(uint256).max;
        for (uint256 i; i < count; ++i) {
            bytes32 department = d.departments[i];
            for (uint256 j; j < i; ++j) {
                if (d.departments[j] == department) revert DuplicateDepartment(department);
            }
            if (_onCase[caseId][department] != _ON_CASE) revert NotOnCase(caseId, department);
            if (department == organisation) position = i;
        }
        if (position == type(uint256).max) revert NotNamedDepartment(organisation);
    }

    /// @dev REFER: to an active REGULATOR member not yet on (or referred) the case, with a deadline after `at`.
    function _refer(bytes32 id, bytes32 caseId, CaseEntry calldata entry) private {
        bytes32 to = entry.counterpart;
        IConsortium.Member memory member = _members.getMember(to);
        if (member.status != IConsortium.MemberStatus.Active || member.roles & _REGULATOR == 0) {
            revert NotADepartment(to);
        }
        if (_onCase[caseId][to] != 0) revert AlreadyOnCase(caseId, to);
        if (entry.deadline <= entry.at) revert InvalidDeadline(entry.at, entry.deadline);
        _onCase[caseId][to] = _REFERRED;
        _referrals[id] = Referral(caseId, to, entry.deadline, false);
    }

    /// @dev ACKNOWLEDGE: of a referral of this case (`ref`), by the department it was made to, once; late if the
    /// block time is past the deadline (accepted all the same). The department is then on the case.
    function _acknowledge(bytes32 caseId, CaseEntry calldata entry) private returns (bool late) {
        if (entry.ref == bytes32(0)) revert MissingReference();
        Referral storage r = _referrals[entry.ref];
        if (r.caseId != caseId) revert NoReferral(caseId, entry.ref);
        if (r.to != entry.department) revert WrongDepartment(r.to, entry.department);
        if (r.acknowledged) revert AlreadyAcknowledged(entry.ref);
        r.acknowledged = true;
        _onCase[caseId][entry.department] = _ON_CASE;
        late = block.timestamp > r.deadline;
    }

    /// @dev The signer of `digest` and its organisation, which must hold REGULATOR.
    function _department(bytes32 digest, bytes calldata signature)
        private
        view
        returns (address signer, bytes32 organisation)
    {
        uint8 roles;
        (signer, organisation, roles) = _standing(digest, signature);
        if (roles & _REGULATOR == 0) revert MissingRole(signer, _REGULATOR);
    }

    /// @dev Set the bit of the department at `position` (once) in joint decision `id`'s bitmap; returns how many
    /// of the `count` departments have yet to sign, and marks the decision active when none has.
    function _sign(bytes32 id, bytes32 organisation, uint256 position, uint256 count)
        private
        returns (uint8 remaining)
    {
        Joint storage joint = _joint[id];
        uint32 bit = uint32(1 << position);
        if (joint.signed & bit != 0) revert AlreadySigned(id, organisation);
        uint32 signed = joint.signed | bit;
        joint.signed = signed;
        remaining = uint8(count - _popcount(signed));
        if (remaining == 0) joint.active = true;
    }

    /// @dev Apart, so that the encoding of the whole decision has the stack to itself.
    function _emitSigned(bytes32 id, bytes32 organisation, address signer, uint8 remaining, JointDecision calldata d)
        private
    {
        emit JointDecisionSigned(id, d.caseId, organisation, signer, remaining, d);
    }

    function _popcount(uint32 bits) private pure returns (uint256 n) {
        for (; bits != 0; bits &= bits - 1) {
            ++n;
        }
    }

    // hashing (EIP-712 hashStruct)

    /// @dev Every field of a case entry is a static word, so hashStruct is the typehash followed by the struct
    /// as ABI-encoded (each field padded to 32 bytes, as EIP-712 encodes it).
    function _caseEntryHash(CaseEntry calldata e) private pure returns (bytes32) {
        return keccak256(abi.encode(_CASE_ENTRY_TYPEHASH, e));
    }

    /// @dev hashStruct(d): the `departments` array is encoded as keccak256 of its concatenated words.
    function _jointDecisionHash(JointDecision calldata d) private pure returns (bytes32) {
        return keccak256(
            bytes.concat(
                abi.encode(_JOINT_DECISION_TYPEHASH, d.caseId, d.subject, d.kind, d.tier, d.measures),
                abi.encode(
                    d.documentHash,
                    d.effectiveAt,
                    d.validUntil,
                    keccak256(abi.encodePacked(d.departments)),
                    d.nonce
                )
            )
        );
    }
}
