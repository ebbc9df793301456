// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Inter-department collaborative supervision of credtrace (C12): cases, referrals and joint decisions
/// @notice A department (a REGULATOR member) opens a case on a subject and refers it to another department, which
/// acknowledges the referral (late if after its deadline); the departments on the case add evidence (a document
/// hash and a described note), findings and links to the decisions taken under it, and the opening department
/// closes it. Every step is a `CaseEntry` signed by the department's key. A `JointDecision` names several
/// departments of a case and becomes active when each of them has co-signed the same EIP-712 digest.
/// @dev Case texts (descriptions, findings) are never on chain: an entry carries `noteHash`, the keccak256 of the
/// UTF-8 text, which the API keeps beside the case and shows only to the departments on it and to auditors (every
/// member's node reads the whole chain). EIP-712 domain "credtrace SupervisionRegistry", version "1"; the types
/// are defined in `node_bridge/supervision.py`. Every signed field is in an event, so the index can be rebuilt
/// from the chain alone.
interface ISupervisionRegistry {
    /// @notice One step of a case, signed by `department` (its Consortium member id, a REGULATOR member).
    /// `action`: 0 OPEN (a new `caseId` on `subject`; `noteHash` the case summary, optional), 1 REFER (to the
    /// department `counterpart`, to acknowledge by `deadline`, which must be after `at`), 2 ACKNOWLEDGE (the
    /// referral whose entry id is `ref`, by the department it was referred to), 3 EVIDENCE (`documentHash` of
    /// the document and `noteHash` of its description), 4 FINDING (`noteHash` of the finding), 5 LINK_DECISION
    /// (`ref` a decision taken under the case: a CreditRegistry record id or a joint decision id), 6 CLOSE (by the
    /// opening department; `noteHash` of the closing summary, optional). `subject` is required by OPEN; later
    /// entries give zero or the case's subject. `at` is when the department signed (unix seconds).
    struct CaseEntry {
        bytes32 department;
        bytes32 caseId;
        uint8 action;
        bytes32 subject;
        bytes32 counterpart;
        uint64 deadline;
        bytes32 documentHash;
        bytes32 noteHash;
        bytes32 ref;
        uint64 at;
        uint256 nonce;
    }

    /// @notice A decision several departments take together on the subject of case `caseId`: `kind`, `tier`
    /// and `measures` as in the CreditRegistry, the decision document's hash, its validity window, and the
    /// departments (2 to 32, distinct, each on the case) that must each sign this same message.
    struct JointDecision {
        bytes32 caseId;
        bytes32 subject;
        uint8 kind;
        uint8 tier;
        uint32 measures;
        bytes32 documentHash;
        uint64 effectiveAt;
        uint64 validUntil;
        bytes32[] departments;
        uint256 nonce;
    }

    /// @notice A case entry was recorded; `id` is its EIP-712 digest. `late`: an acknowledgement made after the
    /// referral's deadline (block time).
    event CaseEntryRecorded(
        bytes32 indexed id, bytes32 indexed caseId, CaseEntry entry, address signer, bool late
    );
    /// @notice `department` co-signed joint decision `id` (its EIP-712 digest); `remaining` departments have yet
    /// to sign.
    event JointDecisionSigned(
        bytes32 indexed id,
        bytes32 indexed caseId,
        bytes32 department,
        address signer,
        uint8 remaining,
        JointDecision decision
    );
    /// @notice The last named department signed: joint decision `id` is active.
    event JointDecisionActive(bytes32 indexed id, bytes32 indexed caseId, bytes32 subject);

