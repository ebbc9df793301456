"""The logistics rating engine and its rule files: loading (and refusing a file that is not the published one),
window, parcel weighting, points, thresholds, automatic D, determinism; checked against a second, independent
computation written here."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credtrace.errors import NotFound
from credtrace.logistics_rating import (
    Figures,
    RuleError,
    RuleMismatch,
    file_hash,
    grade,
    load_rule,
    parse_version,
    rule_path,
)
from node_bridge.logistics import check_evaluation, check_period, previous_periods

V1 = load_rule(1)
V2 = load_rule(2)


def figures(period: int, parcels: int = 1000, on_time: int = 9700, loss: int = 20, complaints: int = 5,
            violations: int = 0, sanctions: int = 0) -> Figures:  # fmt: skip
    return Figures(f"e{period}-{parcels}", period, parcels, on_time, loss, complaints, violations, sanctions)


def year(**kwargs: int) -> list[Figures]:
    return [figures(p, **kwargs) for p in previous_periods(202611, 12)]


def test_published_rule_files() -> None:
    assert (V1.version, V2.version) == (1, 2)
    assert V1.hash == file_hash(rule_path(1)) != V2.hash
    assert load_rule(1, V1.hash).hash == V1.hash
    assert parse_version("v2") == parse_version("2") == parse_version(2) == 2
    with pytest.raises(RuleMismatch) as info:
        load_rule(1, V2.hash)
    assert info.value.error == "RuleHashMismatch"
    assert V1.hex_hash in str(info.value) and V2.hex_hash in str(info.value)
    with pytest.raises(NotFound):
        load_rule(99)


def test_malformed_rule_files_name_the_place(tmp_path: Path) -> None:
    text = rule_path(1).read_text()
    cases = {
        "grades: {A: 85, B: 70, C: 55}": ("grades: {A: 70, B: 85, C: 55}", "grades must fall"),
        "weight: 40": ("weight: -1", "inputs.0.weight"),
        "input: onTimeBps,": ("input: speed,", "inputs.0.input"),
        "{input: sanctions, at_least: 2}": ("{input: sanctions}", "exactly one of above, at_least"),
    }
    for index, (original, (changed, expected)) in enumerate(cases.items(), start=1):
        directory = tmp_path / str(index)
        directory.mkdir()
        (directory / "v1.yaml").write_text(text.replace(original, changed))
        with pytest.raises(RuleError) as info:
            load_rule(1, rules_dir=directory)
        assert expected in str(info.value), str(info.value)
    other = tmp_path / "other"
    other.mkdir()
    (other / "v3.yaml").write_text(text)  # says version 1
    with pytest.raises(RuleError, match="version"):
        load_rule(3, rules_dir=other)


def test_a_known_grade_by_hand() -> None:
    # on time 97 % → (9700-8500)/1300 = 92.3077 points × 40/100; loss 0.2 % → (200-20)/190 = 94.7368 × 25/100;
    # complaints 5 → 35/38 = 92.1053 × 20/100; violations 0 → 100 × 15/100: 36.9231 + 23.6842 + 18.4211 + 15
    result = grade(V1, year())
    assert result.score == Decimal("94.03") and result.grade == "A"
    assert [b["contribution"] for b in result.breakdown] == ["36.92", "23.68", "18.42", "15.00"]
    assert result.window == (202512, 202611) and len(result.evaluations) == 12
    assert result.automatic_d == ()


def test_parcel_weighting_and_window() -> None:
    heavy, light = figures(202611, parcels=9000, on_time=9000), figures(202610, parcels=1000, on_time=10_000)
    old = figures(202411, parcels=10**6, on_time=0)  # 25 months before: outside the 12-month window
    result = grade(V1, [heavy, light, old])
    assert result.inputs["onTimeBps"] == Fraction(9000 * 9000 + 10_000 * 1000, 10_000)
    assert result.inputs["parcels"] == 10_000
    assert old.id not in result.evaluations
    assert grade(V1, []).grade is None and grade(V1, []).score is None


def test_automatic_d_and_what_changed_in_v2() -> None:
    lossy = year(loss=320)
    assert grade(V1, lossy).grade == "D" and grade(V1, lossy).automatic_d == ("lossDamageBps > 300",)
    one_sanction = [*year()[:-1], figures(202611, sanctions=1)]
    assert grade(V1, one_sanction).grade == "A"
    assert grade(V2, one_sanction).grade == "D" and grade(V2, one_sanction).automatic_d == ("sanctions >= 1",)
    two = [*one_sanction[:-2], figures(202610, sanctions=1), figures(202611, sanctions=1)]
    assert grade(V1, two).grade == "D"


def test_thresholds_on_the_rounded_score() -> None:
    # every rounded score falls in its grade's band (lowest score of A, B, C: 85, 70, 55), over D to B
    scores: dict[Decimal, str | None] = {}
    for on_time in range(8500, 9801, 5):
        result = grade(V1, year(on_time=on_time, loss=10, complaints=40, violations=0))
        assert result.score is not None
        scores[result.score] = result.grade
    assert all(g == ("A" if s >= 85 else "B" if s >= 70 else "C" if s >= 55 else "D") for s, g in scores.items())
    assert {"B", "C", "D"} <= set(scores.values())


def independent_score(rule_version: int, items: list[Figures]) -> tuple[Decimal | None, str | None]:
    """The same rule, computed another way: Decimal at 50 digits, from the YAML semantics in the file's comments."""
    from decimal import localcontext

    rule = (V1 if rule_version == 1 else V2).rule
    if not items:
        return None, None
    last = max(i.period for i in items)
    window = [i for i in items if i.period in set(previous_periods(last, rule.window_months))]
    with localcontext() as ctx:
        ctx.prec = 50
        parcels = Decimal(sum(i.parcels for i in window))
        agg = {
            "parcels": parcels,
            "violations": Decimal(sum(i.violations for i in window)),
            "sanctions": Decimal(sum(i.sanctions for i in window)),
        }
        for name in ("onTimeBps", "lossDamageBps", "complaintsPer10k"):
            agg[name] = Decimal(sum(getattr(i, name) * i.parcels for i in window)) / parcels
        total = Decimal(sum(i.weight for i in rule.inputs))
        score = Decimal(0)
        for item in rule.inputs:
            points = (agg[item.input] - item.worst) / (item.best - item.worst) * 100
            score += max(Decimal(0), min(Decimal(100), points)) * item.weight / total
        rounded = score.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    forced = any(
        (agg[c.input] > c.above) if c.above is not None else (agg[c.input] >= (c.at_least or 0))
        for c in rule.automatic_d
    )
    letter = "D" if forced else next((g for g in "ABC" if rounded >= rule.grades[g]), "D")  # type: ignore[index]
    return rounded, letter


