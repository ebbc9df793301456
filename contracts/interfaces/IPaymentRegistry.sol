// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IMemberSigned} from "./IMemberSigned.sol";

/// @title Online payment management of credtrace (C11): settlement account bindings and payment signals
/// @notice PAYMENT members sign (EIP-712, domain "credtrace PaymentRegistry", version "1", types as in
/// `node_bridge/payments.py`) that a merchant's settlement account is bound to its real-name subject, and the
/// merchant's monthly refund and chargeback aggregates. The account number never comes here: `accountHash` is
/// `HMAC-SHA256(pepper, normalised account number)`, the pepper a secret of the consortium's PAYMENT members, so
/// the same account gives the same hash at every payment institution and nobody without the pepper can test
/// guesses. Payment violations are CreditRegistry records of kind PAYMENT_VIOLATION, not messages of this contract.
/// Stored: the binding member of each bound (subject, account hash) pair, a flag per related pair of subjects and
/// per (payment member, merchant, month); every signed field
/// is in an event, so the index (bindings, signals and the alerts derived from them) is rebuilt from the chain.
interface IPaymentRegistry is IMemberSigned {
    /// @notice The PAYMENT member `payment` (its Consortium id) binds the settlement account `accountHash` to the
    /// real-name subject `subject` (a unified social credit code, ASCII left-aligned and zero-padded, or a natural
    /// person's salted commitment) as of `boundAt` (unix seconds). `nonce` is unique per signing organisation.
    struct AccountBinding {
        bytes32 payment;
        bytes32 subject;
        bytes32 accountHash;
        uint64 boundAt;
        uint256 nonce;
    }

    /// @notice The PAYMENT member `payment` that bound `accountHash` to `subject` ends that binding as of `unboundAt`
    /// (the account was closed or changed). The pair may be bound again later; the history stays in the events.
    struct AccountUnbinding {
        bytes32 payment;
        bytes32 subject;
        bytes32 accountHash;
        uint64 unboundAt;
        uint256 nonce;
    }

    /// @notice The member `declarant` (a PAYMENT member or a REGULATOR) declares that `subject` and `related` are
    /// one group under one real-name controller (a company and its branch, say): an account they share is not an
    /// alert. The relation is symmetric, and not transitive (a group of three is three relations).
    struct SubjectRelation {
        bytes32 declarant;
        bytes32 subject;
        bytes32 related;
        uint256 nonce;
    }

    /// @notice The PAYMENT member `payment` reports for `merchant` (a subject) and month `month` (YYYYMM): the
    /// number of orders it settled, and the refund and chargeback rates in basis points of those orders (at most
    /// 10,000 each).
    struct PaymentSignal {
        bytes32 payment;
        bytes32 merchant;
        uint32 month;
        uint32 orders;
        uint16 refundBps;
        uint16 chargebackBps;
        uint256 nonce;
    }

    /// @notice A binding was recorded; `id` is its EIP-712 digest.
    event AccountBound(
        bytes32 indexed id, bytes32 indexed subject, bytes32 indexed accountHash, AccountBinding binding, address signer
    );
    /// @notice A binding was ended; `id` is the unbinding's EIP-712 digest.
    event AccountUnbound(
        bytes32 indexed id,
        bytes32 indexed subject,
        bytes32 indexed accountHash,
        AccountUnbinding unbinding,
        address signer
    );
    /// @notice Two subjects were declared related; `id` is the declaration's EIP-712 digest.
    event SubjectsRelated(
        bytes32 indexed id, bytes32 indexed subject, bytes32 indexed related, SubjectRelation relation, address signer
    );
    /// @notice A monthly signal was recorded; `id` is its EIP-712 digest.
    event PaymentSignalFiled(bytes32 indexed id, bytes32 indexed merchant, PaymentSignal signal, address signer);

    /// @notice The subject is zero (or, in a relation, both subjects are the same).
    error InvalidSubject();
    /// @notice `subject` and `related` were declared related already (in either order).
    error RelationExists(bytes32 subject, bytes32 related);
    /// @notice The account hash is zero.
    error InvalidAccountHash();
    /// @notice `accountHash` is already bound to `subject` (a pair is bound once, by whichever member comes first).
    error BindingExists(bytes32 subject, bytes32 accountHash);
    /// @notice `accountHash` is not bound to `subject` (never, or no longer).
    error NotBound(bytes32 subject, bytes32 accountHash);
    /// @notice Only the member that bound a pair (`binder`) may end the binding, not `payment`.
    error NotBinder(bytes32 payment, bytes32 binder);
    /// @notice `month` is not a month YYYYMM of the years 2000 to 2999.
    error InvalidPeriod(uint32 month);
    /// @notice A rate (basis points) above 10,000.
    error InvalidRate(uint16 bps);
    /// @notice `payment` already filed its signal for `merchant` and `month`.
    error SignalExists(bytes32 payment, bytes32 merchant, uint32 month);

    /// @notice Record a binding signed by an active key of `binding.payment`, a member holding PAYMENT.
    function bindAccount(AccountBinding calldata binding, bytes calldata signature) external;

    /// @notice End a binding, signed by an active key of `unbinding.payment`: the PAYMENT member that bound it.
    function unbindAccount(AccountUnbinding calldata unbinding, bytes calldata signature) external;

    /// @notice Record that two subjects are related, signed by an active key of `relation.declarant`, a member
    /// holding PAYMENT or REGULATOR.
    function relateSubjects(SubjectRelation calldata relation, bytes calldata signature) external;

    /// @notice Record a monthly signal signed by an active key of `signal.payment`, a member holding PAYMENT.
    function fileSignal(PaymentSignal calldata signal, bytes calldata signature) external;

    /// @notice Whether `accountHash` is bound to `subject`.
    function isBound(bytes32 subject, bytes32 accountHash) external view returns (bool);

    /// @notice The PAYMENT member that bound `accountHash` to `subject` (zero if the pair is not bound).
    function binderOf(bytes32 subject, bytes32 accountHash) external view returns (bytes32);

    /// @notice Whether `subject` and `related` were declared related (in either order).
    function areRelated(bytes32 subject, bytes32 related) external view returns (bool);

    /// @notice Whether `payment` filed its signal for `merchant` and `month`.
    function hasSignal(bytes32 payment, bytes32 merchant, uint32 month) external view returns (bool);

    /// @notice The id (EIP-712 digest) of a binding.
    function hashBinding(AccountBinding calldata binding) external view returns (bytes32);

    /// @notice The id (EIP-712 digest) of an unbinding.
    function hashUnbinding(AccountUnbinding calldata unbinding) external view returns (bytes32);

    /// @notice The id (EIP-712 digest) of a relation.
    function hashRelation(SubjectRelation calldata relation) external view returns (bytes32);

    /// @notice The id (EIP-712 digest) of a signal.
    function hashSignal(PaymentSignal calldata signal) external view returns (bytes32);
}
