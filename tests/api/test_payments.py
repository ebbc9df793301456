"""Online payment management (C11) through the API, the relayer, the PaymentRegistry on anvil and the indexer.

Bindings and signals are signed by the demo's payment member with its own key; the alerts are judged on real chain
data (the demo's and the tests' own) and must come out the same from a rebuild, whether the chain is read in one
range or block by block. The demo's plain account numbers must be nowhere on chain.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from credtrace.demo_payments import demo_payments, seed_payments
from credtrace.system import operator_sender
from node_bridge import credit, rebuild
from node_bridge.credit import Kind
from node_bridge.eip712 import Domain, to_json
from node_bridge.indexer import Indexer
from node_bridge.payment_index import TABLES
from node_bridge.payments import REGISTRY, account_hash, load_account_pepper, normalise_account
from node_bridge.store import open_store

from .conftest import CreditWorld, fresh_subject

_NONCES = itertools.count(7_000_001)
_ACCOUNTS = itertools.count(1)


def domain(w: CreditWorld) -> Domain:
    return REGISTRY.domain(w.deployment.chain_id, w.deployment.contracts["PaymentRegistry"].address)


def signed(w: CreditWorld, signer: str, type_name: str, message: dict[str, Any]) -> dict[str, Any]:
    signature = domain(w).sign(w.key(signer), type_name, message)
    return {"type": type_name, "message": to_json(message), "signature": "0x" + signature.hex()}


def fresh_account(w: CreditWorld) -> bytes:
    return account_hash(load_account_pepper(w.settings), f"6228 4800 {next(_ACCOUNTS):011d}")


def binding(w: CreditWorld, signer: str, subject: str, account: bytes, **fields: Any) -> dict[str, Any]:
    message = {"payment": w.orgs[signer], "subject": credit.subject_id(subject), "accountHash": account,
               "boundAt": w.now(), "nonce": next(_NONCES)}  # fmt: skip
    return message | fields


def signal(w: CreditWorld, signer: str, merchant: str, **fields: Any) -> dict[str, Any]:
    message = {"payment": w.orgs[signer], "merchant": credit.subject_id(merchant), "month": 202611, "orders": 900,
               "refundBps": 250, "chargebackBps": 30, "nonce": next(_NONCES)}  # fmt: skip
    return message | fields


def post(w: CreditWorld, caller: str, path: str, body: dict[str, Any]) -> Any:
    return w.client.post(f"/v1/payments/{path}", json=body, headers=w.headers(caller))


def alerts(w: CreditWorld, caller: str = "market-regulation", **params: Any) -> list[dict[str, Any]]:
    response = w.client.get("/v1/payments/alerts", params=params, headers=w.headers(caller))
    assert response.status_code == 200, response.text
    return list(response.json())


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    with engine.connect() as connection:
        return {
            t.name: [dict(r) for r in connection.execute(select(t).order_by(*t.primary_key.columns)).mappings()]
            for t in TABLES
        }


def rebuilt_block_by_block(w: CreditWorld, scratch: Path) -> dict[str, list[dict[str, Any]]]:
    """The payment tables of an index built from the chain one block per range."""
    engine = open_store(f"sqlite:///{scratch / 'blocks.db'}")
    try:
        until = w.indexer.checkpoint()
        assert until is not None
        Indexer(engine, w.w3, w.deployment, w.settings, initial_range=1, max_range=1).step(until.number)
        return dump(engine)
    finally:
        engine.dispose()


def test_the_demo_raises_both_alerts_with_their_evidence_and_a_rebuild_finds_the_same(
    credit_world: CreditWorld, tmp_path: Path
) -> None:
    w = credit_world
    w.settle()
    merchants, section = demo_payments()
    assert section is not None
    subject = {name: "0x" + credit.subject_id(code).hex() for name, code in merchants.items()}
    found = alerts(w)
    kinds = sorted((a["kind"], a["subject"]) for a in found)
    assert kinds == sorted([
        ("shared_account", subject["linyi-garments"]), ("shared_account", subject["mingshui-tea"]),
        ("blacklist_reappearance", subject["mingshui-tea"]),
    ]), found  # fmt: skip
    reappearance = next(a for a in found if a["kind"] == "blacklist_reappearance")
    assert reappearance["subjects"] == [subject["mingshui-tea"], subject["lanshan-tea"]]
    assert [b["subject"] for b in reappearance["bindings"]] == [subject["mingshui-tea"], subject["lanshan-tea"]]
    assert {b["account_hash"] for b in reappearance["bindings"]} == {reappearance["account_hash"]}
    assert [r["kind"] for r in reappearance["records"]] == ["blacklist"]
    assert reappearance["records"][0]["subject_code"] == merchants["lanshan-tea"]
    assert reappearance["bindings"][0]["payment_name"] == "Quancheng Payment Services Co., Ltd."
    assert (
        alerts(w, kind="shared_account", subject=merchants["boshan-glass"])[0]["subject"] == subject["linyi-garments"]
    )
    assert alerts(w, "quancheng-pay", kind="blacklist_reappearance") == [reappearance]

    # who sees what
    refused = w.client.get("/v1/payments/alerts", headers=w.headers("qilu-mall"))
    assert refused.status_code == 403 and "PAYMENT" in refused.text
    assert w.client.get("/v1/payments/alerts", params={"kind": "nope"}, headers=w.headers("quancheng-pay")).json()[
        "detail"
    ]["field"] == "kind"  # fmt: skip
    mine = w.client.get(f"/v1/payments/merchants/{merchants['mingshui-tea']}", headers=w.headers("quancheng-pay"))
    view = mine.json()
    assert view["bindings_count"] == 1 and view["bindings"][0]["account_hash"] == reappearance["account_hash"]
    assert len(view["alerts"]) == 2 and len(view["payment_violations"]) == 1
    assert [(s["month"], s["refund_bps"]) for s in view["signals"]] == [(202611, 1850)]
    theirs = w.client.get(f"/v1/payments/merchants/{merchants['mingshui-tea']}", headers=w.headers("qilu-mall"))
    assert theirs.json()["bindings_count"] == 1 and theirs.json()["bindings"] is None
    assert theirs.json()["alerts"] is None and theirs.json()["signals"] == view["signals"]
    bad = w.client.get("/v1/payments/merchants/91370103776655442X", headers=w.headers("qilu-mall"))
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "subject"

    # seeding the demo again sends nothing
    again = seed_payments(w.settings, w.w3, w.deployment, operator_sender(w.settings, w.w3))
    assert again["sent"] == 0 and again["bindings"] == len(section.bindings)

    # the same alerts from the chain alone: block by block into a scratch index, then the live index rebuilt
    live = dump(w.indexer.engine)
    assert len(live["payment_alert"]) == 3 and len(live["payment_binding"]) == len(section.bindings)
    assert rebuilt_block_by_block(w, tmp_path) == live
    rebuild.rebuild(w.indexer.engine, w.w3, w.deployment, w.settings)
    assert dump(w.indexer.engine) == live

    # the plain account numbers are nowhere on chain: every transaction input and log since the deployment
    numbers = {normalise_account(b.account) for b in section.bindings} | {b.account for b in section.bindings}
    start = min(c.block_number for c in w.deployment.contracts.values())
    seen = 0
    for number in range(start, w.w3.eth.block_number + 1):
        for tx in w.w3.eth.get_block(number, full_transactions=True)["transactions"]:
            receipt = w.w3.eth.get_transaction_receipt(tx["hash"])
            blob = bytes(tx["input"]) + b"".join(
                bytes(log["data"]) + b"".join(log["topics"]) for log in receipt["logs"]
            )
            for plain in numbers:
                assert plain.encode() not in blob and plain.encode().hex() not in blob.hex()
            assert normalise_account(section.bindings[0].account) not in blob.hex()
            seen += 1
    assert seen > 10


def test_bindings_signals_and_violations_keep_every_rule(credit_world: CreditWorld) -> None:
    w = credit_world
    merchant, newcomer = fresh_subject(), fresh_subject()
    account = fresh_account(w)
    body = signed(w, "quancheng-pay", "AccountBinding", binding(w, "quancheng-pay", merchant, account))
    accepted = post(w, "quancheng-pay", "bindings", body)
    assert accepted.status_code == 202, accepted.text
    binding_id = accepted.json()["id"]
    assert post(w, "market-regulation", "bindings", body).json()["id"] == binding_id  # the same message: same id

    def refused(caller: str, path: str, body: dict[str, Any], status: int, field: str | None, cause: str) -> None:
        response = post(w, caller, path, body)
        assert response.status_code == status, response.text
        detail = response.json()["detail"]
        assert cause in response.text and (field is None or detail["field"] == field), detail

    # duplicates: while the first is pending, and once it is on chain
    twin = binding(w, "quancheng-pay", merchant, account)
    refused("quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", twin), 409, "accountHash",
            "BindingExists")  # fmt: skip
    w.settle()
    assert w.client.get(f"/v1/records/{binding_id}", headers=w.headers("quancheng-pay")).json()["write_status"] == (
        "confirmed"
    )
    twin = binding(w, "quancheng-pay", merchant, account)
    refused("quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", twin), 409, "accountHash",
            "BindingExists")  # fmt: skip
    pair = [binding(w, "quancheng-pay", newcomer, account), binding(w, "quancheng-pay", newcomer, account)]
    batch = {"messages": [signed(w, "quancheng-pay", "AccountBinding", m) for m in pair]}
    refused("quancheng-pay", "bindings", batch, 409, "messages[1].accountHash", "BindingExists")

    # roles: a platform's signature, a platform calling, a message naming another organisation
    platform_signed = signed(w, "qilu-mall", "AccountBinding", binding(w, "qilu-mall", newcomer, account))
    refused("quancheng-pay", "bindings", platform_signed, 403, None, "needs a PAYMENT signer")
    mine = signed(w, "quancheng-pay", "AccountBinding", binding(w, "quancheng-pay", newcomer, account))
    refused("qilu-mall", "bindings", mine, 403, None, "needs REGULATOR or PAYMENT")
    posing = signed(w, "quancheng-pay", "AccountBinding", binding(w, "qilu-mall", newcomer, account))
    refused("quancheng-pay", "bindings", posing, 403, None, "payment: the message names")

    # bad input: the account number itself, a zero or short hash
    plain = dict(mine, message=dict(mine["message"], accountNumber="6228480012345678901"))
    refused("quancheng-pay", "bindings", plain, 422, "message.accountNumber", "takes only accountHash")
    assert "6228480012345678901" not in post(w, "quancheng-pay", "bindings", plain).text
    zero = signed(w, "quancheng-pay", "AccountBinding", binding(w, "quancheng-pay", newcomer, bytes(32)))
    refused("quancheng-pay", "bindings", zero, 422, "accountHash", "must not be zero")
    short = dict(mine, message=dict(mine["message"], accountHash="0x1234"))
    refused("quancheng-pay", "bindings", short, 422, "accountHash", "32 bytes")

    # signals: one per member, merchant and month; a real month; rates up to 100 %
    first = signal(w, "quancheng-pay", merchant)
    assert post(w, "quancheng-pay", "signals", signed(w, "quancheng-pay", "PaymentSignal", first)).status_code == 202
    again = signal(w, "quancheng-pay", merchant, orders=1)
    refused(
        "quancheng-pay", "signals", signed(w, "quancheng-pay", "PaymentSignal", again), 409, "month", "SignalExists"
    )
    for fields, field in (({"month": 202613}, "month"), ({"refundBps": 10_001}, "refundBps"),
                          ({"chargebackBps": 20_000}, "chargebackBps")):  # fmt: skip
        bad = signal(w, "quancheng-pay", merchant, month=202612) | fields
        refused("quancheng-pay", "signals", signed(w, "quancheng-pay", "PaymentSignal", bad), 422, field, field)
    platform_signal = signed(w, "qilu-mall", "PaymentSignal", signal(w, "qilu-mall", merchant, month=202612))
    refused("quancheng-pay", "signals", platform_signal, 403, None, "needs a PAYMENT signer")

    # a payment violation record: PAYMENT (or REGULATOR) signs it, a PLATFORM may not
    violation = w.record("quancheng-pay", Kind.PAYMENT_VIOLATION, merchant)
    issued = w.submit("quancheng-pay", w.signed("quancheng-pay", "CreditRecord", violation))
    assert issued.status_code == 202, issued.text
    platform_record = w.signed("qilu-mall", "CreditRecord", w.record("qilu-mall", Kind.PAYMENT_VIOLATION, merchant))
    response = w.submit("qilu-mall", platform_record)
    assert response.status_code == 403 and "needs a REGULATOR or PAYMENT signer" in response.text, response.text
    w.settle()
    assert w.client.get(f"/v1/records/{issued.json()['id']}", headers=w.headers("quancheng-pay")).json()["state"] == (
        "active"
    )
    view = w.client.get(f"/v1/payments/merchants/{merchant}", headers=w.headers("market-regulation")).json()
    assert view["bindings_count"] == 1 and view["payment_violations"] == [issued.json()["id"]]
    assert [(s["month"], s["orders"]) for s in view["signals"]] == [(202611, 900)]


def test_related_subjects_share_an_account_without_an_alert(credit_world: CreditWorld) -> None:
    w = credit_world
    group, branch, stranger = fresh_subject(), fresh_subject(), fresh_subject()

    def relation(signer: str, a: str, b: str) -> dict[str, Any]:
        message = {"declarant": w.orgs[signer], "subject": credit.subject_id(a), "related": credit.subject_id(b),
                   "nonce": next(_NONCES)}  # fmt: skip
        return signed(w, signer, "SubjectRelation", message)

    accepted = post(w, "quancheng-pay", "relations", relation("quancheng-pay", group, branch))
    assert accepted.status_code == 202, accepted.text
    for body, status, field in (
        (relation("quancheng-pay", branch, group), 409, "related"),  # the same pair, the other way round
        (relation("quancheng-pay", group, group), 422, "related"),
    ):
        response = post(w, "quancheng-pay", "relations", body)
        assert response.status_code == status and response.json()["detail"]["field"] == field, response.text
    response = post(w, "quancheng-pay", "relations", relation("qilu-mall", group, stranger))
    assert response.status_code == 403 and "needs a REGULATOR or PAYMENT signer" in response.text, response.text
    assert post(w, "market-regulation", "relations", relation("market-regulation", branch, fresh_subject())).is_success
    w.settle()
    response = post(w, "quancheng-pay", "relations", relation("market-regulation", branch, group))
    assert response.status_code == 409 and "RelationExists" in response.text, response.text

    account = fresh_account(w)
    for subject in (group, branch, stranger):
        message = binding(w, "quancheng-pay", subject, account)
        assert post(w, "quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", message)).is_success
        w.settle()
    (alert,) = alerts(w, account="0x" + account.hex())  # the branch under the group's account raises nothing
    assert alert["kind"] == "shared_account" and alert["subject"] == "0x" + credit.subject_id(stranger).hex()
    assert len(alert["subjects"]) == 3
    view = w.client.get(f"/v1/payments/merchants/{branch}", headers=w.headers("qilu-mall")).json()
    assert "0x" + credit.subject_id(group).hex() in view["related"] and len(view["related"]) == 2


def test_a_blacklist_raises_an_alert_for_accounts_already_shared_and_a_later_binding_another(
    credit_world: CreditWorld, tmp_path: Path
) -> None:
    w = credit_world
    dishonest, front, another = fresh_subject(), fresh_subject(), fresh_subject()
    account = fresh_account(w)
    for subject in (dishonest, front):
        message = binding(w, "quancheng-pay", subject, account)
        assert post(w, "quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", message)).is_success
    w.settle()
    key = "0x" + account.hex()
    assert [a["kind"] for a in alerts(w, account=key)] == ["shared_account"]

    blacklist = w.record("market-regulation", Kind.BLACKLIST, dishonest, tier=2)
    record = w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", blacklist))
    assert record.status_code == 202, record.text
    w.settle()
    (raised,) = alerts(w, account=key, kind="blacklist_reappearance")
    assert raised["raised_by"] == record.json()["id"] and raised["subject"] == "0x" + credit.subject_id(dishonest).hex()
    assert [r["id"] for r in raised["records"]] == [record.json()["id"]]
    assert len(raised["bindings"]) == 2 and "blacklisted while" in raised["explanation"]

    second = w.record("market-regulation", Kind.BLACKLIST, dishonest, tier=1)  # not the first: no new alert
    assert w.submit("market-regulation", w.signed("market-regulation", "CreditRecord", second)).is_success
    w.settle()
    assert len(alerts(w, account=key)) == 2
    message = binding(w, "quancheng-pay", another, account)
    assert post(w, "quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", message)).is_success
    w.settle()
    found = alerts(w, account=key)
    assert [a["kind"] for a in found] == ["shared_account", "blacklist_reappearance", "shared_account",
                                          "blacklist_reappearance"]  # fmt: skip
    latest = found[-1]
    assert latest["subject"] == "0x" + credit.subject_id(another).hex()
    assert len(latest["records"]) == 2 and "new subject" in latest["explanation"]

    # the dishonest merchant's binding is ended; history (and the alerts) stay; binding it again raises nothing new
    first = binding(w, "quancheng-pay", dishonest, account)
    end = {"payment": first["payment"], "subject": first["subject"], "accountHash": account, "unboundAt": w.now(),
           "nonce": next(_NONCES)}  # fmt: skip
    regulator_end = dict(end, payment=w.orgs["market-regulation"], nonce=next(_NONCES))
    response = post(w, "quancheng-pay", "unbindings", signed(w, "market-regulation", "AccountUnbinding", regulator_end))
    assert response.status_code == 403 and "needs a PAYMENT signer" in response.text, response.text
    assert post(w, "quancheng-pay", "unbindings", signed(w, "quancheng-pay", "AccountUnbinding", end)).is_success
    twice = dict(end, nonce=next(_NONCES))
    response = post(w, "quancheng-pay", "unbindings", signed(w, "quancheng-pay", "AccountUnbinding", twice))
    assert response.status_code == 409 and "NotBound" in response.text, response.text  # pending already
    w.settle()
    response = post(w, "quancheng-pay", "unbindings", signed(w, "quancheng-pay", "AccountUnbinding", twice))
    assert response.status_code == 409 and response.json()["detail"]["field"] == "accountHash", response.text
    never = dict(end, subject=credit.subject_id(fresh_subject()), nonce=next(_NONCES))
    response = post(w, "quancheng-pay", "unbindings", signed(w, "quancheng-pay", "AccountUnbinding", never))
    assert response.status_code == 409 and "not bound" in response.text, response.text
    view = w.client.get(f"/v1/payments/merchants/{dishonest}", headers=w.headers("market-regulation")).json()
    assert view["bindings_count"] == 0 and view["bindings"][0]["unbound_at"] == end["unboundAt"]
    assert len(alerts(w, account=key)) == 4
    rebound = binding(w, "quancheng-pay", dishonest, account)
    assert post(w, "quancheng-pay", "bindings", signed(w, "quancheng-pay", "AccountBinding", rebound)).is_success
    w.settle()
    assert len(alerts(w, account=key)) == 4
    view = w.client.get(f"/v1/payments/merchants/{dishonest}", headers=w.headers("market-regulation")).json()
    assert view["bindings_count"] == 1 and len(view["bindings"]) == 2
    assert rebuilt_block_by_block(w, tmp_path) == dump(w.indexer.engine)


def test_the_cli_hashes_locally_and_signs_offline(
    credit_world: CreditWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credtrace import cli_payments

    w = credit_world
    monkeypatch.setattr(cli_payments, "get_settings", lambda: w.settings)
    monkeypatch.delenv("CREDTRACE_ACCOUNT", raising=False)
    runner = CliRunner()
    _, section = demo_payments()
    assert section is not None
    typed = section.bindings[0].account
    hashed = runner.invoke(cli_payments.payment_app, ["hash-account"], input=typed + "\n")
    assert hashed.exit_code == 0, hashed.output
    expected = "0x" + account_hash(load_account_pepper(w.settings), typed).hex()
    assert hashed.output.strip().endswith(expected) and normalise_account(typed) not in hashed.output
    bad = runner.invoke(cli_payments.payment_app, ["hash-account", "--account", "62-2202-3"])
    assert bad.exit_code == 1 and "--account" in bad.output and "2202" not in bad.output, bad.output

    merchant = fresh_subject()
    out = tmp_path / "binding.json"
    args = ["bind-account", "--key", "quancheng-pay", "--password", "demo", "--subject", merchant, "--offline",
            "--out", str(out)]  # fmt: skip
    signed_binding = runner.invoke(cli_payments.payment_app, args, env={"CREDTRACE_ACCOUNT": "6228 4800 9999 0000 1"})
    assert signed_binding.exit_code == 0, signed_binding.output
    text = out.read_text()
    assert "62284800999900001" not in text and "6228 4800" not in text
    accepted = post(w, "quancheng-pay", "bindings", json.loads(text))
    assert accepted.status_code == 202, accepted.text
    out = tmp_path / "signal.json"
    args = ["signal", "--key", "quancheng-pay", "--password", "demo", "--merchant", merchant, "--month", "202611",
            "--orders", "77", "--refund-bps", "400", "--chargeback-bps", "12", "--offline",
            "--out", str(out)]  # fmt: skip
    assert runner.invoke(cli_payments.payment_app, args).exit_code == 0
    assert post(w, "quancheng-pay", "signals", json.loads(out.read_text())).status_code == 202
    w.settle()
    view = w.client.get(f"/v1/payments/merchants/{merchant}", headers=w.headers("quancheng-pay")).json()
    assert view["bindings_count"] == 1 and view["signals"][0]["orders"] == 77
    bad_month = runner.invoke(cli_payments.payment_app, [*args[:8], "202613", *args[9:]])
    assert bad_month.exit_code == 1 and "--month" in bad_month.output, bad_month.output
    out = tmp_path / "relation.json"
    args = ["relate", "--key", "market-regulation", "--password", "demo", "--subject", merchant, "--related",
            fresh_subject(), "--offline", "--out", str(out)]  # fmt: skip
    assert runner.invoke(cli_payments.payment_app, args).exit_code == 0
    assert post(w, "market-regulation", "relations", json.loads(out.read_text())).status_code == 202
    out = tmp_path / "unbinding.json"
    args = ["unbind-account", "--key", "quancheng-pay", "--password", "demo", "--subject", merchant, "--offline",
            "--out", str(out)]  # fmt: skip
    ended = runner.invoke(cli_payments.payment_app, args, env={"CREDTRACE_ACCOUNT": "6228-4800-9999-0000-1"})
    assert ended.exit_code == 0, ended.output
    assert post(w, "quancheng-pay", "unbindings", json.loads(out.read_text())).status_code == 202
    w.settle()
    view = w.client.get(f"/v1/payments/merchants/{merchant}", headers=w.headers("quancheng-pay")).json()
    assert view["bindings_count"] == 0 and len(view["related"]) == 1