evaluation = st.builds(
    Figures,
    st.uuids().map(str),
    st.sampled_from(previous_periods(202612, 20)),
    st.integers(1, 2**32 - 1),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 200),
    st.integers(0, 10),
    st.integers(0, 3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(evaluation, max_size=30), st.sampled_from([1, 2]))
def test_grade_matches_an_independent_computation(items: list[Figures], version: int) -> None:
    loaded = V1 if version == 1 else V2
    result = grade(loaded, items)
    assert (result.score, result.grade) == independent_score(version, items)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert grade(loaded, shuffled) == result  # the same inputs, in any order: the same grade
    if result.score is not None:
        assert Decimal(0) <= result.score <= Decimal(100)


def test_period_and_figure_checks() -> None:
    assert check_period(202612) == 202612
    for bad in (202613, 202600, 199912, 300001):
        with pytest.raises(Exception, match="not a month"):
            check_period(bad)
    assert previous_periods(202602, 3) == [202512, 202601, 202602]
    ok = {"period": 202601, "parcels": 1, "onTimeBps": 10_000, "lossDamageBps": 0}
    check_evaluation(ok)
    with pytest.raises(Exception, match="10000"):
        check_evaluation(ok | {"lossDamageBps": 10_001})
    with pytest.raises(Exception, match="at least one parcel"):
        check_evaluation(ok | {"parcels": 0})
