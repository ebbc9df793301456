"""Inter-department supervision (C12) behind the routes: accepting case entries and co-signatures, and case files.

Writes go through :func:`api.signed_writes.accept` with :func:`check`, which applies the contract's rules
(:class:`node_bridge.supervision.CaseState`) to the case as the index holds it plus what was accepted here and not
yet indexed plus the messages before it in the batch, so a step out of order is a 409 naming the contract's error
before it costs gas. A case text (description, finding) comes beside its signed entry; its keccak256 must be the
entry's ``noteHash``, and it is kept in ``supervision_note``, never on chain.

Reads build a :class:`CaseFile`: the case replayed from its entries (recorded, then pending), its referrals with
deadlines, acknowledgements and overdue flags, and its joint decisions with the departments yet to sign.
Visibility: a case is shown to the departments on it (its opener and the departments it was referred to) and to
AUDITOR members; to any other regulator it does not exist (404, the same answer as for an unknown case). Platforms
and other roles are refused every supervision read (403), whatever the case, so no answer tells them a case exists.
"Now", for overdue referrals, is the block time of the index's checkpoint: the chain's clock as far as it is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, or_, select
from sqlmodel import Session

from api.auth import ACTIVE, Caller
from api.signed_writes import (
    NOT_FAILED,
    SUBMISSIONS,
    Accepted,
    Checked,
    Placement,
    SignedMessage,
    accept,
    deployed_domain,
    pending,
)
from credtrace.errors import ChainUnavailable, Conflict, NotFound, ValidationFailed
from node_bridge.consortium import Role
from node_bridge.credit import Kind, Tier, subject_code, subject_id
from node_bridge.deploy import Deployment
from node_bridge.eip712 import Domain, hex32, to_bytes
from node_bridge.models import CreditRecordRow, IndexerCheckpoint, Member, OutboxEntry, utcnow
from node_bridge.projections import table_of
from node_bridge.supervision import (
    CONTRACT,
    MAX_NOTE,
    REGISTRY,
    ZERO32,
    Action,
    CaseState,
    Standing,
    note_hash,
)
from node_bridge.supervision_models import (
    SupervisionEntry,
    SupervisionJointDecision,
    SupervisionJointSignature,
    SupervisionNote,
)

ENTRIES = table_of(SupervisionEntry)
DECISIONS = table_of(SupervisionJointDecision)
SIGNATURES = table_of(SupervisionJointSignature)
NOTES = table_of(SupervisionNote)
MEMBERS = table_of(Member)
READERS = Role.REGULATOR | Role.AUDITOR


def subject_id_of(subject: str) -> bytes:
    """A subject given as a credit code or 0x id, as the chain keys it; 422 on ``subject`` otherwise."""
    try:
        return subject_id(subject.strip())
    except ValidationFailed as exc:
        raise ValidationFailed("subject", exc.reason) from None


def domain(deployment: Deployment) -> Domain:
    """The EIP-712 domain of the deployed SupervisionRegistry."""
    return deployed_domain(deployment, CONTRACT, REGISTRY.domain, missing=ChainUnavailable)


# writes


@dataclass(frozen=True)
class NotedMessage:
    """A signed message and, for a case entry with a ``noteHash``, the text it hashes."""

    signed: SignedMessage
    text: str | None = None


def submit(session: Session, dom: Domain, items: Sequence[NotedMessage], *, batch: bool) -> list[Accepted]:
    """Check and queue case entries and joint-decision signatures; keep the entries' texts. Not committed."""
    prefix = "entries" if batch else None
    texts: dict[str, tuple[str, str]] = {}  # note hash -> (text, case id)
    for index, item in enumerate(items):
        place = f"{prefix}[{index}]." if prefix else ""
        if item.signed.type == "CaseEntry":
            found = _checked_text(session, item, place)
            if found is not None:
                texts[found[0]] = (found[1], found[2])
        elif item.text is not None:
            raise ValidationFailed(f"{place}text", "only a case entry carries a text")
    accepted = accept(session, REGISTRY, dom, [i.signed for i in items], Rules(dom).check, field_prefix=prefix)
    if texts:
        known = set(session.scalars(select(NOTES.c.note_hash).where(NOTES.c.note_hash.in_(list(texts)))))
        fresh = [
            {
                "note_hash": h,
                "case_id": case,
                "text": text,
                "department": _department_of(items, h),
                "created_at": utcnow(),
            }
            for h, (text, case) in texts.items()
            if h not in known
        ]
        if fresh:
            session.execute(insert(NOTES), fresh)
    return accepted


