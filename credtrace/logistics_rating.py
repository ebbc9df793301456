"""The logistics credit rating (C6): published rule files and the pure, deterministic grading of a firm.

A rule file (``config/logistics/rules/v{N}.yaml``) says, for version N, the window (months), the inputs that score
(each with a weight and the values worth 0 and 100 points), the lowest score of grades A, B and C, and the
conditions that make a firm D whatever its score. Its keccak256 (of the file's exact bytes) is published on chain
with its version (``RatingRule``); :func:`load_rule` refuses a file whose hash is not the one published, so a grade
can always be traced to the rule text that produced it.

:func:`grade` is pure: integers and :class:`fractions.Fraction` (exact) throughout, the score rounded half up to
two decimals only at the end, never a float. The same evaluations and rule version therefore give the same score
and grade on every machine, whether they come from the SQL index (the API) or straight from the chain's logs
(``credtrace logistics score``).

Aggregation over the evaluations in the window (the ``window_months`` months ending with the firm's latest
evaluated month, every evaluator pooled): rates (on-time, loss and damage, complaints per 10,000) are the
parcel-weighted mean, counts (parcels, violations, sanctions) the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from credtrace.errors import Conflict, NotFound, ValidationFailed
from credtrace.settings import PROJECT_ROOT
from node_bridge.logistics import previous_periods

RULES_DIR = PROJECT_ROOT / "config" / "logistics" / "rules"
RATES = ("onTimeBps", "lossDamageBps", "complaintsPer10k")
"""Inputs aggregated as the parcel-weighted mean over the window."""
COUNTS = ("parcels", "violations", "sanctions")
"""Inputs aggregated as the total over the window."""
Input = Literal["parcels", "onTimeBps", "lossDamageBps", "complaintsPer10k", "violations", "sanctions"]
GRADES = ("A", "B", "C", "D")
HUNDRED = Fraction(100)
CENT = Decimal("0.01")


class RuleError(ValidationFailed):
    """A rule file is malformed; ``field`` names the file and the place in it."""


class RuleMismatch(Conflict):
    """A rule file's keccak256 is not the hash published on chain for its version."""


class ScoredInput(BaseModel):
    """One input that scores: ``worst`` is worth 0 points, ``best`` 100, linearly between, clamped outside."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    input: Input
    weight: int = Field(gt=0, le=1000)
    best: int = Field(ge=0)
    worst: int = Field(ge=0)

    @model_validator(mode="after")
    def _distinct(self) -> ScoredInput:
        if self.best == self.worst:
            raise ValueError(f"{self.key}: best and worst must differ")
        return self

    def points(self, value: Fraction) -> Fraction:
        """0 to 100 points for an aggregated value."""
        share = (value - self.worst) / (self.best - self.worst)
        return min(HUNDRED, max(Fraction(0), share * HUNDRED))


class Condition(BaseModel):
    """An automatic D: the aggregated ``input`` is above ``above``, or at least ``at_least``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Input
    above: int | None = Field(None, ge=0)
    at_least: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if (self.above is None) == (self.at_least is None):
            raise ValueError(f"{self.input}: give exactly one of above, at_least")
        return self

    def met(self, value: Fraction) -> bool:
        return value > self.above if self.above is not None else value >= (self.at_least or 0)

    def describe(self) -> str:
        return f"{self.input} > {self.above}" if self.above is not None else f"{self.input} >= {self.at_least}"


class Rule(BaseModel):
    """A rating rule file, validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = Field(ge=1, lt=2**32)
    window_months: int = Field(ge=1, le=120)
    inputs: list[ScoredInput] = Field(min_length=1)
    grades: dict[Literal["A", "B", "C"], int]
    automatic_d: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if set(self.grades) != {"A", "B", "C"}:
            raise ValueError("grades must give the lowest score of A, B and C")
        if not 100 >= self.grades["A"] > self.grades["B"] > self.grades["C"] >= 0:
            raise ValueError("grades must fall from A to C within 0..100")
        keys = [i.key for i in self.inputs]
        if len(set(keys)) != len(keys):
            raise ValueError("two inputs share a key")
        return self


@dataclass(frozen=True)
class LoadedRule:
    """A rule, its file and the keccak256 of the file's bytes (what is published on chain)."""

    rule: Rule
    path: Path
    hash: bytes

    @property
    def version(self) -> int:
        return self.rule.version

    @property
    def hex_hash(self) -> str:
        return "0x" + self.hash.hex()


def rule_path(version: int, rules_dir: Path | None = None) -> Path:
    """The file of rule ``version``: ``v{N}.yaml`` in ``rules_dir`` (default :data:`RULES_DIR`, read at each call)."""
    return (rules_dir or RULES_DIR) / f"v{version}.yaml"


def parse_version(value: str | int, field: str = "rule") -> int:
    """``3``, ``"3"`` or ``"v3"`` → 3."""
    text = str(value).strip().lower().removeprefix("v")
    if not text.isdigit() or int(text) < 1:
        raise ValidationFailed(field, f"{value!r} is not a rule version (v1, v2, ...)")
    return int(text)


def file_hash(path: Path) -> bytes:
    """keccak256 of the file's exact bytes."""
    return keccak(path.read_bytes())


