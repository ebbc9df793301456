"""Inter-department supervision through the API, the relayer, the SupervisionRegistry on anvil and the indexer.

Departments are the demo's three regulators; the demo (seeded by the fixture) holds a closed case with an active
joint decision and a case whose referral is overdue.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from eth_account import Account
from sqlmodel import Session
from typer.testing import CliRunner
from web3 import Web3

from api.app import create_app
from api.auth import create_api_key
from credtrace.cli import app as cli_app
from credtrace.demo import DEMO_PASSWORD
from credtrace.demo_supervision import demo_supervision, seed_supervision
from credtrace.settings import get_settings
from credtrace.system import operator_sender
from node_bridge import credit
from node_bridge.compiler import artifact
from node_bridge.consortium import ConsortiumClient, Role, member_id
from node_bridge.credit import Kind
from node_bridge.eip712 import Domain, to_bytes
from node_bridge.eip712 import to_json as to_json_message
from node_bridge.rebuild import check
from node_bridge.store import session_scope
from node_bridge.supervision import CONTRACT, REGISTRY, ZERO32, Action, case_id, note_hash
from node_bridge.supervision_models import SupervisionJointDecision
from node_bridge.transactions import Sender

from .conftest import CreditWorld, fresh_subject

DAY = 86400
MARKET, CREDIT, COMMERCE, PLATFORM = "market-regulation", "credit-office", "commerce-department", "qilu-mall"


@dataclass
class Desk:
    w: CreditWorld
    _nonces: Iterator[int] = field(default_factory=lambda: itertools.count(int(time.time() * 1000) << 8))
    _cases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def domain(self) -> Domain:
        d = self.w.deployment
        return REGISTRY.domain(d.chain_id, d.contracts[CONTRACT].address)

    def new_case(self) -> bytes:
        return case_id(f"TEST-{time.time_ns()}-{next(self._cases)}")

    def entry(
        self, who: str, case: bytes, action: Action, text: str | None = None, *, signer: str | None = None, **f: Any
    ) -> dict[str, Any]:
        """The JSON body of an entry by ``who``'s department, signed by ``signer``'s key (default ``who``'s)."""
        message = {
            "department": self.w.orgs[who], "caseId": case, "action": int(action), "subject": ZERO32,
            "counterpart": ZERO32, "deadline": 0, "documentHash": ZERO32,
            "noteHash": note_hash(text) if text else ZERO32, "ref": ZERO32, "at": self.w.now(),
            "nonce": next(self._nonces),
        }  # fmt: skip
        message.update(f)
        signature = self.domain.sign(self.w.key(signer or who), "CaseEntry", message)
        body = {"type": "CaseEntry", "message": to_json_message(message), "signature": "0x" + signature.hex()}
        if text:
            body["text"] = text
        return body

    def entry_id(self, body: dict[str, Any]) -> bytes:
        return self.domain.digest("CaseEntry", REGISTRY.normalise("CaseEntry", body["message"]))

    def post(self, caller: str, body: dict[str, Any], path: str = "/v1/supervision/entries") -> Any:
        return self.w.client.post(path, json=body, headers=self.w.headers(caller))

    def ok(self, caller: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.post(caller, body)
        assert response.status_code == 202, response.text
        return dict(response.json())

    def refused(self, caller: str, body: dict[str, Any], status: int, cause: str, path: str | None = None) -> None:
        response = self.post(caller, body, path or "/v1/supervision/entries")
        assert response.status_code == status, response.text
        assert cause in response.text, response.text

    def decision(self, case: bytes, subject: bytes, departments: list[str], **f: Any) -> dict[str, Any]:
        now = self.w.now()
        message = {
            "caseId": case, "subject": subject, "kind": int(Kind.BLACKLIST), "tier": 2, "measures": 0,
            "documentHash": Web3.keccak(text="joint decision"), "effectiveAt": now, "validUntil": now + 365 * DAY,
            "departments": [self.w.orgs[d] for d in departments], "nonce": next(self._nonces),
        }  # fmt: skip
        message.update(f)
        return message

    def cosign(self, signer: str, message: dict[str, Any]) -> dict[str, Any]:
        signature = self.domain.sign(self.w.key(signer), "JointDecision", message)
        return {"type": "JointDecision", "message": to_json_message(message), "signature": "0x" + signature.hex()}

    def case(self, caller: str, case: bytes) -> Any:
        return self.w.client.get(f"/v1/supervision/cases/0x{case.hex()}", headers=self.w.headers(caller))

    def opened(self, subject: bytes, text: str = "case summary") -> bytes:
        case = self.new_case()
        self.ok(MARKET, self.entry(MARKET, case, Action.OPEN, text, subject=subject))
        return case

    def referral(self, case: bytes, by: str, to: str, days: float = 7, **f: Any) -> dict[str, Any]:
        return self.entry(by, case, Action.REFER, counterpart=self.w.orgs[to],
                          deadline=self.w.now() + int(days * DAY), **f)  # fmt: skip


@pytest.fixture
def desk(credit_world: CreditWorld) -> Desk:
    return Desk(credit_world)


def test_the_demo_case_shows_its_whole_timeline_to_the_departments_on_it(desk: Desk) -> None:
    w = desk.w
    w.settle()
    _, demo = demo_supervision()
    assert demo is not None
    joint, overdue = case_id(demo.joint_case.reference), case_id(demo.overdue_case.reference)  # type: ignore[union-attr]
    view = desk.case(CREDIT, joint)
    assert view.status_code == 200, view.text
    case = view.json()
    assert case["status"] == "closed" and case["subject_code"] == "91370702556677885B"
    assert [t["action"] for t in case["timeline"]] == [
        "open", "refer", "acknowledge", "evidence", "finding", "link-decision", "close"
    ]  # fmt: skip
    assert case["findings"][0]["text"] == demo.joint_case.finding
    assert case["evidence"][0]["text"] == demo.joint_case.evidence.description
    assert case["referrals"][0]["acknowledged"] and not case["referrals"][0]["late"]
    [decision] = case["joint_decisions"]
    assert decision["active"] and decision["yet_to_sign"] == [] and case["decisions"] == [decision["id"]]
    assert desk.case(COMMERCE, joint).status_code == 404  # not on that case: for it the case does not exist
    assert desk.case(PLATFORM, joint).status_code == 403  # platforms read no case at all

    dashboard = w.client.get("/v1/supervision/overdue", headers=w.headers(MARKET)).json()
    assert [(o["case"], o["to"]["member"]) for o in dashboard["overdue"]] == [
        ("0x" + overdue.hex(), "0x" + w.orgs[COMMERCE].hex())
    ]
    assert dashboard["overdue"][0]["overdue_seconds"] > 0
    listed = w.client.get("/v1/supervision/cases", params={"overdue": True}, headers=w.headers(COMMERCE)).json()
    assert [c["id"] for c in listed["cases"]] == ["0x" + overdue.hex()]  # referred to it: it sees the case
    assert w.client.get("/v1/supervision/overdue", headers=w.headers(CREDIT)).json()["overdue"] == []
    assert w.client.get("/v1/supervision/cases", headers=w.headers(PLATFORM)).status_code == 403
    assert w.client.get("/v1/supervision/cases").status_code == 401
    again = seed_supervision(w.settings, w.w3, w.deployment, operator_sender(w.settings, w.w3))
    assert again["sent"] == 0  # seeding again sends nothing


def test_the_change_feed_shows_supervision_to_regulators_only(desk: Desk) -> None:
    w = desk.w
    w.settle()
    registry = w.deployment.contract(w.w3, CONTRACT)
    [active] = registry.events.JointDecisionActive().get_logs(from_block=0)  # the demo's joint decision
    feed = w.client.get("/v1/feed", params={"type": "supervision_joint_active"}, headers=w.headers(COMMERCE))
    assert feed.status_code == 200, feed.text
    assert [i["id"] for i in feed.json()["items"]] == ["0x" + bytes(active["args"]["id"]).hex()]
    hidden = w.client.get("/v1/feed", params={"type": "supervision_joint_active"}, headers=w.headers(PLATFORM))
    assert hidden.status_code == 200, hidden.text
    assert hidden.json()["items"] == []  # platforms do not see supervision items, even asked by type


def test_a_referred_case_through_the_api_to_a_joint_decision(desk: Desk) -> None:
    w = desk.w
    subject = credit.subject_id(fresh_subject())
    case = desk.opened(subject, "suspected counterfeit cosmetics")
    refer = desk.referral(case, MARKET, CREDIT)
    desk.ok(MARKET, refer)  # before the OPEN is on chain: the API sees what it accepted
    referral = desk.entry_id(refer)
    # a referral acknowledged by the wrong department
    desk.refused(COMMERCE, desk.entry(COMMERCE, case, Action.ACKNOWLEDGE, ref=referral), 409, "WrongDepartment")
    # the referred department is not on the case until it acknowledges
    desk.refused(CREDIT, desk.entry(CREDIT, case, Action.FINDING, "too early"), 409, "NotOnCase")
    desk.ok(CREDIT, desk.entry(CREDIT, case, Action.ACKNOWLEDGE, ref=referral))
    w.settle()
    followed = w.client.get(f"/v1/supervision/entries/0x{referral.hex()}", headers=w.headers(MARKET))
    assert followed.json()["status"] == "confirmed", followed.text

    evidence = desk.entry(CREDIT, case, Action.EVIDENCE, "test purchase report", documentHash=Web3.keccak(text="pdf"))
    evidence["text"] = "another text"  # the text does not match the signed hash
    desk.refused(CREDIT, evidence, 422, "noteHash")
    evidence["text"] = "test purchase report"
    desk.ok(CREDIT, evidence)
    desk.ok(MARKET, desk.entry(MARKET, case, Action.FINDING, "the goods are counterfeit"))

    decision = desk.decision(case, subject, [MARKET, CREDIT])
    signed = desk.post(MARKET, desk.cosign(MARKET, decision), "/v1/supervision/joint-decisions")
    assert signed.status_code == 202, signed.text
    decision_id = signed.json()["decision_id"]
    assert decision_id == "0x" + desk.domain.digest("JointDecision", decision).hex()
    again = desk.post(MARKET, desk.cosign(MARKET, decision), "/v1/supervision/joint-decisions")
    assert again.status_code == 202 and again.json()["id"] == signed.json()["id"]  # the same signature, once
    w.settle()

    view = desk.case(MARKET, case).json()
    [joint] = view["joint_decisions"]
    assert not joint["active"]  # one signature missing: inactive, and it says whose
    assert [d["name"] for d in joint["yet_to_sign"]] == ["Shandong Provincial Social Credit Office"]
    assert [d["signed"] for d in joint["departments"]] == ["recorded", "no"]
    assert view["findings"][0]["text"] == "the goods are counterfeit"
    assert view["evidence"][0]["text"] == "test purchase report"
    state = w.client.get(f"/v1/supervision/joint-decisions/{decision_id}", headers=w.headers(CREDIT)).json()
    assert state["active"] is False and state["case"] == "0x" + case.hex()

    desk.refused(COMMERCE, desk.cosign(COMMERCE, decision), 403, "does not name", "/v1/supervision/joint-decisions")
    assert desk.post(CREDIT, desk.cosign(CREDIT, decision), "/v1/supervision/joint-decisions").status_code == 202
    w.settle()
    joint = desk.case(CREDIT, case).json()["joint_decisions"][0]
    assert joint["active"] and joint["yet_to_sign"] == []
    registry = w.deployment.contract(w.w3, CONTRACT)
    assert registry.functions.jointDecisionState(bytes.fromhex(decision_id[2:])).call() == [0b11, True]

    desk.ok(MARKET, desk.entry(MARKET, case, Action.LINK_DECISION, ref=bytes.fromhex(decision_id[2:])))
    desk.refused(CREDIT, desk.entry(CREDIT, case, Action.CLOSE), 409, "NotOpener")
    desk.ok(MARKET, desk.entry(MARKET, case, Action.CLOSE, "closed after the joint decision"))
    desk.refused(MARKET, desk.entry(MARKET, case, Action.FINDING, "afterthought"), 409, "CaseClosed")
    w.settle()
    view = desk.case(MARKET, case).json()
    assert view["status"] == "closed" and view["decisions"] == [decision_id]
    assert all(t["status"] == "recorded" for t in view["timeline"])
    assert registry.functions.caseState(case).call() == [subject, w.orgs[MARKET], True]


def test_only_departments_write_and_only_for_themselves(desk: Desk) -> None:
    subject = credit.subject_id(fresh_subject())
    case = desk.new_case()
    opening = desk.entry(MARKET, case, Action.OPEN, subject=subject)
    desk.refused(PLATFORM, opening, 403, "needs REGULATOR")  # a platform's API key may not submit case entries
    desk.refused(MARKET, desk.entry(PLATFORM, case, Action.OPEN, subject=subject), 403, "needs a REGULATOR")
    desk.refused(MARKET, desk.entry(CREDIT, case, Action.OPEN, subject=subject, signer=MARKET), 403, "department")
    desk.ok(MARKET, opening)
    desk.refused(MARKET, desk.referral(case, MARKET, PLATFORM), 409, "NotADepartment")
    assert desk.case(PLATFORM, case).status_code == 403
    assert desk.case(COMMERCE, case).status_code == 404
    assert desk.case(MARKET, case).status_code == 200
    assert desk.w.client.get(f"/v1/supervision/cases/0x{case.hex()}").status_code == 401


def test_steps_out_of_order_are_refused_naming_the_cause(desk: Desk) -> None:
    w = desk.w
    subject = credit.subject_id(fresh_subject())
    desk.refused(MARKET, desk.entry(MARKET, desk.new_case(), Action.FINDING, "x"), 409, "UnknownCase")
    malformed = desk.entry(MARKET, desk.new_case(), Action.OPEN, subject=subject)
    del malformed["message"]["at"]
    desk.refused(MARKET, malformed, 422, '"field":"at"')
    desk.refused(MARKET, {"entries": [desk.entry(MARKET, desk.new_case(), Action.OPEN, subject=subject), malformed]},
                 422, '"field":"entries[1].at"')  # fmt: skip
    forged = desk.entry(MARKET, desk.new_case(), Action.OPEN, subject=subject)
    forged["signature"] = forged["signature"][:-2] + "1f"
    assert desk.post(MARKET, forged).status_code in (403, 422)
    desk.refused(MARKET, desk.entry(MARKET, desk.new_case(), Action.OPEN), 409, "MissingSubject")
    case = desk.opened(subject)
    desk.refused(CREDIT, desk.entry(CREDIT, case, Action.OPEN, subject=subject), 409, "CaseExists")
    desk.refused(COMMERCE, desk.entry(COMMERCE, case, Action.FINDING, "x"), 409, "NotOnCase")
    desk.refused(MARKET, desk.referral(case, MARKET, CREDIT, days=-1), 409, "InvalidDeadline")
    desk.refused(MARKET, desk.entry(MARKET, case, Action.EVIDENCE, "no document"), 409, "MissingDocument")
    desk.refused(MARKET, desk.entry(MARKET, case, Action.FINDING), 409, "MissingNote")
    body = desk.entry(MARKET, case, Action.LINK_DECISION)
    body["text"] = "a text the entry does not sign"
    desk.refused(MARKET, body, 422, "text")
    finding = desk.entry(MARKET, case, Action.FINDING, "needs its text")
    del finding["text"]
    desk.refused(MARKET, finding, 422, "give its text")
    desk.refused(MARKET, desk.entry(MARKET, case, Action.LINK_DECISION, ref=Web3.keccak(text="nothing")), 422, "ref")
    other = w.record(MARKET, Kind.ADMINISTRATIVE_PENALTY, fresh_subject())
    assert w.submit(MARKET, w.signed(MARKET, "CreditRecord", other)).status_code == 202
    other_id = w.domain.digest("CreditRecord", other)
    desk.refused(MARKET, desk.entry(MARKET, case, Action.LINK_DECISION, ref=other_id), 422, "not the case's subject")
    mine = w.record(MARKET, Kind.ADMINISTRATIVE_PENALTY, credit.subject_code(subject) or "")
    assert w.submit(MARKET, w.signed(MARKET, "CreditRecord", mine)).status_code == 202
    desk.ok(MARKET, desk.entry(MARKET, case, Action.LINK_DECISION, ref=w.domain.digest("CreditRecord", mine)))
    lonely = desk.decision(case, subject, [MARKET])
    desk.refused(MARKET, desk.cosign(MARKET, lonely), 409, "DepartmentCount", "/v1/supervision/joint-decisions")
    pair = desk.decision(case, subject, [MARKET, CREDIT])  # the credit office is not on the case
    desk.refused(MARKET, desk.cosign(MARKET, pair), 409, "NotOnCase", "/v1/supervision/joint-decisions")
    w.settle()
    view = desk.case(MARKET, case).json()
    assert [t["action"] for t in view["timeline"]] == ["open", "link-decision"]


def test_an_unacknowledged_referral_turns_overdue_and_a_late_acknowledgement_is_recorded_late(desk: Desk) -> None:
    w = desk.w
    subject = credit.subject_id(fresh_subject())
    case = desk.opened(subject)
    now = w.now()
    refer = desk.entry(MARKET, case, Action.REFER, counterpart=w.orgs[COMMERCE], at=now - 3 * DAY, deadline=now - DAY)
    desk.ok(MARKET, refer)
    w.settle()
    view = desk.case(COMMERCE, case).json()  # referred: it sees the case before it acknowledges
    assert view["overdue"] and view["referrals"][0]["overdue"]
    dashboard = w.client.get("/v1/supervision/overdue", headers=w.headers(COMMERCE)).json()["overdue"]
    assert "0x" + case.hex() in [o["case"] for o in dashboard]
    desk.ok(COMMERCE, desk.entry(COMMERCE, case, Action.ACKNOWLEDGE, ref=desk.entry_id(refer)))
    w.settle()
    referral = desk.case(MARKET, case).json()["referrals"][0]
    assert referral["acknowledged"] and referral["late"] and not referral["overdue"]
    dashboard = w.client.get("/v1/supervision/overdue", headers=w.headers(MARKET)).json()["overdue"]
    assert "0x" + case.hex() not in [o["case"] for o in dashboard]


@pytest.fixture
def served(credit_world: CreditWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API of the credit world served on its port (the CLI talks HTTP), and the CLI's settings pointing at it."""
    settings = credit_world.settings
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.api_port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    monkeypatch.setenv("CREDTRACE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CREDTRACE_API_PORT", str(settings.api_port))
    monkeypatch.setenv("CREDTRACE_ANVIL_PORT", str(settings.anvil_port))
    get_settings.cache_clear()
    yield f"http://127.0.0.1:{settings.api_port}"
    server.should_exit = True
    thread.join(10)
    get_settings.cache_clear()


def test_the_cli_walks_a_case_from_opening_to_an_active_joint_decision(desk: Desk, served: str, tmp_path: Path) -> None:
    w = desk.w
    runner = CliRunner()

    def cli(who: str, *args: str, ok: bool = True) -> str:
        key = w.api_keys[w.member_names[who]]
        result = runner.invoke(cli_app, ["supervision", *args, "--api-key", key, "--api", served])
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    def signing(who: str) -> list[str]:
        return ["--key", who, "--password", DEMO_PASSWORD]

    reference = f"CLI-{time.time_ns()}"
    subject = fresh_subject()
    cli(MARKET, "open", *signing(MARKET), "--case", reference, "--subject", subject, "--summary", "fake reviews")
    credit_office = "113700000045678996"
    cli(MARKET, "refer", *signing(MARKET), "--case", reference, "--to", credit_office, "--days", "3")
    w.settle()
    case = json.loads(cli(MARKET, "show", reference))
    [referral] = case["referrals"]
    assert not referral["acknowledged"] and case["timeline"][0]["text"] == "fake reviews"
    wrong = cli(
        COMMERCE, "acknowledge", *signing(COMMERCE), "--case", reference, "--referral", referral["id"], ok=False
    )
    assert "WrongDepartment" in wrong
    cli(CREDIT, "acknowledge", *signing(CREDIT), "--case", reference, "--referral", referral["id"])
    document = tmp_path / "report.txt"
    document.write_text("test purchase report")
    cli(CREDIT, "evidence", *signing(CREDIT), "--case", reference, "--document", str(document),
        "--description", "three test purchases")  # fmt: skip
    cli(MARKET, "finding", *signing(MARKET), "--case", reference, "--text", "reviews were bought")
    w.settle()
    draft = tmp_path / "decision.json"
    market_code = "11370000004123454M"
    signed = cli(MARKET, "joint-sign", *signing(MARKET), "--case", reference, "--subject", subject,
                 "--with", market_code, "--with", credit_office, "--save", str(draft))  # fmt: skip
    decision_id = next(line.split()[0] for line in signed.splitlines() if " signature " in line)
    w.settle()
    pending = json.loads(cli(CREDIT, "show", reference))["joint_decisions"][0]
    assert not pending["active"] and [d["name"] for d in pending["yet_to_sign"]] == [w.member_names[CREDIT]]
    cli(CREDIT, "joint-sign", *signing(CREDIT), "--message", str(draft))
    w.settle()
    case = json.loads(cli(CREDIT, "show", reference))
    assert case["joint_decisions"][0]["active"] and case["joint_decisions"][0]["id"] in signed
    cli(MARKET, "link-decision", *signing(MARKET), "--case", reference, "--decision", decision_id)
    cli(MARKET, "close", *signing(MARKET), "--case", reference, "--summary", "done")
    w.settle()
    case = json.loads(cli(MARKET, "show", reference))
    assert case["status"] == "closed" and [f["text"] for f in case["findings"]] == ["reviews were bought"]
    assert "9137080299" in cli(MARKET, "overdue")  # the demo's overdue case (Liaocheng Phone Accessories)


def test_the_index_follows_a_reorg_and_equals_a_rebuild_from_the_chain(desk: Desk) -> None:
    w = desk.w
    w.settle()
    address = w.deployment.contracts[CONTRACT].address
    abi = artifact(CONTRACT).abi
    sender = operator_sender(w.settings, w.w3)

    def send(s: Sender, primary: str, body: dict[str, Any]) -> None:
        message = REGISTRY.normalise(primary, body["message"])
        s.transact_raw(address, REGISTRY.calldata(primary, message, to_bytes(body["signature"], "signature")), abi)

    subject = credit.subject_id(fresh_subject())
    case = desk.new_case()
    refer = desk.referral(case, MARKET, CREDIT)
    for body in (desk.entry(MARKET, case, Action.OPEN, subject=subject), refer,
                 desk.entry(CREDIT, case, Action.ACKNOWLEDGE, ref=desk.entry_id(refer))):  # fmt: skip
        send(sender, "CaseEntry", body)
    decision = desk.decision(case, subject, [MARKET, CREDIT])
    send(sender, "JointDecision", desk.cosign(MARKET, decision))
    w.indexer.step()
    snapshot = w.w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    send(sender, "JointDecision", desk.cosign(CREDIT, decision))
    send(sender, "CaseEntry", desk.entry(MARKET, case, Action.FINDING, "lost in the reorg"))
    w.indexer.step()
    view = desk.case(MARKET, case).json()
    assert view["joint_decisions"][0]["active"] and len(view["timeline"]) == 4

    assert w.w3.provider.make_request("evm_revert", [snapshot])["result"] is True  # type: ignore[arg-type]
    again = Sender(w.w3, sender.account, w.settings.gas_price)  # the operator's nonce went back
    send(again, "CaseEntry", desk.entry(MARKET, case, Action.FINDING, "kept after the reorg"))
    for _ in range(3):  # the new chain is longer than the old one
        w.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    w.indexer.step()
    view = desk.case(MARKET, case).json()
    [joint] = view["joint_decisions"]
    assert not joint["active"] and [d["signed"] for d in joint["departments"]] == ["recorded", "no"]
    assert [t["action"] for t in view["timeline"]] == ["open", "refer", "acknowledge", "finding"]
    assert view["findings"][0]["text"] is None  # sent straight to the chain: the API never had its text
    with Session(w.indexer.engine) as session:
        assert session.get(SupervisionJointDecision, joint["id"]).active is False  # type: ignore[union-attr]
    assert check(w.indexer.engine, w.w3, w.deployment, w.settings) == []


def test_an_auditor_reads_every_case_and_writes_none(desk: Desk) -> None:
    w = desk.w
    consortium = ConsortiumClient(w.w3, w.deployment.contract(w.w3, "Consortium"), operator_sender(w.settings, w.w3))
    auditor = Account.create()
    code = fresh_subject()
    consortium.admit(code, "Provincial Audit Office", Role.AUDITOR, [auditor.address], [w.key(MARKET), w.key(CREDIT)])
    subject = credit.subject_id(fresh_subject())
    case = desk.opened(subject, "a case no other department is on")
    w.settle()
    with session_scope(w.indexer.engine) as session:
        api_key, _ = create_api_key(session, "0x" + member_id(code).hex())
    headers = {"Authorization": f"Bearer {api_key}"}
    view = w.client.get(f"/v1/supervision/cases/0x{case.hex()}", headers=headers)
    assert view.status_code == 200 and view.json()["timeline"][0]["text"] == "a case no other department is on"
    listed = w.client.get("/v1/supervision/cases", params={"subject": "0x" + subject.hex()}, headers=headers).json()
    assert [c["id"] for c in listed["cases"]] == ["0x" + case.hex()]
    assert desk.case(COMMERCE, case).status_code == 404  # a department not on it does not see it
    finding = desk.entry(MARKET, case, Action.FINDING, "relayed by an auditor")
    refused = w.client.post("/v1/supervision/entries", json=finding, headers=headers)
    assert refused.status_code == 403 and "needs REGULATOR" in refused.text
