// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Consortium membership and governance of credtrace
/// @notice Members are organisations keyed by `keccak256(bytes(uscc))`, holding roles and signing keys.
/// Admitting, suspending, changing or re-keying a member needs an M-of-N quorum of regulator organisations,
/// each approving by an EIP-712 signature (domain "credtrace Consortium", version "1") that any relayer submits.
interface IConsortium {
    /// @notice Governance actions; the payload of each is `abi.encode` of the listed fields.
    /// ADMIT (string name, uint8 roles, address[] keys); SUSPEND, REINSTATE, REMOVE (empty payload);
    /// CHANGE_ROLES (uint8 roles); ADD_KEY (address key); REVOKE_KEY (address key);
    /// ROTATE_KEY (address oldKey, address newKey); CHANGE_THRESHOLD (uint16 threshold), with member = 0.
    enum Action {
        ADMIT,
        SUSPEND,
        REINSTATE,
        REMOVE,
        CHANGE_ROLES,
        ADD_KEY,
        REVOKE_KEY,
        ROTATE_KEY,
        CHANGE_THRESHOLD
    }

    /// @notice Lifecycle of a member: Active <-> Suspended, either -> Removed (final).
    enum MemberStatus {
        None,
        Active,
        Suspended,
        Removed
    }

    /// @notice A member as read by {getMember}.
    struct Member {
        bytes32 id;
        string name;
        uint8 roles;
        MemberStatus status;
        uint64 admittedAt;
    }

    /// @notice A proposal as read by {getProposal}; `approvals` counts every organisation that approved.
    struct ProposalInfo {
        Action action;
        bytes32 member;
        bytes payload;
        bytes32 proposer;
        uint64 createdAt;
        uint64 expiresAt;
        uint256 approvals;
        bool executed;
    }

    /// @notice A member was admitted (also emitted for each bootstrap regulator).
    event MemberAdmitted(bytes32 indexed member, string name, uint8 roles);
    /// @notice A member was suspended; its keys stop being active signers.
    event MemberSuspended(bytes32 indexed member);
    /// @notice A suspended member was reinstated.
    event MemberReinstated(bytes32 indexed member);
    /// @notice A member was removed for good.
    event MemberRemoved(bytes32 indexed member);
    /// @notice A member's role bit set changed.
    event MemberRolesChanged(bytes32 indexed member, uint8 oldRoles, uint8 newRoles);
    /// @notice A signing key was registered to a member.
    event KeyAdded(bytes32 indexed member, address indexed key);
    /// @notice A key was revoked, by the member itself (`bySelf`) or by a governance proposal.
    event KeyRevoked(bytes32 indexed member, address indexed key, bool bySelf);
    /// @notice The number of regulator approvals a proposal needs changed.
    event ThresholdChanged(uint16 oldThreshold, uint16 newThreshold);
    /// @notice A proposal was created; its proposer's signature is its first approval.
    event ProposalCreated(
        bytes32 indexed proposalId,
        uint8 action,
        bytes32 indexed member,
        bytes32 indexed proposer,
        address signer,
        uint64 expiresAt,
        bytes payload
    );
    /// @notice A regulator organisation approved a proposal.
    event ProposalApproved(bytes32 indexed proposalId, bytes32 indexed approver, address signer);
    /// @notice A proposal reached its quorum and its action was applied.
    event ProposalExecuted(bytes32 indexed proposalId);

    /// @notice `signer` is not an active key of an active member holding the REGULATOR role.
    error NotActiveRegulator(address signer);
    /// @notice Regulator organisation `member` has already approved `proposalId`.
    error AlreadyApproved(bytes32 proposalId, bytes32 member);
    /// @notice `proposalId` expired at `expiresAt`.
    error ProposalExpired(bytes32 proposalId, uint64 expiresAt);
    /// @notice `proposalId` has `approvals` valid approvals, fewer than `threshold`.
    error QuorumNotReached(bytes32 proposalId, uint256 approvals, uint256 threshold);
    /// @notice No proposal has id `proposalId`.
    error UnknownProposal(bytes32 proposalId);
    /// @notice A proposal with id `proposalId` exists already (pick another nonce).
    error ProposalAlreadyExists(bytes32 proposalId);
    /// @notice `proposalId` has been executed already.
    error ProposalAlreadyExecuted(bytes32 proposalId);
    /// @notice No member has id `member`.
    error UnknownMember(bytes32 member);
    /// @notice A member with id `member` exists already (even if removed).
    error MemberAlreadyExists(bytes32 member);
    /// @notice `key` is, or once was, registered to a member.
    error KeyAlreadyRegistered(address key);
    /// @notice `key` is not an active key.
    error KeyNotActive(address key);
    /// @notice `key` is the zero address, which cannot be a signing key.
    error InvalidKey(address key);
    /// @notice `signer` is not an active key of `member`.
    error NotMemberKey(address signer, bytes32 member);
    /// @notice `roles` is empty or has bits above AUDITOR (64).
    error InvalidRoles(uint8 roles);
    /// @notice `threshold` is 0, or more than the number of active regulators.
    error InvalidThreshold(uint16 threshold);
    /// @notice `member` cannot make this change from its current `status`.
    error InvalidStatusTransition(bytes32 member, uint8 status);
    /// @notice `action` is not an {Action}.
    error InvalidAction(uint8 action);
    /// @notice The payload (or member field) does not have the shape `action` requires.
    error InvalidPayload(uint8 action);
    /// @notice A proposal lifetime of `lifetime` seconds is not allowed (it must be positive).
    error InvalidProposalLifetime(uint64 lifetime);
    /// @notice The constructor's regulator arrays have different lengths.
    error ArrayLengthMismatch();
    /// @notice The signature is malformed or does not recover to a signer.
    error InvalidSignature();