def _department_of(items: Sequence[NotedMessage], digest: str) -> str:
    for item in items:
        if str(item.signed.message.get("noteHash", "")).lower() == digest:
            return str(item.signed.message.get("department", "")).lower()
    return ""


def _checked_text(session: Session, item: NotedMessage, place: str) -> tuple[str, str, str] | None:
    """(note hash, text, case id) of an entry's text, checked against its ``noteHash``; None if it has none."""
    message = item.signed.message
    if not isinstance(message, Mapping) or "noteHash" not in message:
        return None  # the generic checks name what is missing
    try:
        signed_hash = to_bytes(message["noteHash"], "noteHash")
        case = hex32(to_bytes(message.get("caseId", "0x"), "caseId"))
    except ValidationFailed:
        return None
    if signed_hash == ZERO32:
        if item.text is not None:
            raise ValidationFailed(f"{place}text", "the entry signs no noteHash, so it carries no text")
        return None
    if item.text is None:
        if session.get(SupervisionNote, hex32(signed_hash)) is not None:
            return None  # the same entry again: its text is kept already
        raise ValidationFailed(f"{place}text", f"the entry signs noteHash {hex32(signed_hash)}: give its text")
    if len(item.text) > MAX_NOTE:
        raise ValidationFailed(f"{place}text", f"is {len(item.text)} characters; at most {MAX_NOTE}")
    actual = note_hash(item.text)
    if actual != signed_hash:
        raise ValidationFailed(
            f"{place}text", f"its keccak256 is {hex32(actual)}, not the noteHash {hex32(signed_hash)} the entry signs"
        )
    return hex32(signed_hash), item.text, case


class Rules:
    """The state rules of one request's messages (a batch sees its earlier messages through the cached cases)."""

    def __init__(self, dom: Domain) -> None:
        self.domain = dom
        self.cases: dict[bytes, CaseFile] = {}

    def case(self, session: Session, case: bytes) -> CaseFile:
        if case not in self.cases:
            self.cases[case] = load_case(session, self.domain, case)
        return self.cases[case]

    def check(self, session: Session, checked: Checked, _earlier: Sequence[Checked]) -> Placement:
        m = checked.message
        case = self.case(session, m["caseId"])
        subject = hex32(case.state.subject) if case.state.exists else None
        if session.get(OutboxEntry, checked.hex_id) is not None:
            return Placement(subject, hex32(m["caseId"]))  # accepted before: the same id again, nothing new
        if checked.type == "CaseEntry":
            if m["action"] == Action.LINK_DECISION and case.state.exists:
                _check_link(session, case, m["ref"])
            is_department = m["action"] != Action.REFER or _is_department(session, m["counterpart"])
            case.state.apply(checked.id, m, is_department=is_department)
            case.add_pending(checked.id, m, checked.signer)
            return Placement(hex32(case.state.subject), hex32(m["caseId"]))
        _check_kind(m)
        organisation = bytes.fromhex(checked.organisation[2:])
        case.state.check_decision(m, organisation)
        decision_id = self.domain.digest("JointDecision", m)
        decision = case.decision(decision_id, m)
        if organisation in decision.signed:
            raise Conflict("signature", "AlreadySigned", f"{checked.organisation} signed joint decision "
                           f"{hex32(decision_id)} already")  # fmt: skip
        decision.signed[organisation] = "pending"
        return Placement(hex32(case.state.subject), hex32(m["caseId"]))


def _check_kind(m: Mapping[str, Any]) -> None:
    if m["kind"] not in set(Kind):
        raise ValidationFailed("kind", f"{m['kind']} is not a credit record kind (0 to {max(Kind)})")
    if m["tier"] not in set(Tier):
        raise ValidationFailed("tier", f"{m['tier']} is not a tier (0 minor, 1 general, 2 severe)")


