"""Natural persons (couriers, individual sellers): known on chain and in records only by a salted commitment.

A resident identity number (GB 11643-1999) is checked and normalised by :func:`normalise_id_number`, whose
errors say what is wrong and where but never repeat the number. Registering it stores a random 32-byte salt and
``commitment = keccak256(salt ‖ normalised id)``; a lookup key, ``HMAC-SHA256(pepper, normalised id)``, makes
registration idempotent without storing the number. Erasing a person (crypto-shredding) deletes the salt and
the lookup key: the commitment can then no longer be tied to anyone, and registering the same number again
gives a new commitment. The number itself is never stored, logged or returned.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import date
from pathlib import Path
from typing import Literal

from eth_utils.crypto import keccak
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.models import Person
from credtrace.errors import Gone, NotAuthorised, NotFound, ValidationFailed
from credtrace.settings import Settings
from node_bridge.models import utcnow

PEPPER_FILE = "person-pepper"
SALT_BYTES = 32
_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2
_CHECK = "10X98765432"  # indexed by the weighted sum mod 11 (ISO 7064 MOD 11-2)
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54}
    | {61, 62, 63, 64, 65, 71, 81, 82, 83}
)  # GB/T 2260 province-level divisions; 81-83: residence permits of Hong Kong, Macao and Taiwan residents
EARLIEST_BIRTH_YEAR = 1900

PersonState = Literal["live", "shredded", "unknown"]


def id_check_character(body17: str) -> str:
    """The GB 11643 check character (0-9 or X) of the first 17 digits."""
    return _CHECK[sum(int(c) * w for c, w in zip(body17, _WEIGHTS, strict=True)) % 11]


def _check_birth_date(digits: str, field: str, today: date) -> None:
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise ValidationFailed(field, "birth date at positions 7-14 is not a calendar date (YYYYMMDD)") from None
    if born.year < EARLIEST_BIRTH_YEAR:
        raise ValidationFailed(field, f"birth date at positions 7-14 is before {EARLIEST_BIRTH_YEAR}")
    if born > today:
        raise ValidationFailed(field, "birth date at positions 7-14 is in the future")


def normalise_id_number(value: str, field: str = "id_number", today: date | None = None) -> str:
    """Check a PRC resident identity number and return it normalised (trimmed, check character ``X`` upper-case).

    Raises :class:`ValidationFailed` on ``field`` naming what is wrong and at which position: the length, a
    character that is not a digit, the province code (positions 1-2), the birth date (positions 7-14) or the
    check character (position 18). Messages never contain the number or any of its characters.
    """
    number = value.strip()
    if len(number) != 18:
        raise ValidationFailed(field, f"must be 18 characters, got {len(number)}")
    number = number[:17] + number[17].upper()
    for position, char in enumerate(number[:17], start=1):
        if not ("0" <= char <= "9"):
            raise ValidationFailed(field, f"character at position {position} must be a digit 0-9")
    if not ("0" <= number[17] <= "9" or number[17] == "X"):
        raise ValidationFailed(field, "check character at position 18 must be a digit 0-9 or X")
    if int(number[:2]) not in _PROVINCES:
        raise ValidationFailed(field, "positions 1-2 are not a province-level division code (GB/T 2260)")
    _check_birth_date(number[6:14], field, today or date.today())
    if number[17] != id_check_character(number[:17]):
        raise ValidationFailed(field, "check character at position 18 does not match positions 1-17 (MOD 11-2)")
    return number


def commitment_of(salt: bytes, normalised: str) -> str:
    """``0x`` + keccak256(salt ‖ normalised id as UTF-8): what the chain and the records may hold."""
    return "0x" + keccak(salt + normalised.encode()).hex()


def lookup_key(pepper: bytes, normalised: str) -> str:
    """HMAC-SHA256(pepper, normalised id), hex: finds a live registration without storing the number."""
    return hmac.new(pepper, normalised.encode(), hashlib.sha256).hexdigest()


def _create_pepper(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32) + "\n")


def load_pepper(settings: Settings) -> bytes:
    """``CREDTRACE_PERSON_PEPPER`` if set, else ``<data dir>/person-pepper`` (32 random bytes, created 0600)."""
    if settings.person_pepper is not None:
        pepper = settings.person_pepper.get_secret_value()
        if not pepper:
            raise ValidationFailed("person_pepper", "CREDTRACE_PERSON_PEPPER is set but empty")
        return pepper.encode()
    path = settings.data_path / PEPPER_FILE
    if not path.exists():
        _create_pepper(path)
    text = path.read_text().strip()
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ValidationFailed("person_pepper", f"{path} does not hold hex") from exc


def register_person(session: Session, pepper: bytes, id_number: str, member_id: str) -> str:
    """The commitment of a live registration of this number, or of a new one made now (flushed, not committed).

    The same number gives the same commitment while its salt lives; after shredding, a new one. A concurrent
    registration of the same number is detected by the unique lookup key: the session is rolled back and the
    other registration's commitment returned.
    """
    normalised = normalise_id_number(id_number)
    key = lookup_key(pepper, normalised)
    existing = session.exec(select(Person).where(Person.lookup_key == key)).first()
    if existing is not None:
        return existing.commitment
    salt = secrets.token_bytes(SALT_BYTES)
    person = Person(
        commitment=commitment_of(salt, normalised), salt=salt.hex(), lookup_key=key, registered_by=member_id
    )
    session.add(person)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return session.exec(select(Person).where(Person.lookup_key == key)).one().commitment
    return person.commitment


def shred_person(session: Session, commitment: str, by_member: str, any_person: bool = False) -> Person:
    """Erase a person's salt and lookup key (idempotent; flushed, not committed); the row stays, shredded.

    Only the member that registered the person may, unless ``any_person`` (a regulator): :class:`NotAuthorised`.
    """
    person = session.get(Person, commitment.lower())
    if person is None:
        raise NotFound(f"no natural person with commitment {commitment}")
    if not any_person and person.registered_by != by_member:
        raise NotAuthorised(
            f"commitment: {commitment} was registered by another member; only it or a regulator may erase it"
        )
    if person.shredded_at is None:
        person.salt = None
        person.lookup_key = None
        person.shredded_at = utcnow()
        session.add(person)
        session.flush()
    return person


def person_state(session: Session, commitment: str) -> PersonState:
    """``live`` (salt kept), ``shredded`` (erased: the commitment ties to no one any more) or ``unknown``."""
    person = session.get(Person, commitment.lower())
    if person is None:
        return "unknown"
    return "shredded" if person.shredded_at is not None else "live"


def ensure_not_shredded(session: Session, commitment: str) -> Literal["live", "unknown"]:
    """For routes about a natural-person subject: :class:`Gone` (HTTP 410, naming it) if it was shredded."""
    state = person_state(session, commitment)
    if state == "shredded":
        raise Gone(commitment, "this natural person's data was erased (crypto-shredded); nothing more is kept")
    return state
