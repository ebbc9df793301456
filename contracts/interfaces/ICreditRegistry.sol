// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Signed credit records of credtrace
/// @notice Departments and platforms sign credit records (EIP-712, domain "credtrace CreditRegistry", version "1")
/// and any relayer submits them. A record's id is its EIP-712 digest. The contract checks the signer's standing in
/// the Consortium, the role the record's kind requires, replays (each organisation's nonces, each holding a 32-bit
/// fingerprint of the message that used it) and the lifecycle: notice (before `effectiveAt`) → active → expired
/// (at `validUntil`) | revoked | repaired. Only what other contracts must read is stored: the red-list and
/// blacklist windows of each subject (tagged with the issuing organisation), the nonce fingerprints and the closed
/// records. Every field of every record is in its event, so an index can be rebuilt from the chain alone.
interface ICreditRegistry {
    /// @notice Record kinds (C3). Decisions need a REGULATOR; commitments and logistics evaluations a PLATFORM or
    /// REGULATOR (as countersigner); real-name certifications a CERTIFIER; payment violations a PAYMENT member or a
    /// REGULATOR.
    enum Kind {
        COMMITMENT,
        ADMINISTRATIVE_PENALTY,
        RED_LIST,
        BLACKLIST,
        SERVICE_DEFAULT,
        CLICK_FARMING,
        CREDIT_SPECULATION,
        COUNTERFEIT_SUBSTANDARD,
        PERSONAL_INFORMATION_ABUSE,
        LOGISTICS_EVALUATION,
        REAL_NAME_CERTIFICATION,
        PAYMENT_VIOLATION
    }

    /// @notice Where a record is in its lifecycle, as {recordState} computes it now.
    enum RecordState {
        UNKNOWN,
        NOTICE,
        ACTIVE,
        EXPIRED,
        REVOKED,
        REPAIRED
    }

    /// @notice A credit record, as signed. `subject` is an organisation's unified social credit code (ASCII,
    /// left-aligned, zero-padded) or a natural person's salted commitment `keccak256(salt ‖ normalised id)`.
    /// `issuer` is the issuing organisation (`keccak256(bytes(uscc))`, its Consortium id). `tier`: 0 minor,
    /// 1 general, 2 severe. `measures`: bits of the measure catalogue. Times are unix seconds; the notice window
    /// runs until `effectiveAt`, publication until `publicUntil`, validity until `validUntil`. `relation`: 0 none,
    /// 1 supersedes, 2 amends, 3 breaches commitment, naming the record `refersTo`. `nonce`: unique per issuer.
    struct CreditRecord {
        uint8 kind;
        bytes32 subject;
        bytes32 issuer;
        string legalBasis;
        uint8 tier;
        uint32 measures;
        bytes32 documentHash;
        uint64 effectiveAt;
        uint64 publicUntil;
        uint64 validUntil;
        uint8 relation;
        bytes32 refersTo;
        uint256 nonce;
    }

    /// @notice A revocation or a repair (credit repair) of record `recordId`, signed for organisation `issuer`
    /// (the record's issuing organisation), with the reason. Signed as EIP-712 `Revocation` or `Repair`.
    struct Closure {
        bytes32 recordId;
        bytes32 issuer;
        string reason;
        uint256 nonce;
    }

    /// @notice A platform's receipt that it applied catalogue measure `measure` to `subject` under record
    /// `recordId` at `appliedAt`. Signed as EIP-712 `Enforcement` by a key of the PLATFORM `platform`.
    struct Enforcement {
        bytes32 platform;
        bytes32 subject;
        bytes32 recordId;
        uint16 measure;
        uint64 appliedAt;
        uint256 nonce;
    }

    /// @notice A record was accepted.
    event RecordIssued(bytes32 indexed id, bytes32 indexed subject, bytes32 indexed issuer, address signer, CreditRecord record);
    /// @notice Record `id` was revoked by closure `closureId`.
    event RecordRevoked(bytes32 indexed id, bytes32 indexed closureId, bytes32 indexed issuer, address signer, string reason);
    /// @notice Record `id` was repaired (publication stops, history stays) by closure `closureId`.
    event RecordRepaired(bytes32 indexed id, bytes32 indexed closureId, bytes32 indexed issuer, address signer, string reason);
    /// @notice A platform filed an enforcement receipt.
    event EnforcementFiled(
        bytes32 indexed id,
        bytes32 indexed platform,
        bytes32 indexed subject,
        bytes32 recordId,
        uint16 measure,
        uint64 appliedAt,
        address signer
    );