def _is_department(session: Session, member: bytes) -> bool:
    row = session.get(Member, hex32(member))
    return row is not None and row.status == ACTIVE and bool(row.roles & Role.REGULATOR)


def _check_link(session: Session, case: CaseFile, ref: bytes) -> None:
    """A linked decision is a credit record on the case's subject, or a joint decision of the case."""
    if ref == ZERO32:
        return  # the contract's MissingReference, raised by the rules
    key = hex32(ref)
    if key in {hex32(d) for d in case.decisions}:
        return
    record = session.get(CreditRecordRow, key)
    subject = record.subject if record is not None else None
    if subject is None:
        row = session.execute(select(SUBMISSIONS.c.subject, SUBMISSIONS.c.type).where(SUBMISSIONS.c.id == key)).first()
        if row is not None and row.type == "CreditRecord":
            subject = row.subject
    if subject is None:
        raise ValidationFailed("ref", f"{key} is neither a credit record nor a joint decision of this case")
    if subject != hex32(case.state.subject):
        raise ValidationFailed("ref", f"record {key} concerns {subject}, not the case's subject")


# case files


@dataclass
class Decision:
    """A joint decision of a case: its message, and per named department "recorded", "pending" (accepted here,
    not yet on chain) or absent."""

    id: bytes
    message: dict[str, Any]
    signed: dict[bytes, str] = field(default_factory=dict)
    active: bool = False
    active_time: int | None = None

    @property
    def departments(self) -> list[bytes]:
        return list(self.message["departments"])


@dataclass
class CaseFile:
    """A case: its state (the contract's rules replayed), its entries in order, and its joint decisions."""

    state: CaseState
    entries: list[dict[str, Any]] = field(default_factory=list)
    decisions: dict[bytes, Decision] = field(default_factory=dict)

    def decision(self, decision_id: bytes, message: Mapping[str, Any]) -> Decision:
        if decision_id not in self.decisions:
            self.decisions[decision_id] = Decision(decision_id, dict(message))
        return self.decisions[decision_id]

    def add_pending(self, entry_id: bytes, m: Mapping[str, Any], signer: str) -> None:
        self.entries.append({"id": entry_id, "message": dict(m), "signer": signer, "status": "pending",
                             "block_time": None, "late": False})  # fmt: skip


def load_case(session: Session, dom: Domain, case: bytes) -> CaseFile:
    """The case as the index holds it, then what was accepted here and is not indexed yet (a pending message the
    chain will refuse, say after a conflicting one landed first, is left out)."""
    state = CaseState(case)
    file = CaseFile(state)
    key = hex32(case)
    rows = session.execute(
        select(ENTRIES).where(ENTRIES.c.case_id == key).order_by(ENTRIES.c.block_number, ENTRIES.c.log_index)
    ).mappings()
    recorded: set[str] = set()
    for row in rows:
        message = _entry_message(row)
        state.apply(to_bytes(row["id"], "id"), message, block_time=row["block_time"])
        recorded.add(row["id"])
        file.entries.append({"id": to_bytes(row["id"], "id"), "message": message, "signer": row["signer"],
                             "status": "recorded", "block_time": row["block_time"], "late": row["late"]})  # fmt: skip
    for decision_row in session.execute(select(DECISIONS).where(DECISIONS.c.case_id == key)).mappings():
        d = file.decision(to_bytes(decision_row["id"], "id"), _decision_message(decision_row))
        d.active, d.active_time = bool(decision_row["active"]), decision_row["active_time"]
        for signature in session.execute(select(SIGNATURES).where(SIGNATURES.c.decision_id == decision_row["id"])):
            d.signed[to_bytes(signature.department, "department")] = "recorded"
    for row in pending(session, ["CaseEntry", "JointDecision"], target=key, status=NOT_FAILED):
        if row["id"] in recorded:
            continue
        message = REGISTRY.normalise(row["type"], row["message"])
        if row["type"] == "CaseEntry":
            entry_id = to_bytes(row["id"], "id")
            try:
                is_department = message["action"] != Action.REFER or _is_department(session, message["counterpart"])
                state.apply(entry_id, message, is_department=is_department)
            except Conflict:
                continue
            file.add_pending(entry_id, message, row["signer"])
        else:
            d = file.decision(dom.digest("JointDecision", message), message)
            d.signed.setdefault(to_bytes(row["issuer"], "issuer"), "pending")
    return file


