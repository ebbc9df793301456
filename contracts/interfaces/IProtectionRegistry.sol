// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IMemberSigned} from "./IMemberSigned.sol";

/// @title Consumer protection of credtrace (C7): platforms' protection funds and advance-compensation cases
/// @notice A PLATFORM member declares the consumer-protection fund it holds (`FundDeclaration`: amount, currency,
/// custodian, period) and updates it by signing the next version. When a consumer complains about a merchant, the
/// platform records the case step by step (`CaseStep`): COMPLAINT (the claim and the promised pay-by time), then
/// COMPENSATED (the platform paid the consumer first), RECOVERED (money recovered from the merchant, possibly in
/// several steps, never more in total than was paid) and CLOSED. Both are EIP-712 messages (domain
/// "credtrace ProtectionRegistry", version "1", types as in `node_bridge/protection.py`) that any relayer submits.
/// No consumer's personal data is signed: a case names the consumer by a salted commitment at most.
/// Every signed field is in an event, so an index can be rebuilt from the chain alone.
interface IProtectionRegistry is IMemberSigned {
    /// @notice Version `version` of fund `fundId` of platform `platform` (its Consortium id): `amount` in minor
    /// units of `currency` (ISO 4217, three upper-case letters; fen for CNY), held by `custodian` (the bank or
    /// trust), for the period [`periodStart`, `periodEnd`) in unix seconds. Version 1 declares the fund, each
    /// update is the next version, signed by the same platform.
    struct FundDeclaration {
        bytes32 platform;
        bytes32 fundId;
        uint32 version;
        uint256 amount;
        string currency;
        string custodian;
        uint64 periodStart;
        uint64 periodEnd;
        uint256 nonce;
    }

    /// @notice One step of advance-compensation case `caseId` of platform `platform` against merchant `merchant`
    /// (a subject id: credit code or commitment). `step`: 0 COMPLAINT (opens the case; `amount` is the claim,
    /// `dueBy` the time the platform promised to pay by), 1 COMPENSATED (`amount` paid to the consumer),
    /// 2 RECOVERED (`amount` recovered from the merchant; may repeat), 3 CLOSED (`amount` zero). `consumer` is a
    /// salted commitment or zero; `traceCode` the keccak256 of the order's GS1 Digital Link path or zero;
    /// `decision` the id of a CreditRegistry record against the merchant or zero; `at` when the step happened.
    struct CaseStep {
        bytes32 platform;
        bytes32 caseId;
        uint8 step;
        bytes32 merchant;
        bytes32 consumer;
        uint256 amount;
        uint64 dueBy;
        bytes32 traceCode;
        bytes32 decision;
        uint64 at;
        uint256 nonce;
    }

    /// @notice A fund declaration (or update) was recorded; `id` is its EIP-712 digest.
    event FundDeclared(bytes32 indexed id, bytes32 indexed fundId, FundDeclaration declaration, address signer);
    /// @notice A case step was recorded; `id` is its EIP-712 digest.
    event CaseStepRecorded(bytes32 indexed id, bytes32 indexed caseId, CaseStep step, address signer);

    /// @notice Fund `fundId` is at version `current` (0: never declared); the next declaration must be
    /// `current + 1`, not `given`.
    error FundVersion(bytes32 fundId, uint32 current, uint32 given);
    /// @notice Fund `fundId` was declared by `declaredBy`; `given` may not update it.
    error FundPlatformMismatch(bytes32 fundId, bytes32 declaredBy, bytes32 given);
    /// @notice The period does not end after it starts.
    error InvalidPeriod(uint64 periodStart, uint64 periodEnd);
    /// @notice The currency is not three upper-case ASCII letters (ISO 4217).
    error InvalidCurrency(string currency);
    /// @notice The custodian is empty.
    error EmptyCustodian();
    /// @notice The amount is zero where a positive one is needed, not zero on a CLOSED step, or above 2^63 - 1
    /// (amounts stay within what a signed 64-bit SQL integer holds, so every index can store them).
    error InvalidAmount(uint256 amount);
    /// @notice `step` is not 0 to 3.
    error InvalidStep(uint8 step);
    /// @notice A COMPLAINT names case `caseId`, which is open already.
    error CaseExists(bytes32 caseId);
    /// @notice A step other than COMPLAINT names case `caseId`, which no complaint opened.
    error UnknownCase(bytes32 caseId);
    /// @notice Case `caseId` is at step `current`; step `given` cannot follow it.
    error StepOutOfOrder(bytes32 caseId, uint8 current, uint8 given);
    /// @notice Case `caseId` is platform `expected`'s; `given` may not continue it.
    error CasePlatformMismatch(bytes32 caseId, bytes32 expected, bytes32 given);
    /// @notice Case `caseId` is against merchant `expected`, not `given`.
    error CaseMerchantMismatch(bytes32 caseId, bytes32 expected, bytes32 given);
    /// @notice The merchant is zero.
    error ZeroMerchant();
    /// @notice Case `caseId` was compensated with `compensated`; recoveries would total `recovered`.
    error RecoveryExceedsCompensation(bytes32 caseId, uint64 compensated, uint256 recovered);
    /// @notice A step of case `caseId` happened at `given`, before its previous step (`previous`); or a
    /// complaint's `dueBy` is before its `at`.
    error StepTimeBeforePrevious(bytes32 caseId, uint64 previous, uint64 given);

    /// @notice Record a fund declaration (version 1) or update (the next version), signed by an active key of
    /// its platform, a member holding PLATFORM.
    function declareFund(FundDeclaration calldata declaration, bytes calldata signature) external;

    /// @notice Record a step of a case, signed by an active key of its platform, a member holding PLATFORM.
    function recordCaseStep(CaseStep calldata step, bytes calldata signature) external;

    /// @notice The current version of fund `fundId` (0: never declared) and its platform.
    function fundOf(bytes32 fundId) external view returns (uint32 version, bytes32 platform);

    /// @notice Case `caseId`: its platform (zero: no such case), merchant, step reached, amounts paid and
    /// recovered, and the time of its last step.
    function caseOf(bytes32 caseId)
        external
        view
        returns (bytes32 platform, bytes32 merchant, uint8 step, uint64 compensated, uint64 recovered, uint64 lastAt);

    /// @notice The id (EIP-712 digest) of a fund declaration.
    function hashFundDeclaration(FundDeclaration calldata declaration) external view returns (bytes32);

    /// @notice The id (EIP-712 digest) of a case step.
    function hashCaseStep(CaseStep calldata step) external view returns (bytes32);
}
