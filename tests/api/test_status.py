"""Subject status, batch status, compliance, the catalogue and the public lists.

Two kinds of tests: on index rows written straight into SQL (SQLite, and PostgreSQL when
``CREDTRACE_TEST_POSTGRES_URL`` is set), where the semantics are pinned down block by block; and end to end on the
real path (records signed with :class:`CreditDomain`, submitted to the write API, relayed to the CreditRegistry on
anvil, indexed, then queried).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from eth_utils.crypto import keccak
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from api.app import create_app
from api.auth import create_api_key
from api.models import Person
from api.status import StatusCache, parse_at, parse_subject
from credtrace.errors import ValidationFailed
from credtrace.settings import Settings
from credtrace.uscc import with_check_characters
from node_bridge import credit
from node_bridge.consortium import Role, member_id
from node_bridge.credit import Kind
from node_bridge.models import (
    CreditRecordRow,
    EnforcementRow,
    IndexedBlock,
    IndexerCheckpoint,
    Member,
    utcnow,
)

from ..conftest import free_port
from .conftest import CreditWorld, fresh_subject

CHAIN = 31337
FAR = 10**11
_IDS = itertools.count(1)
_CODES = itertools.count(1)


def code() -> str:
    return with_check_characters(f"91370200{next(_CODES):08d}")


def sid(subject: str) -> str:
    """The 0x subject id of a credit code."""
    return "0x" + subject.encode().ljust(32, b"\0").hex()


def person() -> str:
    return "0x" + keccak(f"person {next(_IDS)}".encode()).hex()


REGULATOR = "0x" + member_id("11370000004123454M").hex()
PLATFORM_A = "0x" + member_id("91370100321654988D").hex()
PLATFORM_B = "0x" + member_id("913702006543217867").hex()
AUDITOR = "0x" + member_id("91370101456789126G").hex()
LOGISTICS = "0x" + member_id("913706007891234538").hex()
SUSPENDED = "0x" + member_id("91370602987123462D").hex()
MEMBERS = [
    (REGULATOR, "Market Regulation", Role.REGULATOR, "active"),
    (PLATFORM_A, "A Mall", Role.PLATFORM, "active"),
    (PLATFORM_B, "B Market", Role.PLATFORM, "active"),
    (AUDITOR, "Audit Office", Role.AUDITOR, "active"),
    (LOGISTICS, "Express", Role.LOGISTICS, "active"),
    (SUSPENDED, "Gone Mall", Role.PLATFORM, "suspended"),
]


def row(subject: str, kind: str, block: int, block_time: int, **fields: Any) -> CreditRecordRow:
    """An index row as the projection writes it (subject: a credit code or a 0x commitment)."""
    is_code = not subject.startswith("0x")
    number = next(_IDS)
    values: dict[str, Any] = {
        "id": "0x" + keccak(f"record {number}".encode()).hex(),
        "kind": kind,
        "subject": sid(subject) if is_code else subject,
        "subject_code": subject if is_code else None,
        "issuer": REGULATOR,
        "signer": "0x" + "11" * 20,
        "legal_basis": "E-Commerce Law art. 38",
        "tier": "general",
        "measures": 0,
        "document_hash": "0x" + "22" * 32,
        "effective_at": block_time,
        "public_until": FAR,
        "valid_until": FAR,
        "relation": "none",
        "nonce": str(number),
        "block_number": block,
        "block_time": block_time,
        "tx_hash": "0x" + keccak(f"tx {number}".encode()).hex(),
        "log_index": number % 7,
    }
    values.update(fields)
    return CreditRecordRow(**values)


def close(record: CreditRecordRow, how: str, block: int, when: int) -> CreditRecordRow:
    record.closed, record.closed_block, record.closed_time = how, block, when
    record.closure_id, record.closed_tx, record.closed_reason = "0x" + "33" * 32, "0x" + "44" * 32, "review"
    return record


@dataclass
class Store:
    client: TestClient
    engine: Engine
    cache: StatusCache
    keys: dict[str, str]

    def headers(self, member: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[member]}"}

    def add(self, *rows: Any, head: tuple[int, int] | None = None) -> None:
        """Write index rows (and move the checkpoint to ``head`` = (block, timestamp)); then refresh the cache."""
        with Session(self.engine) as session:
            for item in rows:
                session.merge(item)
            if head is not None:
                number, stamp = head
                session.merge(IndexedBlock(chain_id=CHAIN, number=number, hash=_hash(number), parent_hash="0x",
                                           timestamp=stamp))  # fmt: skip
                session.merge(IndexerCheckpoint(chain_id=CHAIN, block_number=number, block_hash=_hash(number),
                                                block_timestamp=stamp))  # fmt: skip
            session.commit()
        refresh(self.client)

    def status(self, subject: str, member: str = PLATFORM_A, **params: Any) -> Any:
        response = self.client.get(f"/v1/subjects/{subject}/status", params=params, headers=self.headers(member))
        assert response.status_code == 200, response.text
        return response.json()


def status_cache(client: TestClient) -> StatusCache:
    cache: StatusCache = cast(FastAPI, client.app).state.status_cache
    return cache


def refresh(client: TestClient) -> None:
    """Let the app's status cache catch up with the index now (on the app's own event loop)."""
    assert client.portal is not None, "only inside `with TestClient(app)`"
    client.portal.call(status_cache(client).refresh)


def _hash(number: int) -> str:
    return "0x" + keccak(f"block {number}".encode()).hex()


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=store_url, anvil_port=free_port(), status_refresh_seconds=30
    )
    app = create_app(settings)
    engine: Engine = app.state.engine
    keys = {}
    with Session(engine) as session:
        for member, name, roles, status in MEMBERS:
            session.add(Member(id=member, name=name, roles=int(roles), status=status, admitted_block=1,
                               updated_block=1))  # fmt: skip
        session.flush()
        for member, *_ in MEMBERS:
            keys[member], _record = create_api_key(session, member)
        session.commit()
    app.state.status_cache.shredded_interval = 0  # read the shredded persons on every refresh
    with TestClient(app) as client:
        yield Store(client, engine, app.state.status_cache, keys)
    engine.dispose()


# parsing


def test_at_and_subject_parsing() -> None:
    assert parse_at("123").block == 123 and parse_at("block:7").block == 7
    assert parse_at("time:1733300000").time == 1733300000
    assert parse_at("2026-12-04T10:00:00Z").time == 1796378400
    assert parse_at("2026-12-04T18:00:00+08:00").time == 1796378400
    assert parse_at("2026-12-04T10:00:00").time == 1796378400  # no zone: UTC
    for bad in ("yesterday", "block:x", "time:-5", "block:", "2026-13-01", "time:" + "9" * 20):
        with pytest.raises(ValidationFailed) as caught:
            parse_at(bad)
        assert caught.value.field == "at"
    organisation = parse_subject("91370100321654988D")
    assert organisation.id == sid("91370100321654988D") and organisation.code == "91370100321654988D"
    assert parse_subject(organisation.id.upper().replace("0X", "0x")).code == "91370100321654988D"
    commitment = person()
    assert parse_subject(commitment) == parse_subject(commitment.upper().replace("0X", "0x"))
    assert parse_subject(commitment).is_person
    for bad in ("91370100321654988E", "0x1234", "0x" + "00" * 32, "9137", "0x" + "zz" * 32):
        with pytest.raises(ValidationFailed) as caught:
            parse_subject(bad, "subjects[3]")
        assert caught.value.field == "subjects[3]"


# status on index rows


def test_status_now_lists_active_records_measures_and_proof(store: Store) -> None:
    now = int(time.time())
    subject = code()
    black = row(subject, "blacklist", 10, now - 100, tier="severe", measures=1 << 20)
    red = row(subject, "red_list", 11, now - 90, tier="minor")
    penalty = row(subject, "administrative_penalty", 11, now - 80)
    upcoming = row(subject, "counterfeit_substandard", 12, now - 70, effective_at=now + 3600, tier="severe")
    expired = row(subject, "blacklist", 12, now - 70, effective_at=now - 60, valid_until=now - 1)
    revoked = close(row(subject, "red_list", 12, now - 70), "revoked", 13, now - 50)
    store.add(black, red, penalty, upcoming, expired, revoked, head=(13, now - 50))

    status = store.status(subject)
    assert status["subject"] == sid(subject) and status["subject_code"] == subject
    assert status["red_listed"] is True and status["blacklisted"] is True
    assert [r["id"] for r in status["records"]] == [black.id, red.id, penalty.id]
    assert [r["id"] for r in status["notice"]] == [upcoming.id]
    assert status["records"][0]["tx_hash"] == black.tx_hash and status["records"][0]["block_number"] == 10
    due = {m["slug"]: m["records"] for m in status["measures_due"]}
    assert due == {
        "traffic_priority": [red.id],
        "limit_membership_level": [black.id],
        "cancel_trusted_authentication": [black.id],
        "close_shop": [black.id],
        "refuse_platform_access": [black.id],
        "public_exposure": [black.id],
        "measure_20": [black.id],
    }
    assert status["proof"]["blacklist"] == [
        {"id": black.id, "kind": "blacklist", "tier": "severe", "block_number": 10, "log_index": black.log_index,
         "tx_hash": black.tx_hash}
    ]  # fmt: skip
    assert [p["id"] for p in status["proof"]["red_list"]] == [red.id]
    assert status["records"][2] == {
        "id": penalty.id, "kind": "administrative_penalty", "tier": "general", "block_number": 11,
        "log_index": penalty.log_index, "tx_hash": penalty.tx_hash, "issuer": REGULATOR,
        "legal_basis": "E-Commerce Law art. 38", "measures": [], "effective_at": now - 80, "public_until": FAR,
        "valid_until": FAR,
    }  # fmt: skip
    assert status["as_of_block"] == 13 and status["source"] == "live"
    assert abs(status["as_of_time"] - now) < 5
    # the same subject by its 0x id; an unknown subject is simply clear
    assert store.status(sid(subject))["records"] == status["records"]
    clear = store.status(code())
    assert clear["red_listed"] is False and clear["blacklisted"] is False and clear["records"] == []
    assert clear["measures_due"] == [] and clear["as_of_block"] == 13


def test_the_cache_follows_new_records_closures_and_reorgs(store: Store) -> None:
    now = int(time.time())
    subject = code()
    first = row(subject, "blacklist", 20, now - 100)
    store.add(first, head=(20, now - 100))
    assert store.status(subject)["blacklisted"] is True
    # a repair in a later block ends the listing; a new red-list record arrives in the same refresh
    red = row(subject, "red_list", 21, now - 90)
    store.add(close(first, "repaired", 21, now - 90), red, head=(21, now - 90))
    status = store.status(subject)
    assert status["blacklisted"] is False and status["red_listed"] is True and status["as_of_block"] == 21
    # a reorg replaces block 21: the index rolls back (the red record vanishes, the repair too) and moves on
    with Session(store.engine) as session:
        session.execute(update(CreditRecordRow).where(CreditRecordRow.id == first.id).values(  # type: ignore[arg-type]
            closed=None, closed_block=None, closed_time=None))  # fmt: skip
        session.delete(session.get(CreditRecordRow, red.id))
        session.commit()
    with Session(store.engine) as session:  # ... and block 21 now has another hash
        block = session.get(IndexedBlock, (CHAIN, 21))
        assert block is not None
        block.hash = "0x" + "55" * 32
        checkpoint = session.get(IndexerCheckpoint, CHAIN)
        assert checkpoint is not None
        checkpoint.block_hash = block.hash
        session.commit()
    refresh(store.client)
    status = store.status(subject)
    assert status["blacklisted"] is True and status["red_listed"] is False


def test_notice_becomes_active_by_time(store: Store) -> None:
    now = int(time.time())
    subject = code()
    later = row(subject, "blacklist", 30, now - 10, effective_at=now + 1000, valid_until=now + 2000)
    store.add(later, head=(30, now - 10))
    status = store.status(subject)
    assert status["blacklisted"] is False and [r["id"] for r in status["notice"]] == [later.id]
    store.cache.clock = lambda: now + 1000
    status = store.status(subject)
    assert status["blacklisted"] is True and status["notice"] == [] and status["as_of_time"] == now + 1000
    store.cache.clock = lambda: now + 2000
    assert store.status(subject)["blacklisted"] is False  # expired
    store.cache.clock = time.time
    assert store.status(subject, at=f"time:{now + 1500}")["blacklisted"] is True
    assert store.status(subject, at=f"time:{now + 999}")["blacklisted"] is False


def test_as_of_a_block_or_a_time(store: Store) -> None:
    subject = code()
    # blocks 10 and 20 carried events; 30 is the checkpoint; blocks in between were pruned from indexed_block
    black = row(subject, "blacklist", 10, 1000, effective_at=1500)
    red = close(row(subject, "red_list", 20, 2000), "revoked", 30, 3000)
    store.add(
        black, red, IndexedBlock(chain_id=CHAIN, number=10, hash=_hash(10), parent_hash="0x", timestamp=1000),
        IndexedBlock(chain_id=CHAIN, number=20, hash=_hash(20), parent_hash="0x", timestamp=2000), head=(30, 3000),
    )  # fmt: skip

    def at(value: str) -> dict[str, Any]:
        status: dict[str, Any] = store.status(subject, at=value)
        assert status["source"] == "history" and status["at"] == value
        return status

    before = at("block:9")
    assert before["records"] == [] and before["notice"] == [] and before["as_of_block"] == 9
    notice = at("block:15")  # evaluated at block 10's time (the latest indexed block <= 15): still in notice
    assert notice["as_of_block"] == 15 and notice["as_of_time"] == 1000
    assert [r["id"] for r in notice["notice"]] == [black.id] and notice["blacklisted"] is False
    both = at("25")
    assert both["as_of_time"] == 2000 and both["blacklisted"] is True and both["red_listed"] is True
    assert {p["id"] for p in both["proof"]["red_list"]} == {red.id}
    revoked = at("block:30")
    assert revoked["red_listed"] is False and revoked["blacklisted"] is True and revoked["beyond_head"] is False
    beyond = at("block:99")
    assert beyond["as_of_block"] == 30 and beyond["beyond_head"] is True and beyond["red_listed"] is False
    by_time = at("time:2999")
    assert by_time["red_listed"] is True and by_time["as_of_block"] == 20 and by_time["as_of_time"] == 2999
    assert at("time:1499")["blacklisted"] is False and at("time:1500")["blacklisted"] is True
    assert at("1970-01-01T00:49:59Z")["red_listed"] is True  # 2999 s
    assert at("time:3000")["red_listed"] is False  # revoked at 3000
    assert at("time:999")["as_of_block"] is None
    late = at("time:5000")
    assert late["as_of_block"] == 30 and late["beyond_head"] is True and late["as_of_time"] == 5000


def test_batch_of_ten_thousand(store: Store) -> None:
    now = int(time.time())
    subjects = [code() for _ in range(10_000)]
    listed = {subjects[i]: row(subjects[i], "blacklist", 40, now - 100) for i in range(0, 10_000, 1000)}
    commitment = person()
    on_person = row(commitment, "red_list", 40, now - 100)
    store.add(*listed.values(), on_person, head=(40, now - 100))
    body = {"subjects": [*subjects, commitment]}
    body["subjects"][5] = sid(subjects[5])
    response = store.client.post("/v1/subjects/status:batch", json=body, headers=store.headers(PLATFORM_B))
    assert response.status_code == 422 and "10001 subjects; at most 10000" in response.text  # the limit
    body["subjects"].pop(0)
    started = time.perf_counter()
    response = store.client.post("/v1/subjects/status:batch", json=body, headers=store.headers(PLATFORM_B))
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["count"] == 10_000 and answer["as_of_block"] == 40 and answer["source"] == "live"
    results = answer["results"]
    assert [r["blacklisted"] for r in results[:-1]] == [s in listed for s in subjects[1:]]
    assert results[-1]["red_listed"] is True and results[-1]["subject_code"] is None
    assert results[4]["subject"] == sid(subjects[5])
    first = listed[subjects[1000]]
    assert results[999] == {
        "subject": sid(subjects[1000]), "subject_code": subjects[1000], "red_listed": False, "blacklisted": True,
        "records": [{"id": first.id, "kind": "blacklist", "tier": "general", "block_number": 40,
                     "log_index": first.log_index, "tx_hash": first.tx_hash}],
        "notice": [],
        "measures_due": ["limit_membership_level", "cancel_trusted_authentication", "block_shop", "public_exposure"],
    }  # fmt: skip
    full = store.client.post(
        "/v1/subjects/status:batch",
        json={"subjects": subjects[1000:1002], "detail": "full"},
        headers=store.headers(AUDITOR),
    ).json()["results"]
    assert full[0] == {k: v for k, v in store.status(subjects[1000]).items() if not k.startswith(("as_of", "source"))}
    assert full[1]["records"] == [] and full[1]["proof"] == {"red_list": [], "blacklist": []}
    assert elapsed < 5  # the figure that matters is in bench/status.py
    history = store.client.post(
        "/v1/subjects/status:batch",
        json={"subjects": subjects[:1001], "at": "block:39"},
        headers=store.headers(AUDITOR),
    ).json()
    assert history["as_of_block"] == 39 and not any(r["blacklisted"] for r in history["results"])
    assert (
        store.client.post(
            "/v1/subjects/status:batch",
            json={"subjects": subjects[:1001], "at": "block:40"},
            headers=store.headers(AUDITOR),
        ).json()["results"][1000]["blacklisted"]
        is True
    )


def test_status_errors(store: Store) -> None:
    headers = store.headers(PLATFORM_A)
    subject = code()
    assert store.client.get(f"/v1/subjects/{subject}/status").status_code == 401
    wrong = store.client.get(f"/v1/subjects/{subject}/status", headers={"Authorization": "Bearer ctk_nope"})
    assert wrong.status_code == 401
    suspended = store.client.get(f"/v1/subjects/{subject}/status", headers=store.headers(SUSPENDED))
    assert suspended.status_code == 403
    for bad, field in (("91370100321654988E", "subject"), ("0x12", "subject")):
        response = store.client.get(f"/v1/subjects/{bad}/status", headers=headers)
        assert response.status_code == 422 and response.json()["detail"]["field"] == field, response.text
    response = store.client.get(f"/v1/subjects/{subject}/status", params={"at": "soon"}, headers=headers)
    assert response.status_code == 422 and response.json()["detail"]["field"] == "at"
    batch = store.client.post("/v1/subjects/status:batch", json={"subjects": [subject, "nope"]}, headers=headers)
    assert batch.status_code == 422 and batch.json()["detail"]["field"] == "subjects[1]"
    bad_at = store.client.post("/v1/subjects/status:batch", json={"subjects": [subject], "at": "x"}, headers=headers)
    assert bad_at.status_code == 422 and bad_at.json()["detail"]["field"] == "at"
    empty = store.client.post("/v1/subjects/status:batch", json={"subjects": []}, headers=headers)
    assert empty.status_code == 422 and "subjects" in empty.text
    assert store.client.post("/v1/subjects/status:batch", json={"subjects": [subject]}).status_code == 401


def test_a_shredded_person_is_gone(store: Store) -> None:
    now = int(time.time())
    shredded, live = person(), person()
    with Session(store.engine) as session:
        session.add(Person(commitment=shredded, registered_by=PLATFORM_A, shredded_at=utcnow()))
        session.add(Person(commitment=live, salt="00" * 32, lookup_key="ab" * 32, registered_by=PLATFORM_A))
        session.commit()
    store.add(row(shredded, "blacklist", 50, now - 10), row(live, "blacklist", 50, now - 10), head=(50, now - 10))
    headers = store.headers(PLATFORM_A)
    for params in ({}, {"at": "block:50"}):
        response = store.client.get(f"/v1/subjects/{shredded}/status", params=params, headers=headers)
        assert response.status_code == 410, response.text
        assert response.json()["detail"]["subject"] == shredded
        assert store.status(live, **params)["blacklisted"] is True
    for extra in ({}, {"at": "block:50"}):
        batch = store.client.post(
            "/v1/subjects/status:batch", json={"subjects": [live, shredded], **extra}, headers=headers
        ).json()["results"]
        assert batch[0]["blacklisted"] is True
        assert batch[1]["error"] == "Gone" and "erased" in batch[1]["message"] and "records" not in batch[1]


# compliance


def test_compliance_counts_receipts_and_latency(store: Store) -> None:
    now = int(time.time())
    subject, other = code(), code()
    black = row(subject, "blacklist", 60, now - 1000, tier="minor", effective_at=now - 900)  # 2 measures due
    red = row(other, "red_list", 60, now - 1000, tier="minor")  # 1 measure due
    penalty = row(other, "administrative_penalty", 60, now - 1000)  # nothing due
    old = row(code(), "blacklist", 5, now - 90 * 86400, valid_until=now - 60 * 86400)  # outside the window
    receipts = [
        (PLATFORM_A, black, 8, now - 800),  # limit_membership_level, 100 s after it took effect
        (PLATFORM_A, black, 8, now - 700),  # a second receipt for the same pair counts once (the first)
        (PLATFORM_A, black, 13, now - 600),  # public_exposure, 300 s
        (PLATFORM_A, red, 0, now - 1000),  # traffic_priority, at once
        (PLATFORM_B, black, 13, now - 100),  # 800 s
        (PLATFORM_B, black, 12, now - 100),  # refuse_platform_access: not due for a minor blacklist record
        (PLATFORM_B, penalty, 8, now - 100),  # nothing due for it
    ]
    rows: list[Any] = [black, red, penalty, old]
    for index, (platform, record, measure, applied) in enumerate(receipts):
        rows.append(EnforcementRow(
            id="0x" + keccak(f"receipt {index} {now}".encode()).hex(), platform=platform, subject=record.subject,
            record_id=record.id, measure=measure, applied_at=applied, signer="0x" + "66" * 20, block_number=61,
            block_time=now - 50, tx_hash="0x" + "77" * 32, log_index=index,
        ))  # fmt: skip
    store.add(*rows, head=(61, now - 50))
    response = store.client.get("/v1/compliance", headers=store.headers(REGULATOR))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["records_in_scope"] == 2 and report["measures_due"] == 3
    by_name = {p["name"]: p for p in report["platforms"]}
    assert set(by_name) == {"A Mall", "B Market", "Gone Mall"}
    a, b = by_name["A Mall"], by_name["B Market"]
    assert (a["due"], a["filed"], a["missing"], a["compliance"]) == (3, 3, 0, 1.0)
    assert a["latency_seconds"] == {"count": 3, "median": 100, "p95": 300, "max": 300}
    assert (b["filed"], b["missing"], round(b["compliance"], 3)) == (1, 2, 0.333)
    assert b["latency_seconds"] == {"count": 1, "median": 800, "p95": 800, "max": 800}
    assert by_name["Gone Mall"]["filed"] == 0 and by_name["Gone Mall"]["latency_seconds"]["median"] is None
    # an auditor may look too, for one platform and another window
    one = store.client.get(
        "/v1/compliance",
        params={"platform": PLATFORM_B, "since": f"{now - 100 * 86400}"},
        headers=store.headers(AUDITOR),
    ).json()
    assert [p["name"] for p in one["platforms"]] == ["B Market"] and one["records_in_scope"] == 3
    assert store.client.get("/v1/compliance", headers=store.headers(PLATFORM_A)).status_code == 403
    assert store.client.get("/v1/compliance").status_code == 401
    bad = store.client.get("/v1/compliance", params={"since": "last week"}, headers=store.headers(REGULATOR))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "since"
    bad = store.client.get("/v1/compliance", params={"platform": "A Mall"}, headers=store.headers(REGULATOR))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "platform"


# public


def test_public_lists_show_organisations_within_their_window(store: Store) -> None:
    now = int(time.time())
    shown = [row(code(), "blacklist", 70 + i, now - 100, tier="severe") for i in range(5)]
    hidden = [
        row(person(), "blacklist", 80, now - 100),  # a natural person
        close(row(code(), "blacklist", 80, now - 100), "repaired", 81, now - 50),  # repaired
        close(row(code(), "blacklist", 80, now - 100), "revoked", 81, now - 50),  # revoked
        row(code(), "blacklist", 80, now - 100, public_until=now - 1),  # publication over
        row(code(), "blacklist", 80, now - 100, effective_at=now + 100, public_until=now + 200),  # not yet
        row(code(), "red_list", 80, now - 100),  # the other list
    ]
    store.add(*shown, *hidden, head=(81, now - 50))
    first = store.client.get("/v1/public/lists/black", params={"limit": 3})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["list"] == "black" and len(page["items"]) == 3 and page["next_cursor"]
    rest = store.client.get("/v1/public/lists/black", params={"limit": 3, "cursor": page["next_cursor"]}).json()
    assert rest["next_cursor"] is None
    items = page["items"] + rest["items"]
    assert [i["record"] for i in items] == [r.id for r in reversed(shown)]
    item = items[0]
    assert item == {
        "record": shown[-1].id, "kind": "blacklist", "tier": "severe", "subject_code": shown[-1].subject_code,
        "issuer": {"id": REGULATOR, "name": "Market Regulation"}, "legal_basis": "E-Commerce Law art. 38",
        "effective_at": now - 100, "public_until": FAR, "block_number": 74, "tx_hash": shown[-1].tx_hash,
    }  # fmt: skip
    assert "subject" not in item and "signer" not in item
    red = store.client.get("/v1/public/lists/red").json()["items"]
    assert [i["record"] for i in red] == [hidden[-1].id]
    assert store.client.get("/v1/public/lists/grey").status_code == 422
    bad = store.client.get("/v1/public/lists/black", params={"cursor": "abc"})
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "cursor"


def test_measures_are_published_and_public_routes_are_rate_limited(store_url: str, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", database_url=store_url, anvil_port=free_port(), public_rate_limit="3/minute"
    )
    with TestClient(create_app(settings)) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/subjects/{subject}/status", "/v1/subjects/status:batch", "/v1/compliance", "/v1/measures",
                "/v1/public/lists/{name}"} <= set(paths)  # fmt: skip
        catalogue = client.get("/v1/measures")
        assert catalogue.status_code == 200
        slugs = {m["slug"]: m["code"] for m in catalogue.json()["measures"]}
        assert slugs["traffic_priority"] == 0 and slugs["close_shop"] == 11
        assert client.get("/v1/public/lists/red").status_code == 200
        assert client.get("/v1/public/lists/black").status_code == 200
        limited = client.get("/v1/measures")
        assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_a_broken_catalogue_stops_the_app(store_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "measures.yaml"
    broken.write_text("version: 1\nmeasures: []\n")
    settings = Settings(data_dir=tmp_path / "data", database_url=store_url, measures_config=broken)
    with pytest.raises(ValidationFailed, match="measures"):
        create_app(settings)


# end to end: API → outbox → relayer → CreditRegistry on anvil → indexer → status


def _fresh(w: CreditWorld) -> None:
    """Relay and index, then let this API process's status cache catch up."""
    w.settle()
    refresh(w.client)