    /// @notice The signature does not recover to an address.
    error InvalidSignature();
    /// @notice `signer` is not an active key of an Active member.
    error NotActiveSigner(address signer);
    /// @notice The message names organisation `claimed` but `signer` signs for `actual`.
    error IssuerMismatch(bytes32 claimed, bytes32 actual);
    /// @notice The signer's organisation holds none of the roles `required` for record kind `kind` (to issue it, or
    /// to close it: closing also admits a REGULATOR of the issuing organisation).
    error RoleNotAllowed(address signer, uint8 kind, uint8 required);
    /// @notice `kind` is not a record kind.
    error InvalidKind(uint8 kind);
    /// @notice `tier` is not 0 (minor), 1 (general) or 2 (severe).
    error InvalidTier(uint8 tier);
    /// @notice The subject is zero.
    error InvalidSubject();
    /// @notice The windows are inconsistent: `validUntil` must be after `effectiveAt` and `publicUntil` not before it.
    error InvalidWindow(uint64 effectiveAt, uint64 publicUntil, uint64 validUntil);
    /// @notice `relation` is unknown, or a relation lacks the record it refers to (or a reference lacks a relation).
    error InvalidReference(uint8 relation, bytes32 refersTo);
    /// @notice The issuer already used `nonce`: this message (or another with the same nonce) was accepted.
    error NonceUsed(bytes32 issuer, uint256 nonce);
    /// @notice The closure names record `claimed` but carries record `actual`.
    error RecordMismatch(bytes32 claimed, bytes32 actual);
    /// @notice Record `id` was never accepted.
    error RecordNotFound(bytes32 id);
    /// @notice Organisation `organisation` may not close a record issued by `issuer`.
    error NotIssuingOrganisation(bytes32 organisation, bytes32 issuer);
    /// @notice Record `id` is in state `state`, which does not allow this.
    error RecordNotActive(bytes32 id, RecordState state);
    /// @notice The enforcement's signer is not a PLATFORM member.
    error NotPlatform(address signer);

    /// @notice Accept a record signed by a key of its issuing organisation.
    function issue(CreditRecord calldata record, bytes calldata signature) external;

    /// @notice Revoke a record in its notice window or active; signed by a key of the issuing organisation holding
    /// the kind's role or REGULATOR.
    /// @param record The record as it was signed (its id must be `closure.recordId`).
    function revoke(CreditRecord calldata record, Closure calldata closure, bytes calldata signature) external;

    /// @notice Repair an active record (credit repair); signed like a revocation.
    function repair(CreditRecord calldata record, Closure calldata closure, bytes calldata signature) external;

    /// @notice File a platform's signed enforcement receipt.
    function enforce(Enforcement calldata enforcement, bytes calldata signature) external;

    /// @notice Whether `subject` is on the red list now (an accepted, unrevoked, unrepaired red-list record is in
    /// its validity window).
    function isRedListed(bytes32 subject) external view returns (bool);

    /// @notice Whether `subject` is on the blacklist now.
    function isBlacklisted(bytes32 subject) external view returns (bool);

    /// @notice Where `record` is in its lifecycle now (UNKNOWN if it was never accepted: its nonce is unused, or
    /// was used by another message, whose fingerprint differs).
    function recordState(CreditRecord calldata record) external view returns (RecordState);

    /// @notice Whether organisation `issuer` has used `nonce`.
    function nonceUsed(bytes32 issuer, uint256 nonce) external view returns (bool);

    /// @notice The id (EIP-712 digest) of a record.
    function hashRecord(CreditRecord calldata record) external view returns (bytes32);

    /// @notice The id of a revocation (`repair` false) or a repair (`repair` true).
    function hashClosure(Closure calldata closure, bool repair) external view returns (bytes32);

    /// @notice The id of an enforcement receipt.
    function hashEnforcement(Enforcement calldata enforcement) external view returns (bytes32);

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32);
}