    /// @notice Creates a proposal signed by an active regulator key; the signature is its organisation's first
    /// approval. The proposal id is the EIP-712 digest of `Proposal(action, member, payload, nonce)`.
    /// @param action An {Action}.
    /// @param member The member acted on (zero for CHANGE_THRESHOLD).
    /// @param payload `abi.encode` of the action's fields (see {Action}).
    /// @param nonce Any number that makes the id unique.
    /// @param signature The proposer's EIP-712 signature of the `Proposal`.
    /// @return proposalId The proposal id.
    function propose(uint8 action, bytes32 member, bytes calldata payload, uint256 nonce, bytes calldata signature)
        external
        returns (bytes32 proposalId);

    /// @notice Records a regulator organisation's approval of an open proposal.
    /// @param proposalId The proposal.
    /// @param signature An active regulator key's EIP-712 signature of `Approval(proposalId)`.
    function approve(bytes32 proposalId, bytes calldata signature) external;

    /// @notice Applies an open proposal approved by at least `threshold` organisations that are still active
    /// regulators, with full validation of the action. Anyone may call it.
    /// @param proposalId The proposal.
    function execute(bytes32 proposalId) external;

    /// @notice Revokes a key of `member` at once, without a vote, when any active key of `member` signs
    /// `KeyRevocation(member, key)` (the key may revoke itself).
    /// @param member The member owning `key`.
    /// @param key The key to revoke.
    /// @param signature The EIP-712 signature of an active key of `member`.
    function revokeOwnKey(bytes32 member, address key, bytes calldata signature) external;

    /// @notice Whether `key` is active, its member is Active, and the member holds any of the bits in `role`.
    function isActiveSigner(address key, uint8 role) external view returns (bool);

    /// @notice The organisation `key` signs for and the roles it may use now: `roles` is 0 unless the key is
    /// active and its member is Active. One call gives another contract everything a signed write needs.
    function signerStanding(address key) external view returns (bytes32 member, uint8 roles);

    /// @notice The member `key` is (or was) registered to; zero if none.
    function memberOf(address key) external view returns (bytes32);

    /// @notice The member with id `id` (all fields zero, status None, if unknown).
    function getMember(bytes32 id) external view returns (Member memory);

    /// @notice Every key ever added to member `id`, revoked ones included, in the order added.
    function keysOf(bytes32 id) external view returns (address[] memory);

    /// @notice Whether `key` is registered and not revoked (its member's status is not considered).
    function isKeyActive(address key) external view returns (bool);

    /// @notice The number of distinct regulator organisations whose approvals a proposal needs.
    function threshold() external view returns (uint16);

    /// @notice Seconds a proposal stays open after its creation.
    function proposalLifetime() external view returns (uint64);

    /// @notice The number of Active members holding the REGULATOR role.
    function activeRegulatorCount() external view returns (uint256);

    /// @notice The proposal with id `proposalId` (createdAt 0 if unknown).
    function getProposal(bytes32 proposalId) external view returns (ProposalInfo memory);

    /// @notice Whether organisation `memberId` has approved (or proposed) `proposalId`.
    function hasApproved(bytes32 proposalId, bytes32 memberId) external view returns (bool);

    /// @notice The proposal id (EIP-712 digest of `Proposal`) these fields give.
    function hashProposal(uint8 action, bytes32 member, bytes calldata payload, uint256 nonce)
        external
        view
        returns (bytes32);

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32);
}