def _issue(w: CreditWorld, subject: str, kind: Kind, **fields: Any) -> tuple[str, dict[str, Any]]:
    message = w.record("market-regulation", kind, subject, **fields)
    accepted = w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", message))
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["id"], message


def _status(w: CreditWorld, subject: str, **params: Any) -> Any:
    response = w.client.get(f"/v1/subjects/{subject}/status", params=params, headers=w.headers("qilu-mall"))
    assert response.status_code == 200, response.text
    return response.json()


def test_end_to_end_issue_revoke_and_look_back(credit_world: CreditWorld) -> None:
    w = credit_world
    subject = fresh_subject()
    record_id, _ = _issue(w, subject, Kind.BLACKLIST, tier=2)
    _fresh(w)
    now = _status(w, subject)
    assert now["blacklisted"] is True and [r["id"] for r in now["records"]] == [record_id]
    issued_block = now["records"][0]["block_number"]
    assert now["proof"]["blacklist"][0]["tx_hash"] == now["records"][0]["tx_hash"]
    assert {m["slug"] for m in now["measures_due"]} >= {"close_shop", "refuse_platform_access"}
    registry = w.deployment.contract(w.w3, "CreditRegistry")
    assert registry.functions.isBlacklisted(credit.subject_id(subject)).call() is True

    revocation = w.signed("market-regulation", "Revocation", w.closure("market-regulation", record_id))
    assert w.submit("market-regulation", revocation).status_code == 202
    _fresh(w)
    after = _status(w, subject)
    assert after["blacklisted"] is False and after["records"] == []
    assert registry.functions.isBlacklisted(credit.subject_id(subject)).call() is False
    assert w.client.get(f"/v1/records/{record_id}", headers=w.headers("qilu-mall")).json()["state"] == "revoked"
    with Session(status_cache(w.client).engine) as session:
        row = session.get(CreditRecordRow, record_id)
        assert row is not None and row.closed_block is not None
        revoked_at = row.closed_block
    assert after["as_of_block"] >= revoked_at > issued_block
    back = _status(w, subject, at=f"block:{revoked_at - 1}")  # the block before the revocation
    assert back["blacklisted"] is True and back["as_of_block"] == revoked_at - 1
    assert [r["id"] for r in back["records"]] == [record_id]
    assert _status(w, subject, at=f"block:{issued_block - 1}")["records"] == []
    assert _status(w, subject, at=f"block:{revoked_at}")["blacklisted"] is False
    head = revoked_at
    # by code, by 0x id, and in a batch: the same answer
    batch = w.client.post(
        "/v1/subjects/status:batch",
        json={"subjects": [subject, sid(subject)], "at": f"block:{head - 1}"},
        headers=w.headers("qilu-mall"),
    ).json()
    assert [r["blacklisted"] for r in batch["results"]] == [True, True]


