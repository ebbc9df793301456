"""The consumer scan (C5): each verdict reason triggered on purpose, unknown codes, malformed paths, privacy.

Data is written into the traceability tables with real EIP-712 signatures (:mod:`tests.api.trace_seed`), on SQLite
and, with ``CREDTRACE_TEST_POSTGRES_URL``, PostgreSQL; Merkle proofs are checked against the root in the indexer's
``trace_chain_anchor`` table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from node_bridge.projections import table_of
from node_bridge.trace import Step, TraceDomain
from node_bridge.trace_models import Scan
from tests.api.trace_seed import DOMAIN, GTIN, LOT, USCCS, TraceSeed, chain_anchor_table
from tests.conftest import free_port, make_settings


@pytest.fixture
def world(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, TraceSeed]]:
    settings = make_settings(
        tmp_path / "data", free_port(), database_url=store_url, scan_max_count=5, scan_cache_seconds=0,
        scan_story_seconds=0,
        scan_member_codes=list(USCCS.values()), public_rate_limit="10000/minute",
    )  # fmt: skip
    app = create_app(settings)
    app.state.scan.domain = DOMAIN
    with TestClient(app) as client:
        yield client, TraceSeed(app.state.engine)


def scan(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/trace" + path, params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [r["code"] for r in body["reasons"]]


def test_genuine_story(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.chain_story(path)
    body = scan(client, path)
    assert body["verdict"] == "genuine", body["reasons"]
    assert body["reasons"] == []
    assert body["product"]["name"] == "Yantai Fuji apple juice 1 L"
    assert body["producer"]["name"] == "Yantai Orchard Apple Cooperative"
    assert body["lot"]["lot"] == LOT and body["code"]["gtin"] == GTIN
    steps = [e["step"] for e in body["timeline"]]
    assert steps == ["commission", "ship", "receive", "sell", "deliver"]
    first = body["timeline"][0]
    assert first["actor"]["name"] == "Yantai Orchard Apple Cooperative"
    assert first["signature"]["status"] == "valid" and first["proof"]["status"] == "pending"
    assert body["checks"] == {"events": 5, "signatures_valid": True, "proofs_valid": True, "proofs_pending": 5}
    assert body["scans"]["count"] == 1
    assert scan(client, path)["scans"]["count"] == 2


def test_unknown_code_and_unknown_product(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    seed.code()
    body = scan(client, f"/01/{GTIN}/10/{LOT}/21/NEVERISSUED1")
    assert body["verdict"] == "unknown" and codes(body) == ["not_issued"]
    assert body["product"]["name"] == "Yantai Fuji apple juice 1 L"
    body = scan(client, "/01/00012345678905/10/X1/21/Y2")
    assert body["verdict"] == "unknown" and body["product"] is None
    assert "never issued" in body["reasons"][0]["text"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/01/{GTIN[:-1]}3/10/{LOT}/21/S1", "path.gtin"),  # wrong check digit
        ("/01/123/10/L1/21/S1", "path"),  # not 14 digits
        (f"/01/{GTIN}/10/{LOT}", "path"),  # no serial
        (f"/01/{GTIN}/10/{'L' * 21}/21/S1", "path"),  # lot too long
        (f"/01/{GTIN}/10/{LOT}/21/S~1", "path.serial"),  # outside the GS1 character set
    ],
)
def test_malformed_paths(world: tuple[TestClient, TraceSeed], path: str, field: str) -> None:
    client, _ = world
    answer = client.get("/v1/trace" + path)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["field"] == field
    page = client.get("/t" + path)
    assert page.status_code == 422 and "Not a trace code" in page.text


def test_bad_geo_and_region(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    answer = client.get("/v1/trace" + path, params={"geo": "north"})
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "geo"
    answer = client.get("/v1/trace" + path, params={"geo": "91,10"})
    assert answer.status_code == 422
    answer = client.get("/v1/trace" + path, params={"region": "<script>"})
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == "region"


def test_already_sold_long_ago_names_who_and_when(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.chain_story(path, start=int(time.time()) - 60 * 86400)
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == ["already_sold"]
    sold = body["reasons"][0]
    assert "delivered by Jiaodong Express Logistics Co., Ltd." in sold["text"]
    assert sold["by"]["name"] == "Jiaodong Express Logistics Co., Ltd." and sold["at"] < time.time() - 59 * 86400


def test_sold_twice(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    now = int(time.time())
    seed.event("producer", Step.COMMISSION, [path], at=now - 500)
    seed.event("seller", Step.SELL, [path], at=now - 400)
    seed.event("producer", Step.SELL, [path], at=now - 300)
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == ["already_sold"]
    assert "sold twice" in body["reasons"][0]["text"] and "Qilu Mall" in body["reasons"][0]["text"]


def test_too_many_scans(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    for _ in range(5):
        assert scan(client, path)["verdict"] == "genuine"
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == ["too_many_scans"]
    assert body["scans"]["count"] == 6


def test_impossible_travel(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    assert scan(client, path, geo="36.67,117.02", region="Jinan")["verdict"] == "genuine"
    assert scan(client, path, geo="36.70,117.05")["verdict"] == "genuine"  # a few km: fine
    body = scan(client, path, geo="31.23,121.47", region="Shanghai")  # ~730 km a second later
    assert body["verdict"] == "suspicious" and codes(body) == ["impossible_travel"]
    assert body["reasons"][0]["km"] > 600


def test_recalled_code(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    seed.event("producer", Step.RECALL, [path])
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == ["recalled"]
    assert body["lot"]["recalled"] is True and "Yantai Orchard" in body["reasons"][0]["text"]


def test_recalled_lot(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    from datetime import UTC, datetime

    from sqlalchemy import update

    from node_bridge.trace_models import Lot

    with seed.engine.begin() as connection:
        connection.execute(update(table_of(Lot)).values(recalled_at=datetime.now(UTC)))
    assert codes(scan(client, path)) == ["recalled"]


@pytest.mark.parametrize("role", ["producer", "seller"])
def test_blacklisted_producer_or_seller(world: tuple[TestClient, TraceSeed], role: str) -> None:
    client, seed = world
    path = seed.code()
    seed.chain_story(path)
    seed.blacklist(role, int(time.time()))
    client.app.state.status_cache.loaded = False  # type: ignore[attr-defined]  # reload from the index now
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == [f"{role}_blacklisted"]
    assert "blacklist" in body["reasons"][0]["text"]


def test_forged_and_tampered_signatures(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    seed.event("carrier", Step.SHIP, [path], signer=Account.create())  # someone else's key
    seed.event("seller", Step.RECEIVE, [path], tamper=True)
    body = scan(client, path)
    assert body["verdict"] == "suspicious" and codes(body) == ["bad_signature", "bad_signature"]
    statuses = [e["signature"]["status"] for e in body["timeline"]]
    assert statuses == ["valid", "invalid", "invalid"]
    assert "recovers to" in body["timeline"][1]["signature"]["reason"]
    assert "does not hash" in body["timeline"][2]["signature"]["reason"]


def test_signer_not_a_key_of_the_actor(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    # the seller's key signs an event in the producer's name, and the row says so
    seed.accounts["impostor"] = seed.accounts["seller"]
    seed.members["impostor"] = seed.members["producer"]
    seed.event("impostor", Step.COMMISSION, [path])
    body = scan(client, path)
    assert codes(body) == ["bad_signature"]
    assert body["timeline"][0]["signature"]["reason"] == "the signer is not a key of the actor"


def test_merkle_proofs_against_the_anchored_root(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    with seed.engine.connect() as connection:
        if chain_anchor_table(connection) is None:
            pytest.skip("the indexer's trace_chain_anchor table is not there yet")
    path = seed.code()
    events = seed.chain_story(path)
    others = [seed.event("producer", Step.COMMISSION, [seed.code()]) for _ in range(2)]
    seed.anchor([others[0], *events[:3], others[1]])  # a tree of 5: odd sizes, carried nodes
    seed.anchor(events[3:4], on_chain=False)  # closed, not yet on chain
    body = scan(client, path)
    proofs = [e["proof"]["status"] for e in body["timeline"]]
    assert proofs == ["valid", "valid", "valid", "pending", "pending"]
    assert body["timeline"][0]["proof"]["tree_size"] == 5 and body["verdict"] == "genuine"
    wrong = seed.code()
    seed.anchor([seed.event("producer", Step.COMMISSION, [wrong])], wrong_root=True)
    body = scan(client, wrong)
    assert body["verdict"] == "suspicious" and codes(body) == ["bad_proof"]


def test_corrections_are_linked(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    first = seed.event("producer", Step.COMMISSION, [path], location="wrong-site")
    fix = seed.event("producer", Step.COMMISSION, [path], location="orchard-3", corrects=first)
    body = scan(client, path)
    by_id = {e["id"]: e for e in body["timeline"]}
    assert by_id[first]["corrected_by"] == [fix] and by_id[fix]["corrects"] == first
    assert body["verdict"] == "genuine"


def test_scans_recorded_without_personal_data(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.event("producer", Step.COMMISSION, [path])
    scan(client, path, geo="37.4567,121.4444", region="Yantai")
    scan(client, path)
    client.app.state.scan.recorder.flush()  # type: ignore[attr-defined]  # written every 0.2 s, or now
    engine: Engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(select(table_of(Scan))).mappings().all()
    assert [(r["region"], r["geo"], r["verdict"]) for r in rows] == [
        ("Yantai", "37.5,121.4", "genuine"),
        (None, None, "genuine"),
    ]
    assert set(rows[0]) == {"id", "code_id", "scanned_at", "region", "geo", "verdict"}
    assert "testclient" not in repr(rows) and "127.0.0.1" not in repr(rows)


def test_page_shows_the_same_facts(world: tuple[TestClient, TraceSeed]) -> None:
    client, seed = world
    path = seed.code()
    seed.chain_story(path, start=int(time.time()) - 60 * 86400)
    page = client.get("/t" + path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'data-verdict="suspicious"' in html and 'data-reason="already_sold"' in html
    assert "Yantai Fuji apple juice 1 L" in html and "Yantai Orchard Apple Cooperative" in html
    assert html.count("data-step=") == 5 and html.count('data-check="signature" data-status="valid"') == 5
    assert "<script" not in html and "http" not in html.split("<body>")[1]
    assert len(html) < 20_000


def test_demo_custody_chain_anchored_on_anvil(credit_world: Any) -> None:
    """The demo's delivered bottle, end to end: written through the API's functions, its code batch committed and
    its events anchored on a real anvil by the anchorer and the relayer, the roots indexed; every signature and
    every proof checks against the root the indexer read from the chain."""
    import json

    from credtrace.keys import load_key
    from node_bridge.anchorer import Anchorer

    world = credit_world
    demo = json.loads((world.settings.data_path / "demo.json").read_text())
    trace = demo["trace"]
    assert trace is not None and trace["scan"].startswith("/t/01/06901234567892/10/YT2026-11A/21/")
    contract = world.deployment.contracts["TraceRegistry"].address
    domain = TraceDomain(world.deployment.chain_id, contract)
    key = load_key(world.settings.keys_dir, world.settings.anchor_key, "demo")
    anchorer = Anchorer(world.client.app.state.engine, domain, key, world.settings)
    world.settle()
    assert anchorer.step(force=True) is not None
    world.settle()
    world.settle()
    body = world.client.get("/v1/trace" + trace["scan"].removeprefix("/t")).json()
    assert body["verdict"] == "genuine", body["reasons"]
    steps = [e["step"] for e in body["timeline"]]
    assert steps == ["commission", "pack", "ship", "receive", "unpack", "sell", "deliver"]
    actors = {e["actor"]["name"] for e in body["timeline"]}
    assert actors == {"Yantai Orchard Apple Cooperative", "Jiaodong Express Logistics Co., Ltd.",
                      "Qilu Mall E-commerce Co., Ltd."}  # fmt: skip
    assert {e["signature"]["status"] for e in body["timeline"]} == {"valid"}
    assert {e["proof"]["status"] for e in body["timeline"]} == {"valid"}, [e["proof"] for e in body["timeline"]]
    assert body["timeline"][0]["proof"]["tx_hash"].startswith("0x")
    page = world.client.get(trace["scan"])
    assert page.status_code == 200 and 'data-verdict="genuine"' in page.text


def test_new_events_reach_a_cached_story(world: tuple[TestClient, TraceSeed]) -> None:
    """With the story cache on, a code's new event shows once the anchorer batched it (within anchor_interval)."""
    client, seed = world
    client.app.state.scan.settings.scan_story_seconds = 0.001  # type: ignore[attr-defined]
    path = seed.code()
    first = seed.event("producer", Step.COMMISSION, [path])
    assert scan(client, path)["verdict"] == "genuine"
    recall = seed.event("producer", Step.RECALL, [path])
    with seed.engine.connect() as connection:
        if chain_anchor_table(connection) is None:
            return
    seed.anchor([first, recall])
    time.sleep(0.01)
    body = scan(client, path)
    assert codes(body) == ["recalled"] and len(body["timeline"]) == 2
    assert {e["proof"]["status"] for e in body["timeline"]} == {"valid"}
