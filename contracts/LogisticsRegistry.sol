// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {ILogisticsRegistry} from "./interfaces/ILogisticsRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";
import {MemberSigned} from "./utils/MemberSigned.sol";

/// @title LogisticsRegistry
/// @notice Logistics credit (C6). See {ILogisticsRegistry}.
/// @dev Storage holds only what the rules need: a flag per registered firm, the firm of each courier, a flag per
/// (evaluator, firm, month) evaluated, and the hash of each published rule version. Everything else (the
/// evaluation figures, who signed) is in the events, from which the index and any recomputation of a grade read.
contract LogisticsRegistry is ILogisticsRegistry, MemberSigned, BatchCall {
    uint8 private constant _REGULATOR = 1;
    uint8 private constant _PLATFORM = 2;
    uint8 private constant _LOGISTICS = 4;
    uint16 private constant _MAX_BPS = 10_000;

    bytes32 private constant _FIRM_TYPEHASH = keccak256("FirmRegistration(bytes32 registrar,bytes32 firm,uint256 nonce)");
    bytes32 private constant _COURIER_TYPEHASH =
        keccak256("CourierRegistration(bytes32 registrar,bytes32 courier,bytes32 firm,uint256 nonce)");
    bytes32 private constant _EVALUATION_TYPEHASH = keccak256(
        "Evaluation(bytes32 evaluator,bytes32 firm,uint32 period,uint32 parcels,uint16 onTimeBps,uint16 lossDamageBps,"
        "uint32 complaintsPer10k,uint16 violations,uint16 sanctions,uint256 nonce)"
    );
    bytes32 private constant _RULE_TYPEHASH =
        keccak256("RatingRule(bytes32 publisher,uint32 version,bytes32 ruleHash,uint256 nonce)");

    mapping(bytes32 firm => bool registered) private _firms;
    mapping(bytes32 courier => bytes32 firm) private _couriers;
    mapping(bytes32 key => bool evaluated) private _evaluated;
    mapping(uint32 version => bytes32 hash) private _rules;
    uint32 private _latestRule;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) MemberSigned(consortium_, "credtrace LogisticsRegistry") {}

    /// @inheritdoc ILogisticsRegistry
    function registerFirm(FirmRegistration calldata m, bytes calldata signature) external {
        if (m.firm == bytes32(0)) revert ZeroSubject();
        if (_firms[m.firm]) revert FirmAlreadyRegistered(m.firm);
        bytes32 structHash = keccak256(abi.encode(_FIRM_TYPEHASH, m.registrar, m.firm, m.nonce));
        (bytes32 id, address signer) = _accept(structHash, signature, m.registrar, _LOGISTICS);
        _firms[m.firm] = true;
        emit FirmRegistered(id, m.firm, m, signer);
    }

    /// @inheritdoc ILogisticsRegistry
    function registerCourier(CourierRegistration calldata m, bytes calldata signature) external {
        if (m.courier == bytes32(0)) revert ZeroSubject();
        if (!_firms[m.firm]) revert FirmNotRegistered(m.firm);
        if (_couriers[m.courier] == m.firm) revert CourierAlreadyRegistered(m.courier, m.firm);
        bytes32 structHash = keccak256(abi.encode(_COURIER_TYPEHASH, m.registrar, m.courier, m.firm, m.nonce));
        (bytes32 id, address signer) = _accept(structHash, signature, m.registrar, _LOGISTICS);
        _couriers[m.courier] = m.firm;
        emit CourierRegistered(id, m.firm, m, signer);
    }

    /// @inheritdoc ILogisticsRegistry
    /// @dev Checks the figures first, then the firm and the (evaluator, firm, month) slot, then the signer.
    function evaluate(Evaluation calldata m, bytes calldata signature) external {
        uint32 period = m.period;
        uint32 month = period % 100;
        uint32 year = period / 100;
        if (month == 0 || month > 12 || year < 2000 || year > 2999) revert InvalidPeriod(period);
        if (m.onTimeBps > _MAX_BPS) revert InvalidRate(m.onTimeBps);
        if (m.lossDamageBps > _MAX_BPS) revert InvalidRate(m.lossDamageBps);
        if (m.parcels == 0) revert NoParcels();
        if (!_firms[m.firm]) revert FirmNotRegistered(m.firm);
        bytes32 key = keccak256(abi.encode(m.evaluator, m.firm, period));
        if (_evaluated[key]) revert EvaluationExists(m.evaluator, m.firm, period);
        (bytes32 id, address signer) = _accept(_evaluationHash(m), signature, m.evaluator, _PLATFORM | _REGULATOR);
        _evaluated[key] = true;
        emit EvaluationRecorded(id, m.firm, m, signer);
    }

    /// @inheritdoc ILogisticsRegistry
    function publishRule(RatingRule calldata m, bytes calldata signature) external {
        uint32 expected = _latestRule + 1;
        if (m.version != expected) revert RuleVersion(m.version, expected);
        if (m.ruleHash == bytes32(0)) revert ZeroRuleHash();
        bytes32 structHash = keccak256(abi.encode(_RULE_TYPEHASH, m.publisher, m.version, m.ruleHash, m.nonce));
        (bytes32 id, address signer) = _accept(structHash, signature, m.publisher, _REGULATOR);
        _rules[m.version] = m.ruleHash;
        _latestRule = m.version;
        emit RulePublished(id, m.version, m, signer);
    }

    /// @inheritdoc ILogisticsRegistry
    function isFirm(bytes32 firm) external view returns (bool) {
        return _firms[firm];
    }

    /// @inheritdoc ILogisticsRegistry
    function courierFirm(bytes32 courier) external view returns (bytes32) {
        return _couriers[courier];
    }

    /// @inheritdoc ILogisticsRegistry
    function hasEvaluation(bytes32 evaluator, bytes32 firm, uint32 period) external view returns (bool) {
        return _evaluated[keccak256(abi.encode(evaluator, firm, period))];
    }

    /// @inheritdoc ILogisticsRegistry
    function latestRuleVersion() external view returns (uint32) {
        return _latestRule;
    }

    /// @inheritdoc ILogisticsRegistry
    function ruleHash(uint32 version) external view returns (bytes32) {
        return _rules[version];
    }

    /// @dev hashStruct(m): the typehash and the ten static fields, in order.
    function _evaluationHash(Evaluation calldata m) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _EVALUATION_TYPEHASH,
                m.evaluator,
                m.firm,
                m.period,
                m.parcels,
                m.onTimeBps,
                m.lossDamageBps,
                m.complaintsPer10k,
                m.violations,
                m.sanctions,
                m.nonce
            )
        );
    }
}
