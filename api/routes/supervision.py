"""Inter-department supervision (C12): case entries, joint-decision signatures, case files, overdue referrals.

Departments (REGULATOR members) submit what they signed; departments on a case and auditors read it. Logic and the
visibility rules are in ``api/supervision.py``; ``docs/supervision.md`` walks through a case.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field
from sqlmodel import Session

from api import signed_writes, supervision
from api.auth import Caller, CallerDep, require_roles
from api.deps import ChainDep, SessionDep
from api.routes import signed
from api.routes.signed import SignedBody
from api.schemas import HEX32
from credtrace.errors import NotFound
from node_bridge import outbox
from node_bridge.consortium import Role
from node_bridge.eip712 import Domain, hex32, to_bytes
from node_bridge.supervision import REGISTRY, Action
from node_bridge.supervision_models import SupervisionJointDecision

router = APIRouter(prefix="/v1/supervision", tags=["supervision"])
Department = Annotated[Caller, Depends(require_roles(Role.REGULATOR))]
Reader = Annotated[Caller, Depends(require_roles(Role.REGULATOR, Role.AUDITOR))]


class SignedEntry(SignedBody):
    """A case entry as signed, and the text its ``noteHash`` is the keccak256 of (kept off chain)."""

    type: Literal["CaseEntry"] = "CaseEntry"
    message: dict[str, Any] = Field(description="the signed CaseEntry; see GET /v1/supervision/eip712")
    text: str | None = Field(None, description="the description or finding whose keccak256 is noteHash")


class SignedEntries(BaseModel):
    entries: list[SignedEntry] = Field(min_length=1, max_length=signed_writes.MAX_BATCH)


class SignedJoint(SignedBody):
    """One department's signature of a joint decision (each named department submits its own)."""

    type: Literal["JointDecision"] = "JointDecision"


class EntryAccepted(signed.Accepted):
    id: str = Field(description="the entry id (EIP-712 digest); for a co-signature, keccak256(decision ‖ department)")
    decision_id: str | None = Field(None, description="the joint decision's id (the digest every department signs)")


class EntriesAccepted(BaseModel):
    accepted: list[EntryAccepted]


@router.post("/entries", status_code=status.HTTP_202_ACCEPTED, response_model=EntryAccepted | EntriesAccepted)
def submit_entries(
    session: SessionDep, chain: ChainDep, _caller: Department, body: SignedEntry | SignedEntries
) -> EntryAccepted | EntriesAccepted:
    """Accept signed case entries (one, or ``{"entries": [...]}``): open, refer, acknowledge, evidence, finding,
    link-decision, close. A step out of order is a 409 naming the contract's error; a text not matching its
    ``noteHash`` a 422 on ``text``. Only departments submit (case texts are not for other members)."""
    items = [body] if isinstance(body, SignedEntry) else body.entries
    noted = [supervision.NotedMessage(i.signed(), i.text) for i in items]
    dom = supervision.domain(chain.deployment())
    accepted = supervision.submit(session, dom, noted, batch=isinstance(body, SignedEntries))
    session.commit()
    answer = [EntryAccepted.of(a) for a in accepted]
    return answer[0] if isinstance(body, SignedEntry) else EntriesAccepted(accepted=answer)


@router.post("/joint-decisions", status_code=status.HTTP_202_ACCEPTED, response_model=EntryAccepted)
def sign_joint_decision(session: SessionDep, chain: ChainDep, _caller: Department, body: SignedJoint) -> EntryAccepted:
    """Accept one named department's signature of a joint decision; the decision is active on chain once every
    named department's signature is recorded. The case must be open and every named department on it."""
    dom = supervision.domain(chain.deployment())
    accepted = supervision.submit(session, dom, [supervision.NotedMessage(body.signed())], batch=False)
    session.commit()
    decision_id = "0x" + dom.digest("JointDecision", REGISTRY.normalise("JointDecision", body.message)).hex()
    return EntryAccepted.of(accepted[0], decision_id=decision_id)


@router.get("/eip712")
def eip712(chain: ChainDep, _caller: CallerDep) -> dict[str, Any]:
    """The typed data departments sign: the SupervisionRegistry's domain, the types and the action numbers."""
    dom = supervision.domain(chain.deployment())
    return signed.eip712(dom, REGISTRY) | {"actions": {a.slug: int(a) for a in Action}}


