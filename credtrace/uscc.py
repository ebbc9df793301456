"""Unified social credit codes (统一社会信用代码), GB 32100-2015, with the GB 11714 organisation code inside.

Pure functions: :func:`validate` raises :class:`ValidationFailed` naming what is wrong and where;
:func:`with_check_characters` completes a 16-character body into a valid code (for fixtures and the demo).
"""

from __future__ import annotations

from credtrace.errors import ValidationFailed

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def check_character(body17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    total = sum(_VALUE[c] * w for c, w in zip(body17, _WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def _org_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def org_check_character(body8: str) -> str:
    """The GB 11714 check character of an organisation code's first 8 characters."""
    remainder = 11 - sum(_org_value(c) * w for c, w in zip(body8, _ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def validate(code: str, field: str = "uscc", strict_org_code: bool = False) -> list[str]:
    """Check a code; returns warnings (organisation-code check digit) unless ``strict_org_code``.

    Raises :class:`ValidationFailed` for a wrong length, a character outside the alphabet (with its position)
    or a wrong final check character.
    """
    if len(code) != 18:
        raise ValidationFailed(field, f"must be 18 characters, got {len(code)}")
    for position, char in enumerate(code, start=1):
        if char not in _VALUE:
            raise ValidationFailed(
                field, f"character {char!r} at position {position} is not in the GB 32100 alphabet {ALPHABET}"
            )
    expected = check_character(code[:17])
    if code[17] != expected:
        raise ValidationFailed(field, f"check character at position 18 is {code[17]!r}, expected {expected!r}")
    warnings = []
    org_expected = org_check_character(code[8:16])
    if code[16] != org_expected:
        message = f"organisation code check digit at position 17 is {code[16]!r}, expected {org_expected!r}"
        if strict_org_code:
            raise ValidationFailed(field, message)
        warnings.append(message)
    return warnings


def with_check_characters(body16: str) -> str:
    """Complete 16 characters (authority, type, division, organisation body) into a valid code."""
    body17 = body16 + org_check_character(body16[8:16])
    return body17 + check_character(body17)
