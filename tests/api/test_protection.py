"""Consumer protection through the API on a real system (anvil, the demo consortium, relayer, indexer).

The demo's fund and cases give the summary and risk figures asserted exactly; the test's own cases are Haibin
Marketplace's (the demo's are Qilu Mall's), and every rule is broken once: a 4xx naming the field and, for the
contract's rules, the custom error the chain would answer with.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from web3 import Web3

from credtrace.demo import demo_directory
from node_bridge.credit import subject_id
from node_bridge.eip712 import hex32
from node_bridge.protection import REGISTRY, ZERO32, Step, case_id, consumer_commitment, fund_id

from .conftest import CreditWorld

DAY = 86400
QILU, HAIBIN = "qilu-mall", "haibin-marketplace"
REGULATOR = "market-regulation"
SEAFOOD = subject_id("913702023579135748")  # haiyang-seafood
PHONES = subject_id("91370802990011226J")  # liaocheng-phones
TEA = subject_id("91370102765432104K")  # lanshan-tea
_NONCES = itertools.count(int(time.time() * 1000) << 8)


def domain(world: CreditWorld) -> Any:
    return REGISTRY.domain(world.deployment.chain_id, world.deployment.contracts["ProtectionRegistry"].address)


def signed(world: CreditWorld, signer: str, kind: str, message: dict[str, Any]) -> dict[str, Any]:
    from node_bridge.eip712 import to_json

    signature = domain(world).sign(world.key(signer), kind, message)
    return {"type": kind, "message": to_json(message), "signature": "0x" + signature.hex()}


def post(world: CreditWorld, caller: str, *messages: dict[str, Any]) -> Any:
    body = messages[0] if len(messages) == 1 else {"messages": list(messages)}
    return world.client.post("/v1/protection/messages", json=body, headers=world.headers(caller))


def fund(world: CreditWorld, platform: str, ref: str, version: int = 1, **fields: Any) -> dict[str, Any]:
    now = world.now()
    message = {
        "platform": world.orgs[platform], "fundId": fund_id(world.orgs[platform], ref), "version": version,
        "amount": 1_000_000_00, "currency": "CNY", "custodian": "China Merchants Bank, Qingdao (escrow)",
        "periodStart": now - DAY, "periodEnd": now + 365 * DAY, "nonce": next(_NONCES),
    }  # fmt: skip
    return message | fields


def step(world: CreditWorld, platform: str, ref: str, kind: Step, amount: int = 0, **fields: Any) -> dict[str, Any]:
    now = world.now()
    message = {
        "platform": world.orgs[platform], "caseId": case_id(world.orgs[HAIBIN], ref), "step": int(kind),
        "merchant": SEAFOOD, "consumer": consumer_commitment(b"salt-of-the-platform", "buyer-42"), "amount": amount,
        "dueBy": now + 3 * DAY if kind is Step.COMPLAINT else 0, "traceCode": ZERO32, "decision": ZERO32,
        "at": now + int(kind), "nonce": next(_NONCES),
    }  # fmt: skip
    return message | fields


def detail(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["detail"]
    return body


def test_demo_fund_summary_and_risk_signal(credit_world: CreditWorld) -> None:
    from credtrace.demo_protection import seed_protection
    from credtrace.system import operator_account
    from node_bridge.transactions import Sender

    world = credit_world
    world.settle()
    platform = demo_directory(world.settings)[QILU][0]
    again = seed_protection(
        world.settings, world.w3, world.deployment, Sender(world.w3, operator_account(world.settings))
    )
    assert again is not None and again["sent"] == 0 and again["platform"] == platform  # seeding again does nothing
    # funds are public: no API key needed
    funds = world.client.get("/v1/protection/funds", params={"platform": QILU})
    assert funds.status_code == 200, funds.text
    (qilu_fund,) = funds.json()["funds"]
    assert (qilu_fund["version"], qilu_fund["amount"], qilu_fund["currency"]) == (2, 5_000_000_000, "CNY")
    history = world.client.get(f"/v1/protection/funds/{qilu_fund['fund_id']}").json()["history"]
    assert [(v["version"], v["amount"]) for v in history] == [(2, 5_000_000_000), (1, 3_000_000_000)]

    summary = world.client.get(f"/v1/protection/platforms/{QILU}/summary", headers=world.headers(REGULATOR))
    assert summary.status_code == 200, summary.text
    figures = summary.json()
    assert figures["platform"] == platform
    assert figures["fund"]["in_effect"] == [{"currency": "CNY", "amount": 5_000_000_000, "funds": 1}]
    assert figures["cases"] == {
        "opened": 3, "open": 2, "claimed_amount": 12_800 + 45_900 + 29_900, "compensated": 3,
        "compensated_amount": 12_800 + 45_900 + 29_900, "due": 3, "paid_on_time": 2, "overdue_unpaid": 0,
        "paid_on_time_ratio": 0.6667, "recovered_in_full": 1, "recovered_amount": 12_800,
        "unrecovered_amount": 45_900 + 29_900,
    }  # fmt: skip
    # the platform sees its own summary; another platform does not
    assert world.client.get(f"/v1/protection/platforms/{QILU}/summary", headers=world.headers(QILU)).status_code == 200
    other = world.client.get(f"/v1/protection/platforms/{QILU}/summary", headers=world.headers(HAIBIN))
    assert other.status_code == 403 and "may not see" in detail(other)["message"]

    risks = world.client.get("/v1/protection/risks", headers=world.headers(REGULATOR))
    assert risks.status_code == 200, risks.text
    (signal,) = risks.json()["merchants"]
    assert signal["merchant"] == hex32(PHONES) and signal["merchant_code"] == "91370802990011226J"
    assert signal["unrecovered_cases"] == 2 and signal["unrecovered_amount"] == 45_900 + 29_900
    assert sorted(c["case_id"] for c in signal["cases"]) == sorted(
        hex32(case_id(bytes.fromhex(platform[2:]), ref)) for ref in ("QM-2026-0002", "QM-2026-0003")
    )
    # with a grace period longer than the cases' age, no signal; platforms do not see risk signals
    longer = world.client.get("/v1/protection/risks", params={"grace_days": 90}, headers=world.headers(REGULATOR))
    assert longer.json()["merchants"] == []
    assert world.client.get("/v1/protection/risks", headers=world.headers(QILU)).status_code == 403

    # the recovered case: its timeline and links to the demo's bottle and to the penalty against the merchant
    first = hex32(case_id(bytes.fromhex(platform[2:]), "QM-2026-0001"))
    case = world.client.get(f"/v1/protection/cases/{first}", headers=world.headers(REGULATOR)).json()
    assert [s["step"] for s in case["timeline"]] == ["complaint", "compensated", "recovered", "recovered", "closed"]
    assert (case["state"], case["compensated"], case["recovered"], case["paid_on_time"]) == (
        "closed",
        12800,
        12800,
        True,
    )
    assert case["links"]["trace"]["known"] and case["links"]["trace"]["state"] == "delivered"
    assert case["links"]["decision"]["kind"] == "administrative_penalty"
    assert world.client.get(f"/v1/protection/cases/{first}", headers=world.headers(HAIBIN)).status_code == 403
    assert world.client.get(f"/v1/protection/cases/{first}").status_code == 401


def test_a_case_through_the_api(credit_world: CreditWorld) -> None:
    """Haibin's case against Haiyang Seafood: each step accepted, checked against pending ones, then indexed."""
    world = credit_world
    world.settle()
    bottle = world.client.get(
        f"/v1/protection/cases/{hex32(case_id(world.orgs[QILU], 'QM-2026-0001'))}", headers=world.headers(REGULATOR)
    ).json()["links"]
    penalty, trace_code = bottle["decision"]["record_id"], bottle["trace"]["code_id"]
    before = world.client.get(f"/v1/protection/platforms/{HAIBIN}/summary", headers=world.headers(REGULATOR)).json()
    assert before["cases"]["opened"] == 0, before

    complaint = step(world, HAIBIN, "HB-1", Step.COMPLAINT, 5_000, traceCode=bytes.fromhex(trace_code[2:]))
    paid = step(world, HAIBIN, "HB-1", Step.COMPENSATED, 4_800, decision=bytes.fromhex(penalty[2:]))
    answer = post(world, HAIBIN, signed(world, HAIBIN, "CaseStep", complaint), signed(world, HAIBIN, "CaseStep", paid))
    assert answer.status_code == 202, answer.text
    resent = post(world, HAIBIN, signed(world, HAIBIN, "CaseStep", complaint))  # the same message: same id, no new row
    assert resent.status_code == 202 and resent.json()["id"] == answer.json()["accepted"][0]["id"], resent.text
    # not indexed yet: the rules see the pending steps
    again = post(world, HAIBIN, signed(world, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-1", Step.COMPENSATED, 1)))
    assert answer.status_code == 202 and again.status_code == 409, again.text
    assert detail(again)["contract_error"] == "StepOutOfOrder" and detail(again)["field"] == "step"
    too_much = post(
        world, HAIBIN, signed(world, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-1", Step.RECOVERED, 4_801))
    )
    assert too_much.status_code == 409 and detail(too_much)["contract_error"] == "RecoveryExceedsCompensation"
    assert detail(too_much)["field"] == "amount"
    world.settle()

    case_url = f"/v1/protection/cases/{hex32(case_id(world.orgs[HAIBIN], 'HB-1'))}"
    case = world.client.get(case_url, headers=world.headers(HAIBIN)).json()
    assert (case["state"], case["claimed"], case["compensated"], case["paid_on_time"]) == (
        "compensated",
        5000,
        4800,
        True,
    )
    assert case["links"]["trace"]["code_id"] == trace_code and case["links"]["trace"]["known"]
    assert case["links"]["decision"]["record_id"] == penalty
    # a batch: part of the recovery, then more than the rest (the second is refused, naming its place and field)
    part = step(world, HAIBIN, "HB-1", Step.RECOVERED, 3_000)
    rest_too_much = step(world, HAIBIN, "HB-1", Step.RECOVERED, 1_801)
    refused = post(
        world, HAIBIN, signed(world, HAIBIN, "CaseStep", part), signed(world, HAIBIN, "CaseStep", rest_too_much)
    )
    assert refused.status_code == 409 and detail(refused)["field"] == "messages[1].amount"
    rest = step(world, HAIBIN, "HB-1", Step.RECOVERED, 1_800)
    closed = step(world, HAIBIN, "HB-1", Step.CLOSED) | {"at": world.now() + 9}
    batch = [signed(world, HAIBIN, "CaseStep", m) for m in (part, rest, closed)]
    assert post(world, HAIBIN, *batch).status_code == 202
    pending = world.client.get(case_url, headers=world.headers(REGULATOR)).json()["timeline"]
    assert [(s["step"], s["status"]) for s in pending[2:]] == [("recovered", "accepted")] * 2 + [("closed", "accepted")]
    world.settle()
    case = world.client.get(case_url, headers=world.headers(REGULATOR)).json()
    assert (case["state"], case["recovered"], case["unrecovered"]) == ("closed", 4800, 0)
    assert [s["status"] for s in case["timeline"]] == ["confirmed"] * 5
    after = world.client.get(f"/v1/protection/platforms/{HAIBIN}/summary", headers=world.headers(REGULATOR)).json()
    assert after["cases"]["opened"] == 1
    assert (after["cases"]["recovered_in_full"], after["cases"]["paid_on_time"], after["cases"]["open"]) == (1, 1, 0)
    listed = world.client.get("/v1/protection/cases", headers=world.headers(HAIBIN)).json()["cases"]
    assert [c["case_id"] for c in listed] == [case["case_id"]]  # Haibin sees its own case only, not Qilu's
    everyone = world.client.get("/v1/protection/cases", headers=world.headers(REGULATOR)).json()["cases"]
    assert len(everyone) == 4

    # the index: a rebuild from the chain gives the same rows; a reorg rollback recomputes the case from its steps
    from sqlalchemy import select

    from node_bridge import protection_index
    from node_bridge.rebuild import check

    engine = world.relayer.engine
    assert check(engine, world.w3, world.deployment, world.settings) == []
    recovered_in = case["timeline"][2]["block_number"]
    with engine.connect() as connection, connection.begin() as transaction:
        protection_index.rollback(connection, recovered_in - 1)
        cases = protection_index.CASES
        row = connection.execute(select(cases).where(cases.c.case_id == case["case_id"])).mappings().one()
        assert (row["state"], row["recovered"], row["steps"]) == ("compensated", 0, 2)
        transaction.rollback()


def test_rules_refused_with_the_cause(credit_world: CreditWorld) -> None:
    world = credit_world
    world.settle()

    def refused(caller: str, signer: str, kind: str, message: dict[str, Any], code: int) -> dict[str, Any]:
        answer = post(world, caller, signed(world, signer, kind, message))
        assert answer.status_code == code, answer.text
        return detail(answer)

    # wrong role: a department signing a platform's case step; a logistics firm posting; an unsigned caller
    wrong = refused(HAIBIN, REGULATOR, "CaseStep", step(world, REGULATOR, "HB-9", Step.COMPLAINT, 100), 403)
    assert "needs a PLATFORM signer" in wrong["message"]
    logistics = post(
        world, "jiaodong-express", signed(world, HAIBIN, "CaseStep", step(world, HAIBIN, "X", Step.COMPLAINT, 1))
    )
    assert logistics.status_code == 403 and "needs PLATFORM" in detail(logistics)["message"]
    # a step out of order: nothing to compensate yet
    unknown = refused(HAIBIN, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.COMPENSATED, 100), 409)
    assert (unknown["field"], unknown["contract_error"]) == ("caseId", "UnknownCase")
    opened = post(world, HAIBIN, signed(world, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.COMPLAINT, 100)))
    assert opened.status_code == 202
    world.settle()
    early = refused(HAIBIN, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.RECOVERED, 100), 409)
    assert (early["field"], early["contract_error"]) == ("step", "StepOutOfOrder")
    twice = refused(HAIBIN, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.COMPLAINT, 100), 409)
    assert (twice["field"], twice["contract_error"]) == ("caseId", "CaseExists")
    # another platform continuing the case; the wrong merchant
    other = refused(QILU, QILU, "CaseStep", step(world, QILU, "HB-2", Step.COMPENSATED, 100), 409)
    assert (other["field"], other["contract_error"]) == ("platform", "CasePlatformMismatch")
    merchant = refused(
        HAIBIN, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.COMPENSATED, 100, merchant=TEA), 409
    )
    assert (merchant["field"], merchant["contract_error"]) == ("merchant", "CaseMerchantMismatch")
    # a closing step with an amount, a consumer named in clear text, decisions that are not the merchant's
    closing = refused(HAIBIN, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-2", Step.CLOSED, 5), 422)
    assert closing["field"] == "amount" and "InvalidAmount" in closing["reason"]
    bad_code = signed(world, HAIBIN, "CaseStep", step(world, HAIBIN, "HB-4", Step.COMPLAINT, 100))
    bad_code["message"]["merchant"] = "91370102765432104Z"  # a wrong check character
    answer = post(world, HAIBIN, bad_code)
    assert answer.status_code == 422 and detail(answer)["field"] == "merchant", answer.text
    in_clear = step(world, HAIBIN, "HB-3", Step.COMPLAINT, 100, consumer=b"13905310001".ljust(32, b"\0"))
    assert refused(HAIBIN, HAIBIN, "CaseStep", in_clear, 422)["field"] == "consumer"
    records = world.client.get("/v1/protection/cases", headers=world.headers(REGULATOR)).json()["cases"]
    phones_decision = next(c["decision"] for c in records if c["decision"] and c["merchant"] == hex32(PHONES))
    foreign = step(world, HAIBIN, "HB-2", Step.COMPENSATED, 100, decision=bytes.fromhex(phones_decision[2:]))
    assert "not the merchant" in refused(HAIBIN, HAIBIN, "CaseStep", foreign, 422)["reason"]
    made_up = step(world, HAIBIN, "HB-2", Step.COMPENSATED, 100, decision=Web3.keccak(text="no such record"))
    assert refused(HAIBIN, HAIBIN, "CaseStep", made_up, 422)["field"] == "decision"

    # funds: a fund updated by another platform, a skipped version, a bad currency and period
    first = post(world, HAIBIN, signed(world, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-FUND")))
    assert first.status_code == 202, first.text
    world.settle()
    hijack = fund(world, HAIBIN, "HB-FUND", 2) | {"platform": world.orgs[QILU]}
    mismatch = refused(QILU, QILU, "FundDeclaration", hijack, 409)
    assert (mismatch["field"], mismatch["contract_error"]) == ("platform", "FundPlatformMismatch")
    skipped = refused(HAIBIN, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-FUND", 3), 409)
    assert (skipped["field"], skipped["contract_error"]) == ("version", "FundVersion")
    assert (
        refused(HAIBIN, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-F2", currency="rmb"), 422)["field"]
        == "currency"
    )
    now = world.now()
    period = refused(HAIBIN, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-F2", periodEnd=now - 2 * DAY), 422)
    assert period["field"] == "periodEnd" and "InvalidPeriod" in period["reason"]
    # version 2 while version 2 is pending: FundVersion from the pending one
    update = post(world, HAIBIN, signed(world, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-FUND", 2, amount=7)))
    assert update.status_code == 202
    assert (
        refused(HAIBIN, HAIBIN, "FundDeclaration", fund(world, HAIBIN, "HB-FUND", 2), 409)["contract_error"]
        == "FundVersion"
    )
    world.settle()
    funds = world.client.get("/v1/protection/funds", params={"platform": HAIBIN}).json()["funds"]
    assert [(f["version"], f["amount"]) for f in funds] == [(2, 7)]
    # the chain agrees with what the API refused and accepted: nothing failed in the outbox
    from sqlalchemy import text

    with world.relayer.engine.connect() as connection:
        failed = connection.execute(text("select count(*) from outbox where status = 'failed'")).scalar()
    assert failed == 0


def test_cli_signs_offline_and_the_api_takes_it(
    credit_world: CreditWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from credtrace import cli_protection

    world = credit_world
    world.settle()
    monkeypatch.setattr(cli_protection, "get_settings", lambda: world.settings)
    runner = CliRunner()
    common = ["--key", HAIBIN, "--password", "demo", "--case", "HB-CLI-7", "--merchant", "913702023579135748",
              "--offline"]  # fmt: skip
    files = [tmp_path / "complaint.json", tmp_path / "paid.json", tmp_path / "fund.json"]
    opened = runner.invoke(
        cli_protection.protection_app,
        ["case", "complaint", *common, "--claimed", "6600", "--consumer-ref", "buyer:13905319999",
         "--trace-path", "/01/06901234567892/10/YT2026-11A/21/X", "--due-days", "2", "--out", str(files[0])],
    )  # fmt: skip
    assert opened.exit_code == 0, opened.output
    assert "13905319999" not in files[0].read_text()  # the consumer leaves only as a salted commitment
    paid = runner.invoke(
        cli_protection.protection_app, ["case", "compensate", *common, "--amount", "6600", "--out", str(files[1])]
    )
    assert paid.exit_code == 0, paid.output
    declared = runner.invoke(
        cli_protection.protection_app,
        ["declare-fund", "--key", HAIBIN, "--password", "demo", "--ref", "HB-CPF", "--amount", "200000000",
         "--custodian", "Bank of Weifang (trust)", "--offline", "--out", str(files[2])],
    )  # fmt: skip
    assert declared.exit_code == 0, declared.output
    bodies = [json.loads(f.read_text()) for f in files]
    assert post(world, HAIBIN, *bodies).status_code == 202
    world.settle()
    case = world.client.get(
        f"/v1/protection/cases/{hex32(case_id(world.orgs[HAIBIN], 'HB-CLI-7'))}", headers=world.headers(HAIBIN)
    ).json()
    assert (case["state"], case["compensated"], case["links"]["trace"]["known"]) == ("compensated", 6600, False)
    assert case["due_by"] - case["opened_at"] == 2 * DAY
    funds = world.client.get("/v1/protection/funds", params={"platform": HAIBIN}).json()["funds"]
    assert [(f["amount"], f["custodian"]) for f in funds] == [(200_000_000, "Bank of Weifang (trust)")]
    bad = runner.invoke(
        cli_protection.protection_app, ["case", "recover", *common, "--amount", "1", "--decision", "0x12"]
    )
    assert bad.exit_code == 1 and "--decision" in bad.output, bad.output


def test_cli_submits_and_reads_through_the_api(credit_world: CreditWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's online path (domain from the API, --submit, summary, risks) against the test API."""
    from fastapi.testclient import TestClient

    from credtrace import cli_protection
    from credtrace.client import CredtraceClient

    world = credit_world
    world.settle()

    class Client(CredtraceClient):
        def __init__(self, base_url: str, api_key: str | None = None) -> None:
            super().__init__(base_url, api_key)
            self.http = TestClient(world.client.app, headers=dict(self.http.headers))

    monkeypatch.setattr(cli_protection, "get_settings", lambda: world.settings)
    monkeypatch.setattr(cli_protection, "CredtraceClient", Client)
    runner = CliRunner()
    haibin = world.api_keys[world.member_names[HAIBIN]]
    regulator = world.api_keys[world.member_names[REGULATOR]]
    steps = ["--key", HAIBIN, "--password", "demo", "--case", "HB-W1", "--merchant", "91370802990011226J", "--submit",
             "--api-key", haibin]  # fmt: skip
    ran = [
        runner.invoke(cli_protection.protection_app, ["case", "complaint", *steps, "--claimed", "900"]),
        runner.invoke(cli_protection.protection_app, ["case", "compensate", *steps, "--amount", "900"]),
    ]
    assert [r.exit_code for r in ran] == [0, 0], [r.output for r in ran]
    assert "accepted" in ran[1].output
    too_much = runner.invoke(cli_protection.protection_app, ["case", "recover", *steps, "--amount", "901"])
    assert too_much.exit_code == 1 and "HTTP 409" in too_much.output, too_much.output
    world.settle()
    summary = runner.invoke(cli_protection.protection_app, ["summary", HAIBIN, "--api-key", regulator])
    assert summary.exit_code == 0, summary.output
    assert json.loads(summary.output)["cases"]["compensated_amount"] == 900
    risks = runner.invoke(cli_protection.protection_app, ["risks", "--grace-days", "0", "--api-key", regulator])
    signal = json.loads(risks.output)["merchants"][0]
    assert (signal["merchant_code"], signal["unrecovered_cases"]) == ("91370802990011226J", 3)
    refused = runner.invoke(cli_protection.protection_app, ["risks", "--api-key", haibin])
    assert refused.exit_code == 1 and "HTTP 403" in refused.output