    /// @notice `action` is not one of the seven case actions.
    error UnknownAction(uint8 action);
    /// @notice A case id of zero.
    error ZeroCaseId();
    /// @notice OPEN names a case id already opened.
    error CaseExists(bytes32 caseId);
    /// @notice No case `caseId` was opened.
    error UnknownCase(bytes32 caseId);
    /// @notice Case `caseId` is closed: nothing more is recorded on it.
    error CaseClosed(bytes32 caseId);
    /// @notice OPEN without a subject.
    error MissingSubject();
    /// @notice The message names `given` but the case is on `expected`.
    error SubjectMismatch(bytes32 expected, bytes32 given);
    /// @notice `department` is not on case `caseId` (it did not open it, or has not acknowledged a referral).
    error NotOnCase(bytes32 caseId, bytes32 department);
    /// @notice `member` is not an active member holding REGULATOR.
    error NotADepartment(bytes32 member);
    /// @notice `department` is on case `caseId` already, or was referred it and has not acknowledged yet.
    error AlreadyOnCase(bytes32 caseId, bytes32 department);
    /// @notice A referral's deadline is not after the time it was signed.
    error InvalidDeadline(uint64 at, uint64 deadline);
    /// @notice No referral `referral` was made on case `caseId`.
    error NoReferral(bytes32 caseId, bytes32 referral);
    /// @notice The referral was made to `referredTo`, not to the acknowledging `department`.
    error WrongDepartment(bytes32 referredTo, bytes32 department);
    /// @notice Referral `referral` was acknowledged already.
    error AlreadyAcknowledged(bytes32 referral);
    /// @notice EVIDENCE without a document hash.
    error MissingDocument();
    /// @notice EVIDENCE or FINDING without the hash of its text.
    error MissingNote();
    /// @notice LINK_DECISION or ACKNOWLEDGE without `ref`.
    error MissingReference();
    /// @notice Only the department that opened case `caseId` closes it; `department` did not.
    error NotOpener(bytes32 caseId, bytes32 department);
    /// @notice A joint decision names `count` departments; it needs 2 to 32.
    error DepartmentCount(uint256 count);
    /// @notice A joint decision names `department` twice.
    error DuplicateDepartment(bytes32 department);
    /// @notice The signer signs for `department`, which the joint decision does not name.
    error NotNamedDepartment(bytes32 department);
    /// @notice `department` signed joint decision `id` already.
    error AlreadySigned(bytes32 id, bytes32 department);
    /// @notice A joint decision's validity ends (`validUntil`, nonzero) before it takes effect.
    error InvalidValidity(uint64 effectiveAt, uint64 validUntil);

    /// @notice Record a case entry signed by an active key of `entry.department`, a REGULATOR member.
    function record(CaseEntry calldata entry, bytes calldata signature) external;

    /// @notice Record one named department's signature of joint decision `d` (the signer's organisation must be
    /// one of `d.departments`, hold REGULATOR, and not have signed it before); the case must be open.
    function cosign(JointDecision calldata d, bytes calldata signature) external;

    /// @notice Case `caseId`: its subject, the opening department, whether it is closed (zeros if unknown).
    function caseState(bytes32 caseId) external view returns (bytes32 subject, bytes32 opener, bool closed);

    /// @notice Where `department` stands on case `caseId`: 0 not on it, 1 referred (not yet acknowledged), 2 on it.
    function departmentState(bytes32 caseId, bytes32 department) external view returns (uint8);

    /// @notice Referral `id` (its REFER entry's id): the case, the department referred to, its deadline, and
    /// whether it was acknowledged (zeros if unknown).
    function referral(bytes32 id)
        external
        view
        returns (bytes32 caseId, bytes32 to, uint64 deadline, bool acknowledged);

    /// @notice Joint decision `id`: bit i of `signed` is set once `departments[i]` has signed; `active` once all
    /// have.
    function jointDecisionState(bytes32 id) external view returns (uint32 signed, bool active);

    /// @notice The id (EIP-712 digest) of a case entry.
    function hashCaseEntry(CaseEntry calldata entry) external view returns (bytes32);

    /// @notice The id (EIP-712 digest) of a joint decision.
    function hashJointDecision(JointDecision calldata d) external view returns (bytes32);
}