def _entry_message(row: Any) -> dict[str, Any]:
    b = lambda name: to_bytes(row[name], name)  # noqa: E731
    return {
        "department": b("department"), "caseId": b("case_id"), "action": int(Action[row["action"].upper().replace(
            "-", "_")]), "subject": b("subject"), "counterpart": b("counterpart"), "deadline": row["deadline"],
        "documentHash": b("document_hash"), "noteHash": b("note_hash"), "ref": b("ref"), "at": row["at"],
        "nonce": int(row["nonce"]),
    }  # fmt: skip


def _decision_message(row: Any) -> dict[str, Any]:
    return {
        "caseId": to_bytes(row["case_id"], "caseId"), "subject": to_bytes(row["subject"], "subject"),
        "kind": row["kind"], "tier": row["tier"], "measures": row["measures"],
        "documentHash": to_bytes(row["document_hash"], "documentHash"), "effectiveAt": row["effective_at"],
        "validUntil": row["valid_until"], "departments": [to_bytes(x, "departments") for x in
                                                          row["departments"].split(",") if x],
        "nonce": int(row["nonce"]),
    }  # fmt: skip


# visibility and views


def chain_now(session: Session, chain_id: int) -> int:
    """The chain's clock as the index knows it: the block time of its checkpoint (0 before the first)."""
    checkpoint = session.get(IndexerCheckpoint, chain_id)
    return checkpoint.block_timestamp if checkpoint is not None else 0


def may_see(caller: Caller, file: CaseFile) -> bool:
    if not file.state.exists:
        return False
    if caller.has_any(Role.AUDITOR):
        return True
    return caller.has_any(Role.REGULATOR) and to_bytes(caller.member_id, "member") in file.state.standing


def visible_case(session: Session, dom: Domain, caller: Caller, case: bytes) -> CaseFile:
    """The case file, if ``caller`` may see it; otherwise the same :class:`NotFound` as for an unknown case."""
    file = load_case(session, dom, case)
    if not may_see(caller, file):
        raise NotFound(f"case: no case {hex32(case)} that you may see (departments on a case and auditors see it)")
    return file


def visible_case_ids(session: Session, caller: Caller) -> list[bytes]:
    """Ids of the cases ``caller`` may see: every case for an auditor; for a department, the cases it opened, was
    referred, or wrote in (recorded or accepted here)."""
    recorded = select(ENTRIES.c.case_id).distinct()
    submitted = select(SUBMISSIONS.c.target).where(SUBMISSIONS.c.type == "CaseEntry").distinct()
    if not caller.has_any(Role.AUDITOR):
        me = caller.member_id
        recorded = recorded.where(
            or_(ENTRIES.c.department == me, (ENTRIES.c.action == Action.REFER.slug) & (ENTRIES.c.counterpart == me))
        )
        submitted = submitted.where(SUBMISSIONS.c.issuer == me)
    ids = set(session.scalars(recorded)) | {t for t in session.scalars(submitted) if t}
    return [to_bytes(i, "case") for i in sorted(ids)]


def _names(session: Session, ids: set[bytes]) -> dict[bytes, str]:
    if not ids:
        return {}
    rows = session.execute(select(MEMBERS.c.id, MEMBERS.c.name).where(MEMBERS.c.id.in_([hex32(i) for i in ids])))
    return {to_bytes(i, "member"): str(n) for i, n in rows}


def _texts(session: Session, hashes: set[str]) -> dict[str, str]:
    if not hashes:
        return {}
    rows = session.execute(select(NOTES.c.note_hash, NOTES.c.text).where(NOTES.c.note_hash.in_(list(hashes))))
    return {str(h): str(t) for h, t in rows}