def test_end_to_end_notice_repair_receipts_and_public_list(credit_world: CreditWorld) -> None:
    w = credit_world
    subject, later_subject = fresh_subject(), fresh_subject()
    chain_now = w.now()
    record_id, _ = _issue(w, subject, Kind.BLACKLIST, tier=0)
    upcoming_id, _ = _issue(w, later_subject, Kind.RED_LIST, effectiveAt=chain_now + 600, publicUntil=chain_now + 900)
    _fresh(w)
    upcoming = _status(w, later_subject)
    assert upcoming["red_listed"] is False and [r["id"] for r in upcoming["notice"]] == [upcoming_id]
    assert _status(w, later_subject, at=f"time:{chain_now + 600}")["red_listed"] is True
    cache = status_cache(w.client)
    cache.clock = lambda: chain_now + 601
    try:
        assert _status(w, later_subject)["red_listed"] is True
    finally:
        cache.clock = time.time

    listed = w.client.get("/v1/public/lists/black", params={"limit": 1000}).json()["items"]
    mine = [i for i in listed if i["record"] == record_id]
    assert len(mine) == 1 and mine[0]["subject_code"] == subject
    assert mine[0]["issuer"]["name"] == "Shandong Provincial Administration for Market Regulation"

    # a platform files a receipt for one of the two measures due; the regulator sees it
    status = _status(w, subject)
    due = {m["slug"]: m["code"] for m in status["measures_due"]}
    assert set(due) == {"limit_membership_level", "public_exposure"}

    def compliance() -> dict[str, Any]:
        qilu_id = "0x" + w.orgs["qilu-mall"].hex()
        report = w.client.get("/v1/compliance", params={"platform": qilu_id}, headers=w.headers("credit-office"))
        assert report.status_code == 200, report.text
        [qilu] = report.json()["platforms"]  # the demo data may hold other records and receipts: compare
        assert qilu["name"] == "Qilu Mall E-commerce Co., Ltd."
        return dict(qilu)

    before = compliance()
    applied = w.now()
    receipt = {
        "platform": w.orgs["qilu-mall"], "subject": credit.subject_id(subject),
        "recordId": bytes.fromhex(record_id[2:]), "measure": due["public_exposure"], "appliedAt": applied,
        "nonce": 10**9 + applied,
    }  # fmt: skip
    filed = w.submit("qilu-mall", w.signed("qilu-mall", "Enforcement", receipt), "/v1/enforcements")
    assert filed.status_code == 202, filed.text
    _fresh(w)
    after = compliance()
    assert after["due"] == before["due"] and after["filed"] == before["filed"] + 1
    assert after["latency_seconds"]["count"] == before["latency_seconds"]["count"] + 1
    assert after["compliance"] > (before["compliance"] or 0)
    assert w.client.get("/v1/compliance", headers=w.headers("qilu-mall")).status_code == 403

    # credit repair: the listing and the publication stop, the history stays
    repair = w.signed("market-regulation", "Repair", w.closure("market-regulation", record_id, "rectified"))
    assert w.submit("market-regulation", repair).status_code == 202
    _fresh(w)
    repaired = _status(w, subject)
    assert repaired["blacklisted"] is False and repaired["measures_due"] == []
    listed = w.client.get("/v1/public/lists/black", params={"limit": 1000}).json()["items"]
    assert record_id not in {i["record"] for i in listed}
    assert _status(w, subject, at=f"block:{repaired['as_of_block'] - 1}")["blacklisted"] is True


