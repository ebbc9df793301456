"""Online payment management (C11): the PaymentRegistry's signed messages and the keyed hash of an account.

Mirrored in ``contracts/PaymentRegistry.sol`` (same field lists, same checks):

- ``AccountBinding`` — a PAYMENT member binds a merchant's settlement account to the merchant's real-name subject
  (a unified social credit code, or a natural person's salted commitment). A (subject, account) pair is bound once
  at a time.
- ``AccountUnbinding`` — the PAYMENT member that bound a pair ends the binding (the account was closed or changed);
  the pair may then be bound again. History stays: alerts count bindings whether or not they were ended since.
- ``SubjectRelation`` — a PAYMENT member or a REGULATOR declares two subjects one group under one real-name
  controller (a company and its branch): an account they share is then no ``shared_account`` alert.
- ``PaymentSignal`` — a PAYMENT member's monthly aggregates for one merchant: orders settled, refund and chargeback
  rates in basis points (at most 10,000). One per (member, merchant, month YYYYMM).

Payment violations are credit records of kind ``PAYMENT_VIOLATION`` (:mod:`node_bridge.credit`), signed by a
PAYMENT member or a REGULATOR and submitted through ``POST /v1/records`` like any other record.

The account number never leaves the payment institution. What goes on chain is ``accountHash = HMAC-SHA256(pepper,
normalised account number)``: the pepper is a secret shared by the consortium's PAYMENT members
(``CREDTRACE_ACCOUNT_PEPPER``, hex), so the same account gives the same hash at every payment institution, and
without the pepper nobody can test guesses against the hashes (an account number has too few digits for a plain
hash to hide it). :func:`normalise_account` accepts, after removing spaces and dashes:

- a domestic account or card number: 8 to 34 digits;
- an IBAN: two letters (country), two check digits, 11 to 30 letters or digits, whose ISO 13616 mod-97 check holds.

Its errors name the field and what is wrong, never the number or any of its characters.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from credtrace.errors import ValidationFailed
from credtrace.settings import Settings
from node_bridge.consortium import Role
from node_bridge.eip712 import keccak
from node_bridge.signed import MessageType, SignedRegistry

CONTRACT = "PaymentRegistry"
MAX_BPS = 10_000
PEPPER_FILE = "account-pepper"
MIN_PEPPER_BYTES = 16
_SEPARATORS = re.compile(r"[\s\-]+")
_IBAN = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")

BINDING = MessageType(
    "AccountBinding",
    [
        {"name": "payment", "type": "bytes32"},
        {"name": "subject", "type": "bytes32"},
        {"name": "accountHash", "type": "bytes32"},
        {"name": "boundAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
    ],
    "bindAccount",
    "payment",
    Role.PAYMENT,
    subjects=("subject",),
)
UNBINDING = MessageType(
    "AccountUnbinding",
    [
        {"name": "payment", "type": "bytes32"},
        {"name": "subject", "type": "bytes32"},
        {"name": "accountHash", "type": "bytes32"},
        {"name": "unboundAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
    ],
    "unbindAccount",
    "payment",
    Role.PAYMENT,
    subjects=("subject",),
)
RELATION = MessageType(
    "SubjectRelation",
    [
        {"name": "declarant", "type": "bytes32"},
        {"name": "subject", "type": "bytes32"},
        {"name": "related", "type": "bytes32"},
        {"name": "nonce", "type": "uint256"},
    ],
    "relateSubjects",
    "declarant",
    Role.PAYMENT | Role.REGULATOR,
    subjects=("subject", "related"),
)
SIGNAL = MessageType(
    "PaymentSignal",
    [
        {"name": "payment", "type": "bytes32"},
        {"name": "merchant", "type": "bytes32"},
        {"name": "month", "type": "uint32"},
        {"name": "orders", "type": "uint32"},
        {"name": "refundBps", "type": "uint16"},
        {"name": "chargebackBps", "type": "uint16"},
        {"name": "nonce", "type": "uint256"},
    ],
    "fileSignal",
    "payment",
    Role.PAYMENT,
    subjects=("merchant",),
)
REGISTRY = SignedRegistry(CONTRACT, (BINDING, UNBINDING, RELATION, SIGNAL))
"""The PaymentRegistry: EIP-712 domain ``credtrace PaymentRegistry``, version 1."""
EVENTS = {
    "AccountBound": BINDING.name,
    "AccountUnbound": UNBINDING.name,
    "SubjectsRelated": RELATION.name,
    "PaymentSignalFiled": SIGNAL.name,
}
"""Each event of the contract and the message type its struct argument holds."""


# the account number, kept off chain


def normalise_account(value: str, field: str = "account") -> str:
    """A settlement account number in canonical form: without spaces and dashes, letters upper-case.

    Raises :class:`ValidationFailed` on ``field`` saying what is wrong (length, a character that does not belong,
    an IBAN whose check digits do not match); the message never repeats the number or any of its characters.
    """
    if not isinstance(value, str):
        raise ValidationFailed(field, "must be text")
    account = _SEPARATORS.sub("", value).upper()
    if not account:
        raise ValidationFailed(field, "is empty")
    if account.isascii() and account.isdigit():
        if not 8 <= len(account) <= 34:
            raise ValidationFailed(field, f"an account number must have 8 to 34 digits, got {len(account)}")
        return account
    if not account.isascii() or not account.isalnum():
        raise ValidationFailed(field, "may hold only digits (or an IBAN's letters and digits), spaces and dashes")
    if not _IBAN.match(account):
        raise ValidationFailed(
            field, "is neither 8 to 34 digits nor an IBAN (2 letters, 2 check digits, 11 to 30 letters or digits)"
        )
    rearranged = account[4:] + account[:4]
    if int("".join(str(int(c, 36)) for c in rearranged)) % 97 != 1:
        raise ValidationFailed(field, "is not a valid IBAN: its check digits (positions 3-4) do not match")
    return account


def account_hash(pepper: bytes, account: str, field: str = "account") -> bytes:
    """The on-chain ``accountHash`` of a settlement account: ``HMAC-SHA256(pepper, normalised number)``."""
    if len(pepper) < MIN_PEPPER_BYTES:
        raise ValidationFailed("account_pepper", f"must be at least {MIN_PEPPER_BYTES} bytes")
    return hmac.new(pepper, normalise_account(account, field).encode(), hashlib.sha256).digest()


def load_account_pepper(settings: Settings) -> bytes:
    """``CREDTRACE_ACCOUNT_PEPPER`` (hex) if set, else ``<data dir>/account-pepper`` (the demo creates one).

    There is no silent default: a pepper made up on one machine would give hashes no other payment institution
    can match, so without either this raises :class:`ValidationFailed` on ``account_pepper`` saying what to set.
    """
    if settings.account_pepper is not None:
        return _pepper_bytes(settings.account_pepper.get_secret_value(), "CREDTRACE_ACCOUNT_PEPPER")
    path = settings.data_path / PEPPER_FILE
    if not path.exists():
        raise ValidationFailed(
            "account_pepper",
            f"set CREDTRACE_ACCOUNT_PEPPER to the consortium's account pepper (hex); {path} does not exist either",
        )
    return _pepper_bytes(path.read_text().strip(), str(path))


def create_account_pepper(settings: Settings) -> Path:
    """Write a fresh random pepper to ``<data dir>/account-pepper`` (0600) unless there is one; for the demo."""
    path = settings.data_path / PEPPER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32) + "\n")
    return path


def _pepper_bytes(text: str, where: str) -> bytes:
    try:
        pepper = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise ValidationFailed("account_pepper", f"{where} does not hold hex") from None
    if len(pepper) < MIN_PEPPER_BYTES:
        raise ValidationFailed("account_pepper", f"{where} holds {len(pepper)} bytes; at least {MIN_PEPPER_BYTES}")
    return pepper


# the rules the contract checks


def check_month(month: int, field: str = "month") -> None:
    """A month YYYYMM of the years 2000 to 2999 (``InvalidPeriod`` on chain)."""
    if not (2000 <= month // 100 <= 2999 and 1 <= month % 100 <= 12):
        raise ValidationFailed(field, f"{month} is not a month YYYYMM (years 2000 to 2999, months 01 to 12)")


def check_bps(value: int, field: str) -> None:
    """A rate in basis points, at most 10,000 (``InvalidRate`` on chain)."""
    if value > MAX_BPS:
        raise ValidationFailed(field, f"{value} basis points is more than 100 % ({MAX_BPS})")


def pair_key(subject: bytes, account: bytes) -> str:
    """0x-hex key of a (subject, account hash) pair: the contract's ``keccak256(abi.encode(subject, hash))``."""
    return "0x" + keccak(subject + account).hex()


def relation_key(subject: bytes, related: bytes) -> str:
    """0x-hex key of an unordered pair of subjects (the smaller first), as the contract computes it."""
    first, second = sorted((subject, related))
    return "0x" + keccak(first + second).hex()


def signal_key(payment: bytes, merchant: bytes, month: int) -> str:
    """0x-hex key of a (payment member, merchant, month) slot, as the contract computes it."""
    return "0x" + keccak(payment + merchant + month.to_bytes(32, "big")).hex()