def case_view(session: Session, file: CaseFile, now: int) -> dict[str, Any]:
    """The shared timeline of a case: entries with their texts, referrals with deadlines and overdue flags,
    evidence, findings, linked decisions and joint decisions with the departments yet to sign."""
    state = file.state
    people = set(state.standing) | {d for x in file.decisions.values() for d in x.departments}
    names = _names(session, people)
    texts = _texts(session, {hex32(e["message"]["noteHash"]) for e in file.entries} - {hex32(ZERO32)})

    def who(member: bytes) -> dict[str, str]:
        return {"member": hex32(member), "name": names.get(member, "(unknown member)")}

    timeline = []
    for e in file.entries:
        m = e["message"]
        action = Action(m["action"])
        item: dict[str, Any] = {
            "id": hex32(e["id"]), "action": action.slug, "department": who(m["department"]), "at": m["at"],
            "recorded_at": e["block_time"], "status": e["status"], "signer": e["signer"],
        }  # fmt: skip
        if m["noteHash"] != ZERO32:
            item["note_hash"] = hex32(m["noteHash"])
            item["text"] = texts.get(hex32(m["noteHash"]))
        if action == Action.REFER:
            item.update(to=who(m["counterpart"]), deadline=m["deadline"])
        if action == Action.ACKNOWLEDGE:
            item.update(referral=hex32(m["ref"]), late=e["late"])
        if action == Action.EVIDENCE:
            item["document_hash"] = hex32(m["documentHash"])
        if action == Action.LINK_DECISION:
            item["decision"] = hex32(m["ref"])
        timeline.append(item)
    referrals = []
    closed = state.closed
    for r in state.referrals.values():
        acknowledged = r.acknowledged_by is not None
        overdue = not acknowledged and not closed and now > r.deadline
        ack = next((e for e in file.entries if e["message"]["action"] == Action.ACKNOWLEDGE and
                    e["message"]["ref"] == r.id), None)  # fmt: skip
        late = bool(ack and ack["late"])
        referrals.append({
            "id": hex32(r.id), "by": who(r.by), "to": who(r.to), "referred_at": r.at, "deadline": r.deadline,
            "acknowledged": acknowledged, "acknowledged_at": ack["block_time"] if ack else None, "late": late,
            "overdue": overdue, "overdue_seconds": now - r.deadline if overdue else 0,
        })  # fmt: skip
    joint = []
    for d in file.decisions.values():
        m = d.message
        joint.append({
            "id": hex32(d.id), "kind": Kind(m["kind"]).slug if m["kind"] in set(Kind) else m["kind"],
            "tier": Tier(m["tier"]).name.lower() if m["tier"] in set(Tier) else m["tier"], "measures": m["measures"],
            "document_hash": hex32(m["documentHash"]), "effective_at": m["effectiveAt"],
            "valid_until": m["validUntil"], "active": d.active, "active_since": d.active_time,
            "departments": [who(x) | {"signed": d.signed.get(x, "no")} for x in d.departments],
            "yet_to_sign": [who(x) for x in d.departments if d.signed.get(x) != "recorded"],
        })  # fmt: skip
    opening = next((e for e in file.entries if e["message"]["action"] == Action.OPEN), None)
    return {
        "id": hex32(state.id),
        "subject": hex32(state.subject),
        "subject_code": subject_code(state.subject),
        "opener": who(state.opener),
        "opened_at": opening["message"]["at"] if opening else None,
        "status": "closed" if closed else "open",
        "departments": [who(x) | {"standing": s.name.lower()} for x, s in state.standing.items()],
        "referrals": referrals,
        "overdue": any(r["overdue"] for r in referrals),
        "timeline": timeline,
        "evidence": [t for t in timeline if t["action"] == Action.EVIDENCE.slug],
        "findings": [t for t in timeline if t["action"] == Action.FINDING.slug],
        "decisions": [t["decision"] for t in timeline if t["action"] == Action.LINK_DECISION.slug],
        "joint_decisions": joint,
        "as_of": now,
    }


def summary(view: Mapping[str, Any]) -> dict[str, Any]:
    """A case in a list: who, on what, where it stands."""
    keys = ("id", "subject", "subject_code", "opener", "opened_at", "status", "departments", "overdue")
    out = {k: view[k] for k in keys}
    out["open_referrals"] = sum(1 for r in view["referrals"] if not r["acknowledged"])
    out["pending_joint_decisions"] = sum(1 for d in view["joint_decisions"] if not d["active"])
    out["entries"] = len(view["timeline"])
    return out


def standing_of(file: CaseFile, member: bytes) -> Standing:
    return file.state.standing.get(member, Standing.NONE)
