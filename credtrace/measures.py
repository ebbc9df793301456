"""The catalogue of joint reward and punishment measures (C4): what is due while a credit record is active.

``config/measures.yaml`` (``CREDTRACE_MEASURES_CONFIG``) lists the measures, each with a stable numeric ``code``
(0..31: the bit it takes in a record's ``measures`` bitmask, and the ``measure`` number of an enforcement receipt),
and the rules that map a record's (kind, tier) to measure slugs. :func:`load_catalogue` validates the file
(pydantic) and fails loudly, naming the place, on an unknown slug, kind or tier, a duplicate code or slug, a code
outside 0..31 or two rules for the same (kind, tier).

What is due for a set of records (:meth:`Catalogue.measures_due`) is, over the records *active* at the time asked
about, the union of each record's rule measures and the measures its own ``measures`` bits name. A record is
active at unix time ``t`` when ``effective_at <= t < valid_until`` and it was not revoked or repaired by ``t``
(the contract's ``recordState``); :func:`is_active` is that test.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from credtrace.errors import ValidationFailed
from credtrace.settings import PROJECT_ROOT
from node_bridge.credit import Kind, Tier

DEFAULT_PATH = PROJECT_ROOT / "config" / "measures.yaml"
MAX_CODE = 31
"""Codes are bits of the record's ``uint32 measures``."""
KIND_SLUGS = frozenset(kind.slug for kind in Kind)
TIER_SLUGS = frozenset(tier.name.lower() for tier in Tier)
ListName = Literal["red", "black"]


class CatalogueError(ValidationFailed):
    """The measure catalogue is malformed; ``field`` names the file and the place in it."""