def test_without_the_lifespan_the_cache_loads_and_refreshes_on_use(store_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=store_url, status_refresh_seconds=0.05)
    app = create_app(settings)
    now = int(time.time())
    subject = code()
    with Session(app.state.engine) as session:
        session.add(Member(id=PLATFORM_A, name="A Mall", roles=int(Role.PLATFORM), status="active", admitted_block=1,
                           updated_block=1))  # fmt: skip
        key, _ = create_api_key(session, PLATFORM_A)
        session.add(row(subject, "red_list", 5, now - 10))
        session.add(IndexerCheckpoint(chain_id=CHAIN, block_number=5, block_hash=_hash(5), block_timestamp=now - 10))
        session.add(IndexedBlock(chain_id=CHAIN, number=5, hash=_hash(5), parent_hash="0x", timestamp=now - 10))
        session.commit()
    client = TestClient(app)  # no `with`: no lifespan, no background task
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get(f"/v1/subjects/{subject}/status", headers=headers).json()["red_listed"] is True
    with Session(app.state.engine) as session:
        record = session.exec(select(CreditRecordRow).where(CreditRecordRow.subject == sid(subject))).one()
        close(record, "revoked", 6, now - 5)
        session.add(record)
        session.add(IndexedBlock(chain_id=CHAIN, number=6, hash=_hash(6), parent_hash=_hash(5), timestamp=now - 5))
        checkpoint = session.get(IndexerCheckpoint, CHAIN)
        assert checkpoint is not None
        checkpoint.block_number, checkpoint.block_hash, checkpoint.block_timestamp = 6, _hash(6), now - 5
        session.commit()
    time.sleep(0.06)
    status = client.get(f"/v1/subjects/{subject}/status", headers=headers).json()
    assert status["red_listed"] is False and status["as_of_block"] == 6
