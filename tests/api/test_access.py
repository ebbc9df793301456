"""Access to the API: members' API keys (401/403), the in-memory key cache, public rate limits (429), natural
persons over HTTP (register, erase, 410), the demo's api-keys.json and the ``credtrace apikey`` commands.

The store is real (SQLite, and PostgreSQL when ``CREDTRACE_TEST_POSTGRES_URL`` is set); members are rows of the
index table ``member`` as the indexer would write them, so these tests need no chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlmodel import Session

from api.app import create_app
from api.auth import Caller, create_api_key, parse_key, revoke_api_key, verify_api_key
from api.deps import SessionDep
from api.models import ApiKey, Person
from credtrace import persons
from credtrace.demo import API_KEYS_FILE, all_demo_members, demo_api_keys, demo_directory
from credtrace.errors import NotAuthenticated, NotAuthorised, ValidationFailed
from credtrace.settings import Settings
from node_bridge.consortium import Role, member_id
from node_bridge.models import Member
from node_bridge.store import open_store, session_scope

ID_NUMBER = "11010519491231002X"
OTHER_ID_NUMBER = "370102198807150017"
NO_WRITE = "0x" + "ab" * 32


def _member(n: int) -> str:
    return "0x" + f"{n:064x}"


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    roles: Role
    status: str = "active"


MEMBERS = {
    "regulator": Row(_member(1), "Provincial Market Regulation", Role.REGULATOR),
    "platform": Row(_member(2), "Qilu Mall", Role.PLATFORM),
    "rival": Row(_member(3), "Haibin Marketplace", Role.PLATFORM),
    "producer": Row(_member(4), "Yantai Orchard", Role.PRODUCER),
    "suspended": Row(_member(5), "Fly-by-night Express", Role.LOGISTICS, "suspended"),
}


@dataclass
class Access:
    client: TestClient
    app: FastAPI
    engine: Engine
    keys: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def _settings(tmp_path: Path, store_url: str, **overrides: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=store_url, **overrides)


def _seed(engine: Engine) -> dict[str, str]:
    with session_scope(engine) as session:
        for row in MEMBERS.values():
            session.add(
                Member(id=row.id, name=row.name, roles=row.roles, status=row.status, admitted_block=1, updated_block=1)
            )
        return {who: create_api_key(session, member.id, label=who)[0] for who, member in MEMBERS.items()}


def _subject_route(app: FastAPI) -> None:
    """What a route about a natural-person subject does first (records routes call the same helper)."""

    @app.get("/test/subjects/{commitment}")
    def subject(session: SessionDep, commitment: str) -> dict[str, str]:
        return {"state": persons.ensure_not_shredded(session, commitment)}


@pytest.fixture
def access(tmp_path: Path, store_url: str) -> Iterator[Access]:
    settings = _settings(tmp_path, store_url, api_key_cache_seconds=60, public_rate_limit="5/minute")
    app = create_app(settings)
    _subject_route(app)
    keys = _seed(app.state.engine)
    with TestClient(app) as client:
        yield Access(client, app, app.state.engine, keys)
    app.state.engine.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


# API keys


def test_a_key_is_shown_once_and_stored_hashed(access: Access) -> None:
    key = access.keys["platform"]
    key_id, secret = parse_key(key)
    assert key == f"ctk_{key_id}_{secret}" and len(secret) >= 40
    with Session(access.engine) as session:
        record = session.get(ApiKey, key_id)
        assert record is not None and record.member_id == MEMBERS["platform"].id
        assert record.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in json.dumps(record.model_dump(mode="json"))
        caller = verify_api_key(session, key)
    assert caller == Caller(MEMBERS["platform"].id, "Qilu Mall", Role.PLATFORM, key_id)


def test_verification_refuses_wrong_revoked_and_inactive(access: Access) -> None:
    key_id, secret = parse_key(access.keys["platform"])
    with session_scope(access.engine) as session:
        with pytest.raises(NotAuthenticated, match=r"Authorization: API key .* unknown or its secret is wrong"):
            verify_api_key(session, f"ctk_{key_id}_{'x' * len(secret)}")
        with pytest.raises(NotAuthenticated, match="is not a credtrace API key"):
            verify_api_key(session, "sk_live_123")
        with pytest.raises(NotAuthorised, match="suspended"):
            verify_api_key(session, access.keys["suspended"])
        revoke_api_key(session, key_id)
        first = session.get(ApiKey, key_id)
        assert first is not None and first.revoked_at is not None
        assert revoke_api_key(session, key_id).revoked_at == first.revoked_at
        with pytest.raises(NotAuthenticated, match=f"API key {key_id} was revoked"):
            verify_api_key(session, access.keys["platform"])


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-key", "Bearer ctk_0123456789abcdef_" + "A" * 43],
)
def test_no_valid_key_is_401_naming_the_authorization_header(access: Access, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = access.client.get(f"/v1/writes/{NO_WRITE}", headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert detail["error"] == "NotAuthenticated" and detail["header"] == "Authorization"
    assert detail["message"].startswith("Authorization: ")


def test_a_member_key_passes_and_a_revoked_one_is_refused(access: Access) -> None:
    answered = access.client.get(f"/v1/writes/{NO_WRITE}", headers=access.auth("producer"))
    assert answered.status_code == 404, answered.text  # past the key check: there is no such write
    with session_scope(access.engine) as session:
        revoke_api_key(session, parse_key(access.keys["rival"])[0])
    refused = access.client.get(f"/v1/writes/{NO_WRITE}", headers=access.auth("rival"))
    assert refused.status_code == 401 and "was revoked" in refused.json()["detail"]["message"]
    suspended = access.client.get(f"/v1/writes/{NO_WRITE}", headers=access.auth("suspended"))
    assert suspended.status_code == 403 and "suspended" in suspended.json()["detail"]["message"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/proposals", {}),
        ("POST", f"/v1/proposals/{NO_WRITE}/approvals", {}),
        ("POST", f"/v1/proposals/{NO_WRITE}/execution", None),
    ],
)
def test_governance_writes_need_a_regulator_key(
    access: Access, method: str, path: str, body: dict[str, str] | None
) -> None:
    anonymous = access.client.request(method, path, json=body)
    assert anonymous.status_code == 401
    refused = access.client.request(method, path, json=body, headers=access.auth("platform"))
    assert refused.status_code == 403, refused.text
    message = refused.json()["detail"]["message"]
    assert "Qilu Mall (PLATFORM)" in message and "needs REGULATOR" in message
    allowed = access.client.request(method, path, json=body, headers=access.auth("regulator"))
    assert allowed.status_code not in (401, 403), allowed.text  # then the body or the chain decides


def test_a_key_revocation_needs_any_member_key(access: Access) -> None:
    assert access.client.post("/v1/key-revocations", json={}).status_code == 401
    with_key = access.client.post("/v1/key-revocations", json={}, headers=access.auth("producer"))
    assert with_key.status_code not in (401, 403), with_key.text  # past the key check: the body or chain decides


def test_a_cached_key_costs_no_sql_and_revocation_shows_within_the_ttl(tmp_path: Path, store_url: str) -> None:
    app = create_app(_settings(tmp_path, store_url, api_key_cache_seconds=0.5))
    keys = _seed(app.state.engine)
    headers = {"Authorization": f"Bearer {keys['platform']}"}
    with TestClient(app) as client:
        assert client.get(f"/v1/writes/{NO_WRITE}", headers=headers).status_code == 404
        statements = _statements(app.state.engine)
        assert client.get(f"/v1/writes/{NO_WRITE}", headers=headers).status_code == 404
        assert not any("api_key" in s or "member" in s for s in statements), statements
        forged = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
        assert client.get(f"/v1/writes/{NO_WRITE}", headers=forged).status_code == 401
        with session_scope(app.state.engine) as session:
            revoke_api_key(session, parse_key(keys["platform"])[0])
        assert client.get(f"/v1/writes/{NO_WRITE}", headers=headers).status_code == 404  # still cached
        time.sleep(0.6)
        assert client.get(f"/v1/writes/{NO_WRITE}", headers=headers).status_code == 401
    app.state.engine.dispose()


# Public rate limits


def test_public_reads_answer_429_with_retry_after_past_the_limit(access: Access) -> None:
    for path in ("/v1/members", f"/v1/members/{_member(1)}", "/v1/proposals", "/v1/members", "/v1/members"):
        assert access.client.get(path).status_code == 200, path
    limited = access.client.get(f"/v1/proposals/{NO_WRITE}")
    assert limited.status_code == 429
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 60
    detail = limited.json()["detail"]
    assert detail["error"] == "RateLimited" and detail["limit"] == "5/minute" and detail["retry_after"] == retry
    assert "retry after" in detail["message"]
    members_only = access.client.get(f"/v1/writes/{NO_WRITE}", headers=access.auth("platform"))
    assert members_only.status_code == 404  # routes with a key are not counted against the public limit


def test_a_bad_rate_limit_setting_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="public_rate_limit"):
        create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 's.db'}", public_rate_limit="lots"))
    with pytest.raises(ValidationFailed, match="rate_limit_storage"):
        create_app(_settings(tmp_path, f"sqlite:///{tmp_path / 's.db'}", rate_limit_storage="nowhere://x"))


# Natural persons


def test_persons_register_idempotently_and_shred_for_good(access: Access, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"id_number": ID_NUMBER.lower()}
    first = access.client.post("/v1/persons", json=body, headers=access.auth("platform"))
    assert first.status_code == 201, first.text
    commitment = first.json()["commitment"]
    assert first.json() == {"commitment": commitment} and len(commitment) == 66
    again = access.client.post("/v1/persons", json={"id_number": f" {ID_NUMBER} "}, headers=access.auth("regulator"))
    assert again.status_code == 201 and again.json()["commitment"] == commitment
    other = access.client.post("/v1/persons", json={"id_number": OTHER_ID_NUMBER}, headers=access.auth("rival"))
    assert other.json()["commitment"] != commitment
    assert access.client.get(f"/test/subjects/{commitment}").json() == {"state": "live"}

    not_registrant = access.client.delete(f"/v1/persons/{commitment}", headers=access.auth("rival"))
    assert not_registrant.status_code == 403 and "registered by another member" in not_registrant.text
    erased = access.client.delete(f"/v1/persons/{commitment}", headers=access.auth("platform"))
    assert erased.status_code == 204 and erased.content == b""
    with Session(access.engine) as session:
        row = session.get(Person, commitment)
        assert row is not None and row.salt is None and row.lookup_key is None and row.shredded_at is not None
        assert persons.person_state(session, commitment) == "shredded"
    assert access.client.delete(f"/v1/persons/{commitment}", headers=access.auth("regulator")).status_code == 204
    gone = access.client.get(f"/test/subjects/{commitment}")
    assert gone.status_code == 410
    assert gone.json()["detail"]["subject"] == commitment and "crypto-shredded" in gone.text

    reborn = access.client.post("/v1/persons", json=body, headers=access.auth("platform"))
    assert reborn.status_code == 201 and reborn.json()["commitment"] != commitment
    by_regulator = access.client.delete(f"/v1/persons/{reborn.json()['commitment']}", headers=access.auth("regulator"))
    assert by_regulator.status_code == 204
    unknown = access.client.delete(f"/v1/persons/{NO_WRITE}", headers=access.auth("regulator"))
    assert unknown.status_code == 404
    assert access.client.get(f"/test/subjects/{NO_WRITE}").json() == {"state": "unknown"}
    assert ID_NUMBER not in caplog.text and ID_NUMBER.lower() not in caplog.text


def test_persons_need_a_registering_role_and_a_valid_number(access: Access) -> None:
    body = {"id_number": ID_NUMBER}
    assert access.client.post("/v1/persons", json=body).status_code == 401
    producer = access.client.post("/v1/persons", json=body, headers=access.auth("producer"))
    assert producer.status_code == 403
    assert "REGULATOR or PLATFORM or LOGISTICS or CERTIFIER or PAYMENT" in producer.json()["detail"]["message"]
    assert access.client.delete(f"/v1/persons/{NO_WRITE}").status_code == 401
    wrong = ID_NUMBER[:17] + "5"
    bad = access.client.post("/v1/persons", json={"id_number": wrong}, headers=access.auth("platform"))
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert detail["field"] == "id_number" and "position 18" in detail["reason"]
    assert wrong not in bad.text and ID_NUMBER[:17] not in bad.text
    as_int = access.client.post(
        "/v1/persons", json={"id_number": int(OTHER_ID_NUMBER)}, headers=access.auth("platform")
    )
    assert as_int.status_code == 201  # taken as its digits; a type error would have echoed it back


def test_the_pepper_is_a_private_file_unless_set(tmp_path: Path, store_url: str) -> None:
    settings = _settings(tmp_path, store_url)
    pepper = persons.load_pepper(settings)
    path = settings.data_path / persons.PEPPER_FILE
    assert len(pepper) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert persons.load_pepper(settings) == pepper
    chosen = _settings(tmp_path, store_url, person_pepper="a pepper from the vault")
    assert persons.load_pepper(chosen) == b"a pepper from the vault"
    with pytest.raises(ValidationFailed, match="person_pepper"):
        persons.load_pepper(_settings(tmp_path, store_url, person_pepper=""))


# The demo's keys


def test_demo_api_keys_one_per_member_kept_across_restarts(tmp_path: Path, store_url: str) -> None:
    settings = _settings(tmp_path, store_url)
    keys = demo_api_keys(settings)
    members = all_demo_members(settings)
    assert set(keys) == {m.name for m in members} and len(members) == 9
    path = settings.data_path / API_KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == keys
    assert demo_api_keys(settings) == keys
    qilu = next(m for m in members if m.key == "qilu-mall")
    engine = open_store(settings.database)
    with session_scope(engine) as session:
        record = session.get(ApiKey, parse_key(keys[qilu.name])[0])
        assert record is not None and record.member_id == "0x" + member_id(qilu.uscc).hex()
        revoke_api_key(session, record.id)
    engine.dispose()
    renewed = demo_api_keys(settings)
    assert renewed[qilu.name] != keys[qilu.name]
    assert {n: k for n, k in renewed.items() if n != qilu.name} == {n: k for n, k in keys.items() if n != qilu.name}
    assert json.loads(path.read_text()) == renewed


# The command line


def _credtrace(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "credtrace"), *args], env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_apikey_create_list_revoke_from_the_command_line(tmp_path: Path, store_url: str) -> None:
    env = {**os.environ, "CREDTRACE_DATA_DIR": str(tmp_path / "data"), "CREDTRACE_DATABASE_URL": store_url}
    qilu_id, qilu_name = demo_directory(_settings(tmp_path, store_url))["qilu-mall"]
    created = _credtrace(env, "apikey", "create", "--member", "qilu-mall", "--label", "orders service")
    key = created.stdout.strip()
    key_id, _ = parse_key(key)
    assert f"API key {key_id} for {qilu_name} ({qilu_id})" in " ".join(created.stderr.split())
    by_id = _credtrace(env, "apikey", "create", "--member", _member(7)).stdout.strip()
    listed = _credtrace(env, "apikey", "list").stdout.splitlines()
    rows = {line.split("\t")[0]: line.split("\t") for line in listed}
    assert set(rows) == {key_id, parse_key(by_id)[0]}
    assert rows[key_id][1] == qilu_id and rows[key_id][2] == "orders service" and rows[key_id][5] == "-"
    assert key.split("_", 2)[2] not in "\n".join(listed)
    revoked = _credtrace(env, "apikey", "revoke", key_id)
    assert f"API key {key_id} revoked at" in revoked.stdout
    assert _credtrace(env, "apikey", "list").stdout.count("\t-\n") == 1  # only the other key is unrevoked
    unknown = _credtrace(env, "apikey", "revoke", "ffffffffffffffff", check=False)
    assert unknown.returncode == 1 and "no API key with id 'ffffffffffffffff'" in unknown.stderr
    nobody = _credtrace(env, "apikey", "create", "--member", "Nobody Ltd", check=False)
    assert nobody.returncode == 1 and "no member named 'Nobody Ltd'" in nobody.stderr
    engine = open_store(store_url)
    with Session(engine) as session:
        record = session.get(ApiKey, key_id)
        assert record is not None and record.member_id == qilu_id and record.revoked_at is not None
    engine.dispose()