class Measure(BaseModel):
    """One measure: a reward of the red list or a punishment of the blacklist."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: int = Field(ge=0, le=MAX_CODE, description="bit in a record's `measures`, `measure` of a receipt")
    slug: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    list: ListName | None = Field(description="red (reward) or black (punishment); null if not in the catalogue")
    name: str = Field(min_length=1)
    description: str = ""

    @property
    def bit(self) -> int:
        return 1 << self.code


class Rule(BaseModel):
    """The measures due while a record of ``kind`` and ``tier`` is active."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    tier: str
    measures: list[str] = Field(min_length=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KIND_SLUGS:
            raise ValueError(f"{kind!r} is not a record kind ({', '.join(sorted(KIND_SLUGS))})")
        return kind

    @field_validator("tier")
    @classmethod
    def _known_tier(cls, tier: str) -> str:
        if tier not in TIER_SLUGS:
            raise ValueError(f"{tier!r} is not a tier ({', '.join(sorted(TIER_SLUGS))})")
        return tier


class RecordLike(Protocol):
    """What the catalogue needs of a record (a ``credit_record`` row qualifies)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def measures(self) -> int: ...


class TimedRecordLike(RecordLike, Protocol):
    @property
    def effective_at(self) -> int: ...
    @property
    def valid_until(self) -> int: ...
    @property
    def closed_time(self) -> int | None: ...


@dataclass(frozen=True)
class DueMeasure:
    """A measure due, with the records that make it due."""

    measure: Measure
    records: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {**self.measure.model_dump(exclude={"description"}), "records": list(self.records)}


def is_active(effective_at: int, valid_until: int, closed_time: int | None, at: int) -> bool:
    """Whether a record is active at unix time ``at``: in force and not revoked or repaired by then."""
    return effective_at <= at < valid_until and (closed_time is None or closed_time > at)


class Catalogue(BaseModel):
    """The validated catalogue; build it with :func:`load_catalogue` or :meth:`parse`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1)
    measures: list[Measure] = Field(min_length=1)
    rules: list[Rule] = Field(default_factory=list)

    _by_slug: dict[str, Measure] = PrivateAttr(default_factory=dict)
    _by_code: dict[int, Measure] = PrivateAttr(default_factory=dict)
    _masks: dict[tuple[str, str], int] = PrivateAttr(default_factory=dict)
    _described: dict[int, tuple[Measure, ...]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        for index, measure in enumerate(self.measures):
            if measure.list is None:
                raise ValueError(f"measures[{index}].list: {measure.slug} must be on the red or the black list")
            if (other := self._by_code.get(measure.code)) is not None:
                raise ValueError(f"measures[{index}].code: {measure.code} is already used by {other.slug}")
            if measure.slug in self._by_slug:
                raise ValueError(f"measures[{index}].slug: {measure.slug!r} appears twice")
            self._by_code[measure.code] = measure
            self._by_slug[measure.slug] = measure
        for index, rule in enumerate(self.rules):
            key = (rule.kind, rule.tier)
            if key in self._masks:
                raise ValueError(f"rules[{index}]: a rule for kind {rule.kind} and tier {rule.tier} comes earlier")
            mask = 0
            for position, slug in enumerate(rule.measures):
                if slug not in self._by_slug:
                    known = ", ".join(self._by_slug)
                    raise ValueError(f"rules[{index}].measures[{position}]: {slug!r} is not a measure ({known})")
                mask |= self._by_slug[slug].bit
            self._masks[key] = mask
        return self

    @classmethod
    def parse(cls, data: Any, source: str = "measures") -> Catalogue:
        """A catalogue from parsed YAML/JSON; :class:`CatalogueError` naming ``source`` and the place if invalid."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
            reason = error["msg"].removeprefix("Value error, ")
            if not where:  # a check across entries says where itself: "rules[2].measures[0]: ..."
                where, _, reason = reason.partition(": ")
            raise CatalogueError(f"{source}: {where.lstrip('.')}", reason) from exc

    # look-ups

    def measure(self, slug: str) -> Measure:
        """The measure named ``slug``; :class:`ValidationFailed` on ``measure`` if there is none."""
        try:
            return self._by_slug[slug]
        except KeyError:
            raise ValidationFailed("measure", f"{slug!r} is not a measure of the catalogue") from None

    def by_code(self, code: int) -> Measure:
        """The measure with ``code``; a placeholder (``measure_<code>``, list null) if the catalogue has none."""
        found = self._by_code.get(code)
        if found is not None:
            return found
        return Measure(code=code, slug=f"measure_{code}", list=None, name=f"Measure {code} (not in the catalogue)")

    def rule(self, kind: str, tier: str) -> tuple[Measure, ...]:
        """The measures the catalogue's rule for (kind, tier) makes due; none without a rule."""
        return self.describe(self._masks.get((kind, tier), 0))

    def rule_mask(self, kind: str, tier: str) -> int:
        return self._masks.get((kind, tier), 0)

    def due_mask(self, kind: str, tier: str, own: int) -> int:
        """Bits due while one record is active: its rule's measures and its own ``measures`` bits."""
        return self._masks.get((kind, tier), 0) | (own & 0xFFFFFFFF)

    def describe(self, mask: int) -> tuple[Measure, ...]:
        """The measures of a bitmask, by code (memoised: masks are few)."""
        found = self._described.get(mask)
        if found is None:
            found = tuple(self.by_code(code) for code in _bits(mask))
            if len(self._described) < 4096:
                self._described[mask] = found
        return found

    def measures_due(self, records: Iterable[RecordLike], at: int | None = None) -> list[DueMeasure]:
        """What is due for ``records``: the union of their rule measures and own bits, with the records behind each.

        The records should be those active at the time asked about; with ``at`` (unix seconds), records that are
        not active then (see :func:`is_active`; they need ``effective_at``, ``valid_until``, ``closed_time``) are
        skipped here.
        """
        behind: dict[int, list[str]] = {}
        for record in records:
            if at is not None and not _active(record, at):
                continue
            for code in _bits(self.due_mask(record.kind, record.tier, record.measures)):
                behind.setdefault(code, []).append(record.id)
        return [DueMeasure(self.by_code(code), tuple(behind[code])) for code in sorted(behind)]

    def public(self) -> dict[str, Any]:
        """The catalogue as published at ``GET /v1/measures``."""
        return {
            "version": self.version,
            "measures": [m.model_dump() for m in sorted(self.measures, key=lambda m: m.code)],
            "rules": [
                {
                    "kind": r.kind,
                    "tier": r.tier,
                    "measures": [m.slug for m in self.describe(self._masks[(r.kind, r.tier)])],
                }
                for r in self.rules
            ],
        }


def _active(record: RecordLike, at: int) -> bool:
    timed: Any = record
    return is_active(timed.effective_at, timed.valid_until, getattr(timed, "closed_time", None), at)


def _bits(mask: int) -> Iterator[int]:
    code = 0
    while mask:
        if mask & 1:
            yield code
        mask >>= 1
        code += 1


def load_catalogue(path: Path | str = DEFAULT_PATH) -> Catalogue:
    """Read and validate a catalogue file; :class:`CatalogueError` (naming the file and place) if it is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CatalogueError(str(path), f"cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CatalogueError(str(path), f"is not valid YAML: {exc}") from exc
    return Catalogue.parse(data, source=str(path))


@cache
def catalogue(path: Path = DEFAULT_PATH) -> Catalogue:
    """The catalogue of ``path``, read once per process."""
    return load_catalogue(path)
