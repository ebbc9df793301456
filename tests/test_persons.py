"""Natural persons: resident identity numbers (GB 11643-1999), commitments, lookup keys and crypto-shredding."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from api.models import Person
from credtrace.errors import Gone, NotAuthorised, NotFound, ValidationFailed
from credtrace.persons import (
    commitment_of,
    ensure_not_shredded,
    id_check_character,
    lookup_key,
    normalise_id_number,
    person_state,
    register_person,
    shred_person,
)
from node_bridge.store import session_scope

VALID = "11010519491231002X"  # the standard's own example: Beijing Chaoyang, born 1949-12-31
TODAY = date(2026, 6, 1)
PEPPER = b"p" * 32
PLATFORM = "0x" + "02" * 32
RIVAL = "0x" + "03" * 32


def _with_check(body17: str) -> str:
    return body17 + id_check_character(body17)


def test_valid_numbers_are_normalised() -> None:
    assert normalise_id_number(VALID) == VALID
    assert normalise_id_number(" 11010519491231002x\n") == VALID
    assert normalise_id_number(_with_check("37010220000229123")) == _with_check("37010220000229123")  # leap day


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("", "must be 18 characters, got 0"),
        ("11010519491231002", "must be 18 characters, got 17"),
        ("11010519491231002X1", "must be 18 characters, got 19"),
        ("1101051949123100AX", "character at position 17 must be a digit 0-9"),
        ("X1010519491231002X", "character at position 1 must be a digit 0-9"),
        ("110105194912310021".replace("1", "Y", 1), "character at position 1 must be a digit"),
        ("11010519491231002Z", "check character at position 18 must be a digit 0-9 or X"),
        (_with_check("00010519491231002"), "positions 1-2 are not a province-level division code"),
        (_with_check("99010519491231002"), "positions 1-2 are not a province-level division code"),
        (_with_check("11010519490231002"), "birth date at positions 7-14 is not a calendar date"),
        (_with_check("11010519491301002"), "birth date at positions 7-14 is not a calendar date"),
        (_with_check("37010219000229123"), "birth date at positions 7-14 is not a calendar date"),  # 1900: no leap
        (_with_check("11010518991231002"), "birth date at positions 7-14 is before 1900"),
        (_with_check("11010520300101002"), "birth date at positions 7-14 is in the future"),
        ("110105194912310021", "check character at position 18 does not match positions 1-17"),
    ],
)
def test_bad_numbers_name_what_and_where_but_never_the_number(number: str, reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason) as caught:
        normalise_id_number(number, field="courier.id_number", today=TODAY)
    assert caught.value.field == "courier.id_number"
    message = str(caught.value)
    assert not any(len(number) >= 6 and number[i : i + 6] in message for i in range(len(number) - 5))


@given(
    st.sampled_from(["11", "37", "44", "65", "81"]),
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    st.text(alphabet="0123456789", min_size=3, max_size=3),
)
def test_any_single_digit_change_is_caught(province: str, area: str, born: date, sequence: str) -> None:
    number = _with_check(province + area + born.strftime("%Y%m%d") + sequence)
    assert normalise_id_number(number, today=TODAY) == number
    for position in range(18):
        for replacement in "0123456789X":
            if replacement == number[position] or (replacement == "X" and position < 17):
                continue
            altered = number[:position] + replacement + number[position + 1 :]
            with pytest.raises(ValidationFailed):
                normalise_id_number(altered, today=TODAY)


def test_commitments_and_lookup_keys() -> None:
    salt = bytes(range(32))
    commitment = commitment_of(salt, VALID)
    assert commitment.startswith("0x") and len(commitment) == 66
    assert commitment == commitment_of(salt, VALID) != commitment_of(bytes(32), VALID)
    assert lookup_key(PEPPER, VALID) == lookup_key(PEPPER, VALID) != lookup_key(b"q" * 32, VALID)
    assert VALID not in commitment and len(lookup_key(PEPPER, VALID)) == 64


def test_register_is_idempotent_until_shredded(engine: Engine) -> None:
    with session_scope(engine) as session:
        first = register_person(session, PEPPER, VALID, PLATFORM)
        assert register_person(session, PEPPER, VALID.lower(), RIVAL) == first
    with Session(engine) as session:
        row = session.get(Person, first)
        assert row is not None and row.registered_by == PLATFORM and row.salt is not None
        assert commitment_of(bytes.fromhex(row.salt), VALID) == first
        assert row.lookup_key == lookup_key(PEPPER, VALID)
        assert row.created_at.tzinfo is not None
        assert person_state(session, first) == "live" == ensure_not_shredded(session, first)
    with session_scope(engine) as session, pytest.raises(NotAuthorised, match="registered by another member"):
        shred_person(session, first, RIVAL)
    with session_scope(engine) as session:
        shred_person(session, first.upper().replace("0X", "0x"), PLATFORM)
    with Session(engine) as session:
        row = session.get(Person, first)
        assert row is not None and row.salt is None and row.lookup_key is None and row.shredded_at is not None
        assert person_state(session, first) == "shredded"
        with pytest.raises(Gone, match=f"subject {first}: .*crypto-shredded") as caught:
            ensure_not_shredded(session, first)
        assert caught.value.subject == first
    with session_scope(engine) as session:
        assert shred_person(session, first, RIVAL, any_person=True).shredded_at == row.shredded_at
        second = register_person(session, PEPPER, VALID, RIVAL)
    assert second != first
    with Session(engine) as session:
        assert person_state(session, second) == "live"
        assert person_state(session, "0x" + "00" * 32) == "unknown" == ensure_not_shredded(session, "0x" + "00" * 32)
        with pytest.raises(NotFound, match="no natural person"):
            shred_person(session, "0x" + "00" * 32, PLATFORM, any_person=True)
