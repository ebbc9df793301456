"""Values as the trace API shows and stores them: 32-byte values as 0x-hex, signed messages as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def to_json(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as JSON values: bytes as 0x-hex (also in lists), integers beyond 2^53 as decimal strings."""
    out: dict[str, Any] = {}
    for name, value in message.items():
        if isinstance(value, bytes):
            out[name] = hex32(value)
        elif isinstance(value, list):
            out[name] = [hex32(v) if isinstance(v, bytes) else v for v in value]
        elif isinstance(value, int) and not isinstance(value, bool) and value > 2**53:
            out[name] = str(value)
        else:
            out[name] = value
    return out
