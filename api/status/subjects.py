"""Subjects: an organisation's unified social credit code (checked, GB 32100) or a 0x-hex 32-byte subject id (a
natural person's commitment, or an organisation's code zero-padded)."""

from __future__ import annotations

import re
from typing import NamedTuple

from credtrace import uscc
from credtrace.errors import ValidationFailed
from node_bridge.credit import subject_code

_HEX32 = re.compile(r"^0[xX][0-9a-fA-F]{64}$")
_ZERO = "0x" + "00" * 32


class Subject(NamedTuple):
    """A subject id (0x + 64 lower-case hex) and, for an organisation, its credit code."""

    id: str
    code: str | None

    @property
    def is_person(self) -> bool:
        return self.code is None


_CHECK_TABLES = [{c: v * pow(3, i, 31) for v, c in enumerate(uscc.ALPHABET)} for i in range(17)]
"""Per position, each character's weighted GB 32100 value: the check character in one C-level pass."""


def _code_ok(code: str) -> bool:
    """Whether an 18-character code's final check character is right (uscc.validate says what is wrong if not)."""
    try:
        total = sum(map(dict.__getitem__, _CHECK_TABLES, code))
    except KeyError:
        return False
    return uscc.ALPHABET[(31 - total % 31) % 31] == code[17]


_PADDING = "00" * 14


def _code_in(subject: str) -> str | None:
    """:func:`node_bridge.credit.subject_code` of a 0x-hex subject id, with a quick exit for commitments."""
    return subject_code(bytes.fromhex(subject[2:])) if subject.endswith(_PADDING) else None


def parse_subject(value: str, field: str = "subject") -> Subject:
    """A credit code (validated) or a 0x-hex 32-byte subject id; :class:`ValidationFailed` on ``field`` if neither."""
    if value[:2] in ("0x", "0X"):
        if not _HEX32.match(value):
            raise ValidationFailed(field, "a 0x-hex subject id must have 64 hex digits (32 bytes)")
        subject = "0x" + value[2:].lower()
        if subject == _ZERO:
            raise ValidationFailed(field, "must not be zero")
        return Subject(subject, _code_in(subject))
    if len(value) != 18:
        raise ValidationFailed(
            field, f"must be a unified social credit code (18 characters) or a 0x-hex 32-byte id, got {len(value)}"
        )
    # the common case quickly; anything wrong goes through uscc.validate for the message naming the position
    if not _code_ok(value):
        uscc.validate(value, field=field)
    return Subject("0x" + value.encode().ljust(32, b"\0").hex(), value)
