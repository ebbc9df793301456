"""The ``credtrace`` command line, run as a user runs it (a subprocess on a scratch data directory)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from credtrace.demo import demo_members
from credtrace.keys import load_key
from credtrace.settings import PROJECT_ROOT
from node_bridge.chain import AnvilNode
from node_bridge.consortium import Action, encode_payload, member_id, proposal_message, sign, typed_data
from node_bridge.deploy import CONTRACTS
from tests.conftest import free_port

BIN = Path(sys.executable).parent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    values = {
        **os.environ,
        "CREDTRACE_DATA_DIR": str(tmp_path / "data"),
        "CREDTRACE_ANVIL_PORT": str(free_port()),
        "CREDTRACE_API_PORT": str(free_port()),
    }
    yield values
    AnvilNode(tmp_path / "data" / "chain", port=int(values["CREDTRACE_ANVIL_PORT"])).stop()


def credtrace(
    env: dict[str, str], *args: str, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "credtrace"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,  # type: ignore[call-overload]
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result  # type: ignore[no-any-return]


def test_keys_new_and_list(env: dict[str, str]) -> None:
    created = credtrace(env, "keys", "new", "ops-desk", "--password", "pw")
    name, address, path = created.stdout.split()
    assert name == "ops-desk" and address.startswith("0x") and Path(path).exists()
    assert json.loads(Path(path).read_text())["crypto"]["kdf"] == "scrypt"
    listed = credtrace(env, "keys", "list")
    assert "ops-desk" in listed.stdout and address in listed.stdout
    again = credtrace(env, "keys", "new", "ops-desk", "--password", "pw", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_chain_start_stop_status(env: dict[str, str]) -> None:
    assert credtrace(env, "chain", "status", check=False).returncode == 1
    first = credtrace(env, "chain", "start").stdout
    second = credtrace(env, "chain", "start").stdout
    assert first.split("(pid")[1].split(",")[0] == second.split("(pid")[1].split(",")[0]
    assert "running" in credtrace(env, "chain", "status").stdout
    assert "anvil stopped" in credtrace(env, "chain", "stop").stdout
    assert credtrace(env, "chain", "status", check=False).returncode == 1


def test_up_serves_the_api_and_stops_the_chain_it_started(env: dict[str, str], tmp_path: Path) -> None:
    process = subprocess.Popen(
        [str(BIN / "credtrace"), "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{env['CREDTRACE_API_PORT']}/healthz"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                response = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the API did not come up"
                time.sleep(0.5)
        assert response.status_code == 200
        assert set(response.json()["chain"]["contracts"]) == set(CONTRACTS)  # every registry, deployed
        members_url = f"http://127.0.0.1:{env['CREDTRACE_API_PORT']}/v1/members"
        while httpx.get(members_url, timeout=5).json()["total"] < 9:  # the supervised indexer catches up
            assert time.monotonic() < deadline, "the indexer did not index the demo consortium"
            time.sleep(0.5)
        _write_through_the_supervised_relayer(env, deadline)
        _sign_submit_show_a_record(env, tmp_path, deadline)
        status = credtrace(env, "status")
        assert "threshold: 2" in status.stdout
        assert '"created": false' in credtrace(env, "deploy").stdout
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert "chain stopped" in output
    assert credtrace(env, "chain", "status", check=False).returncode == 1


def test_ape_run_deploy(env: dict[str, str], tmp_path: Path) -> None:
    anvil_dir = PROJECT_ROOT / "node_modules" / ".bin"
    ape_env = {
        **env,
        "PATH": f"{anvil_dir}:{env['PATH']}",
        "SOLCX_BINARY_PATH": str(PROJECT_ROOT / "build" / "solcx"),
    }
    result = subprocess.run(
        [str(BIN / "ape"), "run", "deploy", "--network", "ethereum:local:foundry"],
        cwd=PROJECT_ROOT,
        env=ape_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload, _ = json.JSONDecoder().raw_decode(result.stdout[result.stdout.index("{") :])
    assert payload["created"] is True
    assert payload["contracts"]["Consortium"]["address"].startswith("0x")


def _write_through_the_supervised_relayer(env: dict[str, str], deadline: float) -> None:
    """A signed proposal posted to the API of `credtrace up` reaches the chain through its relayer."""
    api = f"http://127.0.0.1:{env['CREDTRACE_API_PORT']}"
    consortium = httpx.get(f"{api}/healthz", timeout=5).json()["chain"]["contracts"]["Consortium"]
    regulator = load_key(Path(env["CREDTRACE_DATA_DIR"]) / "keys", "market-regulation", "demo")
    member = member_id(demo_members()[0].uscc)
    payload = encode_payload(Action.SUSPEND)
    message = proposal_message(Action.SUSPEND, member, payload, 7)
    signature = sign(regulator, typed_data("Proposal", message, 31337, consortium))
    body = {"action": "SUSPEND", "member": "0x" + member.hex(), "payload": "0x", "nonce": "7"}
    api_keys = json.loads((Path(env["CREDTRACE_DATA_DIR"]) / "api-keys.json").read_text())  # the demo's
    auth = {"Authorization": f"Bearer {api_keys['Shandong Provincial Administration for Market Regulation']}"}
    signed = {**body, "signature": "0x" + signature.hex()}
    accepted = httpx.post(f"{api}/v1/proposals", json=signed, headers=auth, timeout=5)
    assert accepted.status_code == 202, accepted.text
    while (status := httpx.get(accepted.json()["status_url"], headers=auth, timeout=5).json())["status"] != "confirmed":
        assert status["status"] != "failed", status
        assert time.monotonic() < deadline, f"the supervised relayer did not confirm the write: {status}"
        time.sleep(0.3)


def _sign_submit_show_a_record(env: dict[str, str], tmp_path: Path, deadline: float) -> None:
    """A department signs a blacklist decision offline with its keystore, submits it, and follows it."""
    api_keys = json.loads((Path(env["CREDTRACE_DATA_DIR"]) / "api-keys.json").read_text())
    document = tmp_path / "decision.txt"
    document.write_text("Decision no. 42: the shop sold counterfeit tea.")
    signed = tmp_path / "decision.json"
    sign_args = ["--key", "market-regulation", "--password", "demo", "--kind", "blacklist"]
    sign_args += ["--subject", "91370102765432104K", "--legal-basis", "E-Commerce Law art. 13", "--tier", "severe"]
    credtrace(env, "record", "sign", *sign_args, "--document", str(document), "--offline", "--out", str(signed))
    body = json.loads(signed.read_text())
    assert body["type"] == "CreditRecord" and body["message"]["kind"] == 3
    bad = credtrace(env, "record", "sign", *sign_args[:6], "--subject", "91370102765432104Z", "--legal-basis", "x",
                    check=False)  # fmt: skip
    assert bad.returncode == 1 and "subject" in bad.stderr
    key = {"CREDTRACE_API_KEY": api_keys["Shandong Provincial Administration for Market Regulation"]}
    submitted = credtrace({**env, **key}, "record", "submit", str(signed))
    record_id, kind, status = submitted.stdout.split()
    assert kind == "CreditRecord" and status == "accepted"
    while (shown := json.loads(credtrace({**env, **key}, "record", "show", record_id).stdout))["state"] is None:
        assert shown["write_status"] != "failed", shown
        assert time.monotonic() < deadline, f"the record was not indexed: {shown}"
        time.sleep(0.3)
    assert shown["state"] == "active" and shown["message"]["legalBasis"] == "E-Commerce Law art. 13"
    refused = credtrace(env, "record", "show", record_id, check=False)  # no API key
    assert refused.returncode == 1 and "401" in refused.stderr


def test_index_rebuild_and_check_from_the_command_line(env: dict[str, str]) -> None:
    credtrace(env, "up", "--no-api")
    rebuilt = credtrace(env, "index", "rebuild")
    assert "index rebuilt" in rebuilt.stdout
    clean = credtrace(env, "index", "check")
    assert "index matches the chain" in clean.stdout
    database = Path(env["CREDTRACE_DATA_DIR"]) / "credtrace.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE member SET name = 'Forged Trading Co.' WHERE name LIKE 'Qilu Mall%'")
    tampered = credtrace(env, "index", "check", check=False)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert "Forged Trading Co." in tampered.stdout
    assert "1 difference(s)" in tampered.stdout