@router.get("/cases")
def list_cases(
    session: SessionDep,
    chain: ChainDep,
    caller: Reader,
    case_status: Annotated[Literal["open", "closed"] | None, Query(alias="status")] = None,
    subject: Annotated[str | None, Query(description="credit code or 0x subject id")] = None,
    overdue: Annotated[
        bool | None, Query(description="only cases with (true) or without (false) overdue referrals")
    ] = None,
) -> dict[str, Any]:
    """The cases you may see (your department's; every case for an auditor), newest activity last."""
    deployment = chain.deployment()
    dom = supervision.domain(deployment)
    now = supervision.chain_now(session, deployment.chain_id)
    wanted = hex32(supervision.subject_id_of(subject)) if subject else None
    cases = []
    for case in supervision.visible_case_ids(session, caller):
        file = supervision.load_case(session, dom, case)
        if not supervision.may_see(caller, file):
            continue
        view = supervision.summary(supervision.case_view(session, file, now))
        if (case_status and view["status"] != case_status) or (wanted and view["subject"] != wanted):
            continue
        if overdue is not None and view["overdue"] != overdue:
            continue
        cases.append(view)
    return {"as_of": now, "cases": cases}


@router.get("/cases/{case_id}")
def get_case(
    session: SessionDep, chain: ChainDep, caller: Reader, case_id: Annotated[str, Path(pattern=HEX32)]
) -> dict[str, Any]:
    """A case's shared timeline: entries with their texts, referrals (deadline, acknowledged, late, overdue),
    evidence, findings, linked decisions, joint decisions with who has yet to sign. Departments on the case and
    auditors only: to anyone else it is a 404, as an unknown case is."""
    deployment = chain.deployment()
    file = supervision.visible_case(session, supervision.domain(deployment), caller, to_bytes(case_id, "case_id"))
    return supervision.case_view(session, file, supervision.chain_now(session, deployment.chain_id))


@router.get("/joint-decisions/{decision_id}")
def get_joint_decision(
    session: SessionDep, chain: ChainDep, caller: Reader, decision_id: Annotated[str, Path(pattern=HEX32)]
) -> dict[str, Any]:
    """A joint decision (recorded or with signatures pending): its case, who signed, who has yet to sign."""
    deployment = chain.deployment()
    dom = supervision.domain(deployment)
    key = decision_id.lower()
    row = session.get(SupervisionJointDecision, key)
    case = row.case_id if row is not None else _pending_decision_case(session, dom, key)
    missing = NotFound(f"decision_id: no joint decision {key} that you may see")
    if case is None:
        raise missing
    try:
        file = supervision.visible_case(session, dom, caller, to_bytes(case, "case"))
    except NotFound:
        raise missing from None
    view = supervision.case_view(session, file, supervision.chain_now(session, deployment.chain_id))
    found = next((d for d in view["joint_decisions"] if d["id"] == key), None)
    if found is None:
        raise missing
    return {"case": view["id"], "subject": view["subject"], **found}


def _pending_decision_case(session: Session, dom: Domain, key: str) -> str | None:
    for row in signed_writes.pending(session, ["JointDecision"]):
        if "0x" + dom.digest("JointDecision", REGISTRY.normalise("JointDecision", row["message"])).hex() == key:
            return str(row["target"])
    return None


@router.get("/overdue")
def overdue_referrals(session: SessionDep, chain: ChainDep, caller: Reader) -> dict[str, Any]:
    """Referrals not acknowledged by their deadline, on open cases you may see (the regulators' dashboard)."""
    deployment = chain.deployment()
    dom = supervision.domain(deployment)
    now = supervision.chain_now(session, deployment.chain_id)
    items = []
    for case in supervision.visible_case_ids(session, caller):
        file = supervision.load_case(session, dom, case)
        if not supervision.may_see(caller, file):
            continue
        view = supervision.case_view(session, file, now)
        for r in view["referrals"]:
            if r["overdue"]:
                items.append({"case": view["id"], "subject": view["subject"], "subject_code": view["subject_code"],
                              **r})  # fmt: skip
    items.sort(key=lambda r: r["deadline"])
    return {"as_of": now, "overdue": items}


@router.get("/entries/{entry_id}")
def get_entry_status(session: SessionDep, _caller: Reader, entry_id: Annotated[str, Path(pattern=HEX32)]) -> Any:
    """Where an accepted entry or co-signature is: accepted → submitted → confirmed, or failed with the contract's
    error."""
    entry = outbox.get(session, entry_id)
    if entry is None or entry.contract != supervision.CONTRACT:
        raise NotFound(f"entry_id: nothing with id {entry_id.lower()} was accepted for supervision here")
    return {"id": entry.id, "status": entry.status, "error": entry.error, "block_number": entry.block_number,
            "tx_hash": entry.tx_hash}  # fmt: skip
