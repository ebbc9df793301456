// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IProtectionRegistry} from "./interfaces/IProtectionRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";
import {MemberSigned} from "./utils/MemberSigned.sol";

/// @title ProtectionRegistry
/// @notice Consumer-protection funds and advance-compensation cases signed by platforms. See
/// {IProtectionRegistry}.
/// @dev Storage holds only what the rules need: per fund its platform and current version (one word), per case
/// its platform, merchant, and one packed word with the amounts paid and recovered, the time of the last step and
/// the step reached. Everything else signed (currency, custodian, consumer commitment, trace code, decision...)
/// is only in the events. Amounts are capped at 2^63 - 1 minor units (9.2 * 10^16 yuan in fen), so the packed
/// word cannot overflow and every index can hold amounts in a signed 64-bit integer.
contract ProtectionRegistry is IProtectionRegistry, MemberSigned, BatchCall {
    uint8 private constant _PLATFORM = 2;
    uint8 private constant _COMPLAINT = 0;
    uint8 private constant _COMPENSATED = 1;
    uint8 private constant _RECOVERED = 2;
    uint8 private constant _CLOSED = 3;
    uint256 private constant _MAX_AMOUNT = 2 ** 63 - 1;

    bytes32 private constant _FUND_TYPEHASH = keccak256(
        "FundDeclaration(bytes32 platform,bytes32 fundId,uint32 version,uint256 amount,string currency,"
        "string custodian,uint64 periodStart,uint64 periodEnd,uint256 nonce)"
    );
    bytes32 private constant _STEP_TYPEHASH = keccak256(
        "CaseStep(bytes32 platform,bytes32 caseId,uint8 step,bytes32 merchant,bytes32 consumer,uint256 amount,"
        "uint64 dueBy,bytes32 traceCode,bytes32 decision,uint64 at,uint256 nonce)"
    );

    struct Fund {
        bytes32 platform;
        uint32 version;
    }

    struct Case {
        bytes32 platform;
        bytes32 merchant;
        uint64 compensated;
        uint64 recovered;
        uint64 lastAt;
        uint8 step;
    }

    mapping(bytes32 fundId => Fund fund) private _funds;
    mapping(bytes32 caseId => Case case_) private _cases;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) MemberSigned(consortium_, "credtrace ProtectionRegistry") {}

    /// @inheritdoc IProtectionRegistry
    /// @dev Checks the signer first (so a resent declaration fails with {AlreadyRecorded}), then the shape
    /// (period, currency, custodian, amount), then the version chain.
    function declareFund(FundDeclaration calldata d, bytes calldata signature) external {
        (bytes32 id, address signer) = _accept(_fundHash(d), signature, d.platform, _PLATFORM);
        if (d.periodEnd <= d.periodStart) revert InvalidPeriod(d.periodStart, d.periodEnd);
        _checkCurrency(d.currency);
        if (bytes(d.custodian).length == 0) revert EmptyCustodian();
        if (d.amount == 0 || d.amount > _MAX_AMOUNT) revert InvalidAmount(d.amount);
        Fund storage fund = _funds[d.fundId];
        uint32 current = fund.version;
        if (current != 0 && fund.platform != d.platform) {
            revert FundPlatformMismatch(d.fundId, fund.platform, d.platform);
        }
        if (d.version != current + 1) revert FundVersion(d.fundId, current, d.version);
        if (current == 0) fund.platform = d.platform;
        fund.version = d.version;
        emit FundDeclared(id, d.fundId, d, signer);
    }

    /// @inheritdoc IProtectionRegistry
    /// @dev Checks the signer first, then: the step number; for a COMPLAINT that the case is new, the merchant
    /// and claim given and `dueBy` not before `at`; for a later step that the case exists, is this platform's
    /// and this merchant's, the order (COMPLAINT → COMPENSATED → RECOVERED* → CLOSED, or COMPLAINT → CLOSED when
    /// the complaint is rejected or withdrawn), the amount, and that it does not happen before the previous step.
    function recordCaseStep(CaseStep calldata s, bytes calldata signature) external {
        (bytes32 id, address signer) = _accept(_stepHash(s), signature, s.platform, _PLATFORM);
        uint8 step = s.step;
        if (step > _CLOSED) revert InvalidStep(step);
        Case storage c = _cases[s.caseId];
        if (step == _COMPLAINT) {
            if (c.platform != bytes32(0)) revert CaseExists(s.caseId);
            if (s.merchant == bytes32(0)) revert ZeroMerchant();
            _checkAmount(s.amount);
            if (s.dueBy < s.at) revert StepTimeBeforePrevious(s.caseId, s.at, s.dueBy);
            c.platform = s.platform;
            c.merchant = s.merchant;
            c.lastAt = s.at;
        } else {
            if (c.platform == bytes32(0)) revert UnknownCase(s.caseId);
            if (c.platform != s.platform) revert CasePlatformMismatch(s.caseId, c.platform, s.platform);
            if (c.merchant != s.merchant) revert CaseMerchantMismatch(s.caseId, c.merchant, s.merchant);
            uint8 current = c.step;
            if (step == _COMPENSATED) {
                if (current != _COMPLAINT) revert StepOutOfOrder(s.caseId, current, step);
                _checkAmount(s.amount);
                c.compensated = uint64(s.amount);
            } else if (step == _RECOVERED) {
                if (current != _COMPENSATED && current != _RECOVERED) revert StepOutOfOrder(s.caseId, current, step);
                _checkAmount(s.amount);
                uint256 total = uint256(c.recovered) + s.amount;
                if (total > c.compensated) revert RecoveryExceedsCompensation(s.caseId, c.compensated, total);
                c.recovered = uint64(total);
            } else {
                if (current == _CLOSED) revert StepOutOfOrder(s.caseId, current, step);
                if (s.amount != 0) revert InvalidAmount(s.amount);
            }
            uint64 previous = c.lastAt;
            if (s.at < previous) revert StepTimeBeforePrevious(s.caseId, previous, s.at);
            c.lastAt = s.at;
        }
        c.step = step;
        emit CaseStepRecorded(id, s.caseId, s, signer);
    }

    /// @inheritdoc IProtectionRegistry
    function fundOf(bytes32 fundId) external view returns (uint32 version, bytes32 platform) {
        Fund storage fund = _funds[fundId];
        return (fund.version, fund.platform);
    }

    /// @inheritdoc IProtectionRegistry
    function caseOf(bytes32 caseId)
        external
        view
        returns (bytes32 platform, bytes32 merchant, uint8 step, uint64 compensated, uint64 recovered, uint64 lastAt)
    {
        Case storage c = _cases[caseId];
        return (c.platform, c.merchant, c.step, c.compensated, c.recovered, c.lastAt);
    }

    /// @inheritdoc IProtectionRegistry
    function hashFundDeclaration(FundDeclaration calldata d) external view returns (bytes32) {
        return _hashTypedDataV4(_fundHash(d));
    }

    /// @inheritdoc IProtectionRegistry
    function hashCaseStep(CaseStep calldata s) external view returns (bytes32) {
        return _hashTypedDataV4(_stepHash(s));
    }

    /// @dev Reverts with {InvalidAmount} unless 0 < `amount` <= 2^63 - 1.
    function _checkAmount(uint256 amount) private pure {
        if (amount == 0 || amount > _MAX_AMOUNT) revert InvalidAmount(amount);
    }

    /// @dev Reverts with {InvalidCurrency} unless `currency` is three ASCII letters A to Z.
    function _checkCurrency(string calldata currency) private pure {
        bytes calldata b = bytes(currency);
        if (b.length != 3) revert InvalidCurrency(currency);
        for (uint256 i; i < 3; ++i) {
            if (b[i] < 0x41 || b[i] > 0x5a) revert InvalidCurrency(currency);
        }
    }

    /// @dev hashStruct(d); a `string` field is encoded as the keccak256 of its UTF-8 bytes.
    function _fundHash(FundDeclaration calldata d) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _FUND_TYPEHASH,
                d.platform,
                d.fundId,
                d.version,
                d.amount,
                keccak256(bytes(d.currency)),
                keccak256(bytes(d.custodian)),
                d.periodStart,
                d.periodEnd,
                d.nonce
            )
        );
    }

    /// @dev hashStruct(s): the typehash and the eleven (static) words of the struct.
    function _stepHash(CaseStep calldata s) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _STEP_TYPEHASH,
                s.platform,
                s.caseId,
                s.step,
                s.merchant,
                s.consumer,
                s.amount,
                s.dueBy,
                s.traceCode,
                s.decision,
                s.at,
                s.nonce
            )
        );
    }
}
