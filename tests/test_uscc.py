"""Unified social credit codes (GB 32100-2015) and the organisation code inside (GB 11714)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credtrace.errors import ValidationFailed
from credtrace.uscc import ALPHABET, validate, with_check_characters


def test_a_published_code_is_valid() -> None:
    assert validate("91350100M000100Y43") == []


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91350100M000100Y4", "must be 18 characters, got 17"),
        ("91350100M000100Y4O", "character 'O' at position 18"),
        ("9135010IM000100Y43", "character 'I' at position 8"),
        ("91350100M000100Y44", "check character at position 18 is '4', expected '3'"),
    ],
)
def test_bad_codes_name_what_and_where(code: str, reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason) as caught:
        validate(code, field="subject")
    assert caught.value.field == "subject"


def test_a_wrong_organisation_check_digit_is_a_warning_or_strict_error() -> None:
    body17 = "9137010012345678" + "0"  # the right organisation check digit is 8
    from credtrace.uscc import check_character

    code = body17 + check_character(body17)
    assert validate(code) == ["organisation code check digit at position 17 is '0', expected '8'"]
    with pytest.raises(ValidationFailed, match="position 17"):
        validate(code, strict_org_code=True)


@given(st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=16, max_size=16))
def test_completed_codes_validate_and_any_single_change_is_caught(body: str) -> None:
    code = with_check_characters(body)
    assert validate(code, strict_org_code=True) == []
    for position in range(18):
        for replacement in ALPHABET[:5]:
            if replacement == code[position]:
                continue
            altered = code[:position] + replacement + code[position + 1 :]
            with pytest.raises(ValidationFailed):
                validate(altered, strict_org_code=True)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("", "must be 18 characters, got 0"),
        ("91350100M000100Y431", "must be 18 characters, got 19"),
        ("91350100m000100Y43", "character 'm' at position 9 is not in the GB 32100 alphabet"),
        ("9135010ZM000100Y43", "character 'Z' at position 8"),
        ("91350100M000100S43", "character 'S' at position 16"),
        ("91350100M000100Y4V", "character 'V' at position 18"),
    ],
)
def test_more_bad_codes_name_what_and_where(code: str, reason: str) -> None:
    with pytest.raises(ValidationFailed, match=reason) as caught:
        validate(code, field="members[3].uscc", strict_org_code=True)
    assert caught.value.field == "members[3].uscc"


def test_the_strict_organisation_check_names_the_field_and_the_expected_digit() -> None:
    from credtrace.uscc import check_character

    body17 = "9137010012345678" + "1"
    code = body17 + check_character(body17)
    with pytest.raises(ValidationFailed) as caught:
        validate(code, field="subject", strict_org_code=True)
    assert caught.value.field == "subject"
    assert caught.value.reason == "organisation code check digit at position 17 is '1', expected '8'"
    assert validate(with_check_characters("9137010012345678"), strict_org_code=True) == []


def test_strict_org_code_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from credtrace.settings import Settings

    monkeypatch.delenv("CREDTRACE_STRICT_ORG_CODE", raising=False)
    assert Settings().strict_org_code is False
    monkeypatch.setenv("CREDTRACE_STRICT_ORG_CODE", "1")
    assert Settings().strict_org_code is True
