"""The measure catalogue: validated on load, and what is due for a set of records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from credtrace.errors import ValidationFailed
from credtrace.measures import DEFAULT_PATH, Catalogue, CatalogueError, catalogue, is_active, load_catalogue
from node_bridge.credit import Kind, Tier


@dataclass
class Rec:
    id: str
    kind: str
    tier: str
    measures: int = 0
    effective_at: int = 0
    valid_until: int = 10**12
    closed_time: int | None = None


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_PATH.read_text())
    return data


def test_the_shipped_catalogue_covers_both_lists_and_every_tier() -> None:
    c = load_catalogue()
    assert c is not None and catalogue() is catalogue()
    slugs = {m.slug: m for m in c.measures}
    assert {"traffic_priority", "search_ranking_boost", "promotion_priority"} <= slugs.keys()
    black = {"limit_membership_level", "cancel_trusted_authentication", "block_shop", "close_shop"}
    assert black | {"refuse_platform_access", "public_exposure"} <= slugs.keys()
    assert all(slugs[s].list == "red" for s in ("traffic_priority", "search_ranking_boost", "promotion_priority"))
    assert all(slugs[s].list == "black" for s in black)
    for kind in (Kind.RED_LIST, Kind.BLACKLIST):
        for tier in Tier:
            assert c.rule(kind.slug, tier.name.lower()), (kind, tier)
    assert [m.slug for m in c.rule("red_list", "severe")] == [
        "traffic_priority", "search_ranking_boost", "promotion_priority"
    ]  # fmt: skip
    assert c.rule("administrative_penalty", "minor") == ()
    assert len({m.code for m in c.measures}) == len(c.measures)
    assert all(0 <= m.code <= 31 for m in c.measures)
    published = c.public()
    assert published["version"] == 1
    assert [m["code"] for m in published["measures"]] == sorted(m.code for m in c.measures)
    assert {"kind": "blacklist", "tier": "minor", "measures": ["limit_membership_level", "public_exposure"]} in (
        published["rules"]
    )


@pytest.mark.parametrize(
    ("change", "where", "reason"),
    [
        (lambda d: d["rules"][0]["measures"].append("free_lunch"), "rules[0].measures[1]", "'free_lunch' is not"),
        (lambda d: d["measures"][1].update(code=0), "measures[1].code", "0 is already used by traffic_priority"),
        (lambda d: d["measures"][1].update(slug="traffic_priority"), "measures[1].slug", "appears twice"),
        (lambda d: d["measures"][0].update(code=32), "measures[0].code", "less than or equal to 31"),
        (lambda d: d["rules"][0].update(kind="gold_list"), "rules[0].kind", "'gold_list' is not a record kind"),
        (lambda d: d["rules"][0].update(tier="medium"), "rules[0].tier", "'medium' is not a tier"),
        (lambda d: d["rules"].append(dict(d["rules"][0])), "rules[7]", "comes earlier"),
        (lambda d: d["measures"][0].update(colour="red"), "measures[0].colour", "Extra inputs"),
        (lambda d: d["measures"][0].update(list=None), "measures[0].list", "must be on the red or the black list"),
    ],
)
def test_a_bad_catalogue_fails_loudly_naming_the_place(change: Any, where: str, reason: str, tmp_path: Path) -> None:
    data = _data()
    change(data)
    path = tmp_path / "measures.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert caught.value.field == f"{path}: {where}", caught.value.field
    assert reason in str(caught.value), str(caught.value)


def test_unreadable_or_invalid_yaml_fails(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot be read"):
        load_catalogue(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("measures: [\n")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(tmp_path / "bad.yaml")


def test_measures_due_is_the_union_of_rules_and_own_bits_over_active_records() -> None:
    c = load_catalogue()
    black = Rec("0xb", "blacklist", "general")
    red = Rec("0xr", "red_list", "minor", measures=1 << 2)  # promotion_priority on top of its rule
    odd = Rec("0xo", "administrative_penalty", "minor", measures=(1 << 10) | (1 << 30))  # block_shop + unknown bit
    due = {d.measure.slug: d.records for d in c.measures_due([black, red, odd])}
    assert due == {
        "traffic_priority": ("0xr",),
        "promotion_priority": ("0xr",),
        "limit_membership_level": ("0xb",),
        "cancel_trusted_authentication": ("0xb",),
        "block_shop": ("0xb", "0xo"),
        "public_exposure": ("0xb",),
        "measure_30": ("0xo",),
    }
    unknown = next(d for d in c.measures_due([odd]) if d.measure.code == 30)
    assert unknown.measure.list is None and "not in the catalogue" in unknown.measure.name
    assert unknown.to_json() == {
        "code": 30, "slug": "measure_30", "list": None, "name": "Measure 30 (not in the catalogue)", "records": ["0xo"]
    }  # fmt: skip
    assert c.due_mask("red_list", "minor", 1 << 2) == 0b101


def test_measures_due_at_a_time_skips_records_not_active_then() -> None:
    c = load_catalogue()
    notice = Rec("0xn", "blacklist", "minor", effective_at=200)
    expired = Rec("0xe", "blacklist", "severe", valid_until=100)
    revoked = Rec("0xv", "red_list", "severe", closed_time=150)
    active = Rec("0xa", "red_list", "minor", effective_at=50)
    assert [d.measure.slug for d in c.measures_due([notice, expired, revoked, active], at=150)] == ["traffic_priority"]
    assert {d.measure.slug for d in c.measures_due([notice, expired, revoked, active], at=149)} == {
        "traffic_priority", "search_ranking_boost", "promotion_priority"
    }  # fmt: skip


def test_is_active_follows_the_contract() -> None:
    assert not is_active(100, 200, None, 99)  # notice
    assert is_active(100, 200, None, 100)
    assert is_active(100, 200, None, 199)
    assert not is_active(100, 200, None, 200)  # expired
    assert is_active(100, 200, 150, 149)
    assert not is_active(100, 200, 150, 150)  # closed by then


def test_lookups() -> None:
    c = Catalogue.parse(_data())
    assert c.measure("close_shop").code == 11 and c.measure("close_shop").bit == 1 << 11
    with pytest.raises(ValidationFailed, match="not a measure"):
        c.measure("nothing")
    assert c.by_code(12).slug == "refuse_platform_access"
    assert [m.code for m in c.describe(0b1_0000_0000_0101)] == [0, 2, 12]
