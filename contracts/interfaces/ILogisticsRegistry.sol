// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IMemberSigned} from "./IMemberSigned.sol";

/// @title Logistics credit of credtrace (C6): delivery firms, couriers, evaluations and published rating rules
/// @notice LOGISTICS members register delivery firms (by their unified social credit code, as a subject id) and
/// couriers (natural persons: a salted commitment only, never a name or an identity number). PLATFORM and
/// REGULATOR members sign one evaluation per firm and month: parcels, on-time rate, loss and damage rate,
/// complaints per 10,000 parcels, violations and sanctions. REGULATOR members publish the keccak256 of each version
/// of the rating rule file (`config/logistics/rules/vN.yaml`), versions 1, 2, 3... in order. The grade itself is
/// computed off chain, by anyone, from these events and the published rule (`credtrace/logistics_rating.py`).
/// Messages are EIP-712 (domain "credtrace LogisticsRegistry", version "1", types as in `node_bridge/logistics.py`);
/// each is recorded once (its digest is its id) and emitted whole, so the index can be rebuilt from events alone.
interface ILogisticsRegistry is IMemberSigned {
    /// @notice LOGISTICS member `registrar` registers delivery firm `firm` (its credit code, zero-padded).
    struct FirmRegistration {
        bytes32 registrar;
        bytes32 firm;
        uint256 nonce;
    }

    /// @notice LOGISTICS member `registrar` registers a courier of `firm`: `courier` is a salted commitment
    /// (`keccak256(salt ‖ identity number)`, see `credtrace/persons.py`), never anything that names the person.
    struct CourierRegistration {
        bytes32 registrar;
        bytes32 courier;
        bytes32 firm;
        uint256 nonce;
    }

    /// @notice PLATFORM or REGULATOR member `evaluator` evaluates `firm` over month `period` (YYYYMM): `parcels`
    /// handled, on-time and loss-and-damage rates in basis points (0 to 10,000), complaints per 10,000 parcels,
    /// and the counts of violations found and sanctions imposed in the month.
    struct Evaluation {
        bytes32 evaluator;
        bytes32 firm;
        uint32 period;
        uint32 parcels;
        uint16 onTimeBps;
        uint16 lossDamageBps;
        uint32 complaintsPer10k;
        uint16 violations;
        uint16 sanctions;
        uint256 nonce;
    }

    /// @notice REGULATOR member `publisher` publishes version `version` of the rating rule: `ruleHash` is the
    /// keccak256 of the rule file's exact bytes.
    struct RatingRule {
        bytes32 publisher;
        uint32 version;
        bytes32 ruleHash;
        uint256 nonce;
    }

    /// @notice A firm was registered; `id` is the message's EIP-712 digest.
    event FirmRegistered(bytes32 indexed id, bytes32 indexed firm, FirmRegistration registration, address signer);
    /// @notice A courier (commitment) was registered with a firm.
    event CourierRegistered(
        bytes32 indexed id, bytes32 indexed firm, CourierRegistration registration, address signer
    );
    /// @notice An evaluation of a firm for one month was recorded.
    event EvaluationRecorded(bytes32 indexed id, bytes32 indexed firm, Evaluation evaluation, address signer);
    /// @notice Version `version` of the rating rule was published.
    event RulePublished(bytes32 indexed id, uint32 indexed version, RatingRule rule, address signer);

    /// @notice The firm is zero, or the courier commitment is zero.
    error ZeroSubject();
    /// @notice `firm` is registered already.
    error FirmAlreadyRegistered(bytes32 firm);
    /// @notice `firm` is not a registered firm.
    error FirmNotRegistered(bytes32 firm);
    /// @notice `courier` is registered with `firm` already.
    error CourierAlreadyRegistered(bytes32 courier, bytes32 firm);
    /// @notice `period` is not a month YYYYMM (year 2000-2999, month 01-12).
    error InvalidPeriod(uint32 period);
    /// @notice A rate in basis points is above 10,000.
    error InvalidRate(uint16 bps);
    /// @notice An evaluation of no parcels (it would weigh nothing in a grade).
    error NoParcels();
    /// @notice `evaluator` has evaluated `firm` for `period` already (one evaluation per evaluator, firm, month).
    error EvaluationExists(bytes32 evaluator, bytes32 firm, uint32 period);
    /// @notice The rule's version is `given`; the next version must be `expected` (versions run 1, 2, 3...).
    error RuleVersion(uint32 given, uint32 expected);
    /// @notice The rule's hash is zero.
    error ZeroRuleHash();

    /// @notice Register a delivery firm (signed by a LOGISTICS member's active key).
    function registerFirm(FirmRegistration calldata m, bytes calldata signature) external;

    /// @notice Register a courier of a registered firm (signed by a LOGISTICS member's active key).
    function registerCourier(CourierRegistration calldata m, bytes calldata signature) external;

    /// @notice Record an evaluation of a registered firm (signed by a PLATFORM or REGULATOR member's active key).
    function evaluate(Evaluation calldata m, bytes calldata signature) external;

    /// @notice Publish the next version of the rating rule (signed by a REGULATOR member's active key).
    function publishRule(RatingRule calldata m, bytes calldata signature) external;

    /// @notice Whether `firm` is a registered firm.
    function isFirm(bytes32 firm) external view returns (bool);

    /// @notice The firm `courier` is registered with (zero if none).
    function courierFirm(bytes32 courier) external view returns (bytes32);

    /// @notice Whether `evaluator` has evaluated `firm` for `period`.
    function hasEvaluation(bytes32 evaluator, bytes32 firm, uint32 period) external view returns (bool);

    /// @notice The latest published rule version (0 before the first).
    function latestRuleVersion() external view returns (uint32);

    /// @notice The keccak256 of rule file version `version` (zero if not published).
    function ruleHash(uint32 version) external view returns (bytes32);
}