@cache
def _read(path: Path, digest: bytes) -> Rule:
    try:
        data = yaml.safe_load(path.read_bytes())
        return Rule.model_validate(data)
    except yaml.YAMLError as exc:
        raise RuleError(str(path), f"is not YAML: {exc}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        place = ".".join(str(p) for p in error["loc"])
        raise RuleError(f"{path}:{place}", error["msg"]) from None


def load_rule(version: int, published: bytes | None = None, rules_dir: Path | None = None) -> LoadedRule:
    """Rule ``version`` from its file, checked: valid, its ``version`` field the one asked for, and (when the hash
    ``published`` on chain is given) its keccak256 equal to it; :class:`RuleMismatch` names both hashes."""
    path = rule_path(version, rules_dir)
    if not path.is_file():
        raise NotFound(f"rule: no rule file for version {version} ({path})")
    digest = file_hash(path)
    if published is not None and digest != published:
        raise RuleMismatch(
            "rule",
            "RuleHashMismatch",
            f"{path.name} has keccak256 0x{digest.hex()} but version {version} was published on chain as "
            f"0x{published.hex()}: the file is not the published rule (edited after publication?)",
        )
    rule = _read(path, digest)
    if rule.version != version:
        raise RuleError(f"{path}:version", f"says {rule.version}; the file of version {version} must say {version}")
    return LoadedRule(rule, path, digest)


class Figures(NamedTuple):
    """One evaluation's figures (as signed), with its id."""

    id: str
    period: int
    parcels: int
    onTimeBps: int  # the signed fields' names
    lossDamageBps: int
    complaintsPer10k: int
    violations: int
    sanctions: int

    @classmethod
    def of(cls, evaluation_id: str, message: dict[str, Any]) -> Figures:
        return cls(evaluation_id, *(int(message[name]) for name in cls._fields[1:]))


@dataclass(frozen=True)
class Grade:
    """A firm's grade under one rule version: score, grade, and how each input contributed."""

    version: int
    rule_hash: str
    score: Decimal | None
    grade: str | None
    window: tuple[int, int] | None
    evaluations: tuple[str, ...]
    inputs: dict[str, Fraction]
    breakdown: tuple[dict[str, Any], ...]
    automatic_d: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_version": self.version,
            "rule_hash": self.rule_hash,
            "score": None if self.score is None else str(self.score),
            "grade": self.grade,
            "window": None if self.window is None else {"from": self.window[0], "to": self.window[1]},
            "evaluations": list(self.evaluations),
            "inputs": {name: decimal(value) for name, value in self.inputs.items()},
            "breakdown": list(self.breakdown),
            "automatic_d": list(self.automatic_d),
        }


def decimal(value: Fraction, places: Decimal = CENT) -> str:
    """An exact fraction as a decimal string rounded half up (to 2 places by default)."""
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(places, rounding=ROUND_HALF_UP))


def _rounded(value: Fraction) -> Decimal:
    # Decimal division is exact enough here: 28 significant digits for a value below 100, then rounded to 0.01.
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT, rounding=ROUND_HALF_UP)


def aggregate(evaluations: Sequence[Figures]) -> dict[str, Fraction]:
    """Rates as the parcel-weighted mean, counts as the total (exact)."""
    parcels = sum(e.parcels for e in evaluations)
    out = {name: Fraction(sum(getattr(e, name) for e in evaluations)) for name in COUNTS}
    for name in RATES:
        out[name] = Fraction(sum(getattr(e, name) * e.parcels for e in evaluations), parcels)
    return out


def in_window(evaluations: Iterable[Figures], months: int) -> list[Figures]:
    """The evaluations of the ``months`` months ending with the latest evaluated month."""
    items = list(evaluations)
    if not items:
        return []
    periods = set(previous_periods(max(e.period for e in items), months))
    return [e for e in items if e.period in periods]


def grade(loaded: LoadedRule, evaluations: Iterable[Figures]) -> Grade:
    """The grade of a firm from its evaluations under ``loaded`` (unrated, grade None, without evaluations)."""
    rule = loaded.rule
    window = sorted(in_window(evaluations, rule.window_months), key=lambda e: (e.period, e.id))
    if not window:
        return Grade(rule.version, loaded.hex_hash, None, None, None, (), {}, (), ())
    values = aggregate(window)
    total_weight = sum(i.weight for i in rule.inputs)
    breakdown = []
    score = Fraction(0)
    for item in rule.inputs:
        points = item.points(values[item.input])
        contribution = points * item.weight / total_weight
        score += contribution
        breakdown.append({
            "key": item.key, "input": item.input, "value": decimal(values[item.input]), "weight": item.weight,
            "best": item.best, "worst": item.worst, "points": decimal(points), "contribution": decimal(contribution),
        })  # fmt: skip
    rounded = _rounded(score)
    met = tuple(c.describe() for c in rule.automatic_d if c.met(values[c.input]))
    letter = "D" if met else next((g for g in ("A", "B", "C") if rounded >= rule.grades[g]), "D")
    span = (window[0].period, window[-1].period)
    return Grade(
        rule.version, loaded.hex_hash, rounded, letter, span, tuple(e.id for e in window), values, tuple(breakdown),
        met,
    )  # fmt: skip
