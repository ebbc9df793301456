// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IConsortium} from "./interfaces/IConsortium.sol";
import {IPaymentRegistry} from "./interfaces/IPaymentRegistry.sol";
import {BatchCall} from "./utils/BatchCall.sol";
import {MemberSigned} from "./utils/MemberSigned.sol";

/// @title PaymentRegistry
/// @notice Settlement account bindings and monthly payment signals signed by PAYMENT members. See
/// {IPaymentRegistry}.
/// @dev The rules the chain itself must hold are only the uniqueness ones (a pair bound once at a time, ended only
/// by the member that bound it; one signal per member, merchant and month) and the shape of a signal; the alerts (one account under several subjects, a
/// blacklisted subject's account reappearing) are derived by the index from the events, where the blacklist
/// records of the CreditRegistry are at hand.
contract PaymentRegistry is IPaymentRegistry, MemberSigned, BatchCall {
    uint8 private constant _REGULATOR = 1;
    uint8 private constant _PAYMENT = 32;
    uint16 private constant _MAX_BPS = 10_000;

    bytes32 private constant _BINDING_TYPEHASH = keccak256(
        "AccountBinding(bytes32 payment,bytes32 subject,bytes32 accountHash,uint64 boundAt,uint256 nonce)"
    );
    bytes32 private constant _UNBINDING_TYPEHASH = keccak256(
        "AccountUnbinding(bytes32 payment,bytes32 subject,bytes32 accountHash,uint64 unboundAt,uint256 nonce)"
    );
    bytes32 private constant _RELATION_TYPEHASH =
        keccak256("SubjectRelation(bytes32 declarant,bytes32 subject,bytes32 related,uint256 nonce)");
    bytes32 private constant _SIGNAL_TYPEHASH = keccak256(
        "PaymentSignal(bytes32 payment,bytes32 merchant,uint32 month,uint32 orders,uint16 refundBps,"
        "uint16 chargebackBps,uint256 nonce)"
    );

    mapping(bytes32 pair => bytes32 payment) private _binder;
    mapping(bytes32 pair => bool related) private _related;
    mapping(bytes32 slot => bool filed) private _signals;

    /// @param consortium_ The Consortium whose members and keys may sign.
    constructor(IConsortium consortium_) MemberSigned(consortium_, "credtrace PaymentRegistry") {}

    /// @inheritdoc IPaymentRegistry
    function bindAccount(AccountBinding calldata binding, bytes calldata signature) external {
        if (binding.subject == bytes32(0)) revert InvalidSubject();
        if (binding.accountHash == bytes32(0)) revert InvalidAccountHash();
        bytes32 pair = _pair(binding.subject, binding.accountHash);
        if (_binder[pair] != bytes32(0)) revert BindingExists(binding.subject, binding.accountHash);
        (bytes32 id, address signer) = _accept(_bindingHash(binding), signature, binding.payment, _PAYMENT);
        _binder[pair] = binding.payment; // non-zero: `_accept` checked it is the signer's organisation
        emit AccountBound(id, binding.subject, binding.accountHash, binding, signer);
    }

    /// @inheritdoc IPaymentRegistry
    function unbindAccount(AccountUnbinding calldata unbinding, bytes calldata signature) external {
        bytes32 pair = _pair(unbinding.subject, unbinding.accountHash);
        bytes32 binder = _binder[pair];
        if (binder == bytes32(0)) revert NotBound(unbinding.subject, unbinding.accountHash);
        if (binder != unbinding.payment) revert NotBinder(unbinding.payment, binder);
        (bytes32 id, address signer) = _accept(_unbindingHash(unbinding), signature, unbinding.payment, _PAYMENT);
        delete _binder[pair];
        emit AccountUnbound(id, unbinding.subject, unbinding.accountHash, unbinding, signer);
    }

    /// @inheritdoc IPaymentRegistry
    function relateSubjects(SubjectRelation calldata relation, bytes calldata signature) external {
        bytes32 a = relation.subject;
        bytes32 b = relation.related;
        if (a == bytes32(0) || b == bytes32(0) || a == b) revert InvalidSubject();
        bytes32 pair = _unordered(a, b);
        if (_related[pair]) revert RelationExists(a, b);
        (bytes32 id, address signer) =
            _accept(_relationHash(relation), signature, relation.declarant, _PAYMENT | _REGULATOR);
        _related[pair] = true;
        emit SubjectsRelated(id, a, b, relation, signer);
    }

    /// @inheritdoc IPaymentRegistry
    function fileSignal(PaymentSignal calldata signal, bytes calldata signature) external {
        if (signal.merchant == bytes32(0)) revert InvalidSubject();
        _checkMonth(signal.month);
        if (signal.refundBps > _MAX_BPS) revert InvalidRate(signal.refundBps);
        if (signal.chargebackBps > _MAX_BPS) revert InvalidRate(signal.chargebackBps);
        bytes32 slot = _slot(signal.payment, signal.merchant, signal.month);
        if (_signals[slot]) revert SignalExists(signal.payment, signal.merchant, signal.month);
        (bytes32 id, address signer) = _accept(_signalHash(signal), signature, signal.payment, _PAYMENT);
        _signals[slot] = true;
        emit PaymentSignalFiled(id, signal.merchant, signal, signer);
    }

    /// @inheritdoc IPaymentRegistry
    function isBound(bytes32 subject, bytes32 accountHash) external view returns (bool) {
        return _binder[_pair(subject, accountHash)] != bytes32(0);
    }

    /// @inheritdoc IPaymentRegistry
    function binderOf(bytes32 subject, bytes32 accountHash) external view returns (bytes32) {
        return _binder[_pair(subject, accountHash)];
    }

    /// @inheritdoc IPaymentRegistry
    function areRelated(bytes32 subject, bytes32 related) external view returns (bool) {
        return _related[_unordered(subject, related)];
    }

    /// @inheritdoc IPaymentRegistry
    function hasSignal(bytes32 payment, bytes32 merchant, uint32 month) external view returns (bool) {
        return _signals[_slot(payment, merchant, month)];
    }

    /// @inheritdoc IPaymentRegistry
    function hashBinding(AccountBinding calldata binding) external view returns (bytes32) {
        return _hashTypedDataV4(_bindingHash(binding));
    }

    /// @inheritdoc IPaymentRegistry
    function hashUnbinding(AccountUnbinding calldata unbinding) external view returns (bytes32) {
        return _hashTypedDataV4(_unbindingHash(unbinding));
    }

    /// @inheritdoc IPaymentRegistry
    function hashRelation(SubjectRelation calldata relation) external view returns (bytes32) {
        return _hashTypedDataV4(_relationHash(relation));
    }

    /// @inheritdoc IPaymentRegistry
    function hashSignal(PaymentSignal calldata signal) external view returns (bytes32) {
        return _hashTypedDataV4(_signalHash(signal));
    }

    /// @dev Reverts with {InvalidPeriod} unless `month` is YYYYMM with YYYY in 2000..2999 and MM in 1..12.
    function _checkMonth(uint32 month) private pure {
        uint32 year = month / 100;
        uint32 mm = month % 100;
        if (year < 2000 || year > 2999 || mm == 0 || mm > 12) revert InvalidPeriod(month);
    }

    function _pair(bytes32 subject, bytes32 accountHash) private pure returns (bytes32) {
        return keccak256(abi.encode(subject, accountHash));
    }

    /// @dev The key of an unordered pair of subjects: the smaller first.
    function _unordered(bytes32 a, bytes32 b) private pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    function _slot(bytes32 payment, bytes32 merchant, uint32 month) private pure returns (bytes32) {
        return keccak256(abi.encode(payment, merchant, month));
    }

    /// @dev hashStruct(binding): typehash ‖ the five words of the (static) struct.
    function _bindingHash(AccountBinding calldata b) private pure returns (bytes32) {
        return keccak256(abi.encode(_BINDING_TYPEHASH, b.payment, b.subject, b.accountHash, b.boundAt, b.nonce));
    }

    /// @dev hashStruct(unbinding): typehash ‖ the five words of the (static) struct.
    function _unbindingHash(AccountUnbinding calldata u) private pure returns (bytes32) {
        return keccak256(abi.encode(_UNBINDING_TYPEHASH, u.payment, u.subject, u.accountHash, u.unboundAt, u.nonce));
    }

    /// @dev hashStruct(relation): typehash ‖ the four words of the (static) struct.
    function _relationHash(SubjectRelation calldata r) private pure returns (bytes32) {
        return keccak256(abi.encode(_RELATION_TYPEHASH, r.declarant, r.subject, r.related, r.nonce));
    }

    /// @dev hashStruct(signal): typehash ‖ the seven words of the (static) struct.
    function _signalHash(PaymentSignal calldata s) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                _SIGNAL_TYPEHASH, s.payment, s.merchant, s.month, s.orders, s.refundBps, s.chargebackBps, s.nonce
            )
        );
    }
}
