"""Accepting signed credit messages: check what the CreditRegistry will check, then put them in the outbox.

A batch of signed messages (records, revocations, repairs, enforcement receipts) is accepted whole or not at all:
the first message that fails names its position and field (``records[3].signature``). Each accepted message is
kept as signed (``signed_submission``) and queued (``outbox``) in the caller's SQL transaction. The same signed
message submitted again gives the same id and no second row. These checks are a courtesy; the contract checks
every signature, role, nonce and lifecycle rule itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from api.signed_writes import (
    Accepted,
    Queued,
    SignedMessage,
    check_batch_size,
    check_nonces,
    earlier_status,
    positioned,
    queue,
)
from api.signers import Signers
from credtrace import uscc
from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from credtrace.persons import ensure_not_shredded
from node_bridge import credit
from node_bridge.consortium import Role
from node_bridge.credit import Kind, RecordState
from node_bridge.eip712 import recover, to_bytes
from node_bridge.models import CreditRecordRow, SignedSubmission
from node_bridge.outbox import record_hex
from node_bridge.projections import table_of

SUBMISSIONS = table_of(SignedSubmission)
RECORDS = table_of(CreditRecordRow)
ISSUER_FIELD = {"CreditRecord": "issuer", "Revocation": "issuer", "Repair": "issuer", "Enforcement": "platform"}


@dataclass(frozen=True)
class _Checked:
    id: bytes
    type: str
    message: dict[str, Any]
    signature: bytes
    signer: str
    issuer: str
    subject: str | None
    target: str | None
    record: dict[str, Any] | None  # the record a closure closes


def accept(
    session: Session,
    domain: credit.CreditDomain,
    items: Sequence[SignedMessage],
    *,
    strict_org_code: bool = False,
    field_prefix: str | None = "records",
) -> list[Accepted]:
    """Check and queue signed messages; raises on the first bad one, naming ``<prefix>[i].<field>``.

    With ``field_prefix`` None (a single message, not a batch), errors name the field alone.
    """
    check_batch_size(items, field_prefix)
    signers = Signers(session)
    order: list[bytes] = []
    first: dict[bytes, tuple[int, _Checked]] = {}
    for index, item in enumerate(items):
        with positioned(field_prefix, index):
            one = _check(session, domain, signers, item, strict_org_code)
        order.append(one.id)
        first.setdefault(one.id, (index, one))
    earlier = earlier_status(session, list(first))
    fresh = [(index, one) for index, one in first.values() if record_hex(one.id) not in earlier]
    used = [(index, one.issuer, str(one.message["nonce"])) for index, one in fresh]
    check_nonces(session, used, field_prefix, tables=[RECORDS])  # indexed records besides accepted submissions
    queue(session, [_queued(one) for _, one in fresh])
    return [
        Accepted(record_hex(i), first[i][1].type, first[i][1].signer, earlier.get(record_hex(i), "accepted"))
        for i in order
    ]


def _check(
    session: Session, domain: credit.CreditDomain, signers: Signers, item: SignedMessage, strict: bool
) -> _Checked:
    primary = item.type
    if primary not in credit.EIP712_TYPES:
        raise ValidationFailed("type", f"{primary!r} is not one of {', '.join(credit.EIP712_TYPES)}")
    message = credit.normalise(primary, item.message)
    signature = to_bytes(item.signature, "signature")
    digest = domain.digest(primary, message)
    signer = recover(digest, signature)
    standing = signers.standing(signer)
    if standing is None:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of an active member (or the message was signed for "
            f"another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    organisation, roles = standing
    issuer_field = ISSUER_FIELD[primary]
    issuer = "0x" + message[issuer_field].hex()
    if organisation != issuer:
        raise NotAuthorised(f"{issuer_field}: the message names {issuer} but signer {signer} signs for {organisation}")
    subject = target = None
    record = None
    if primary == "CreditRecord":
        credit.check_record(message)
        kind = Kind(message["kind"])
        required = credit.REQUIRED_ROLES[kind]
        if not roles & required:
            names = " or ".join(str(r.name) for r in Role if r & required)
            raise NotAuthorised(f"signature: a {kind.slug} record needs a {names} signer; {signer} is not one")
        subject = _check_subject(session, message["subject"], strict)
    elif primary in ("Revocation", "Repair"):
        record, target = _closed_record(session, message, primary, roles)
        subject = "0x" + record["subject"].hex()
    else:  # Enforcement
        if not roles & Role.PLATFORM:
            raise NotAuthorised(f"signature: an enforcement receipt needs a PLATFORM signer; {signer} is not one")
        target = "0x" + message["recordId"].hex()
        subject = "0x" + message["subject"].hex()
        _check_enforced_record(session, target, subject)
    return _Checked(digest, primary, message, signature, signer, issuer, subject, target, record)


def _check_subject(session: Session, subject: bytes, strict: bool) -> str:
    code = credit.subject_code(subject)
    if code is not None:
        uscc.validate(code, field="subject", strict_org_code=strict)
    else:
        ensure_not_shredded(session, "0x" + subject.hex())  # 410 for a person erased by crypto-shredding
    return "0x" + subject.hex()


def _closed_record(session: Session, message: dict[str, Any], primary: str, roles: int) -> tuple[dict[str, Any], str]:
    """The record a revocation or repair closes, checked for organisation and state."""
    target = "0x" + message["recordId"].hex()
    row = session.get(CreditRecordRow, target)
    if row is not None:
        record = record_message(row)
        state = credit.state_at(record, int(time.time()), row.closed)
    else:
        pending = session.get(SignedSubmission, target)
        if pending is None or pending.type != "CreditRecord":
            raise NotFound(f"recordId: no record {target} is indexed or waiting to be")
        record = credit.normalise("CreditRecord", pending.message)
        state = credit.state_at(record, int(time.time()))
    if record["issuer"] != message["issuer"]:
        raise NotAuthorised(
            f"issuer: record {target} was issued by 0x{record['issuer'].hex()}; only that organisation may close it"
        )
    closers = credit.REQUIRED_ROLES[Kind(record["kind"])] | Role.REGULATOR
    if not roles & closers:
        names = " or ".join(str(r.name) for r in Role if r & closers)
        raise NotAuthorised(f"signature: closing a {Kind(record['kind']).slug} record needs a {names} signer")
    allowed = {RecordState.ACTIVE} if primary == "Repair" else {RecordState.ACTIVE, RecordState.NOTICE}
    if state not in allowed:
        needed = " or ".join(s.name.lower() for s in sorted(allowed))
        raise Conflict("recordId", "RecordNotActive", f"record {target} is {state.name.lower()}, not {needed}")
    pending_closure = session.execute(
        select(SUBMISSIONS.c.id).where(SUBMISSIONS.c.target == target, SUBMISSIONS.c.type.in_(["Revocation", "Repair"]))
    ).first()
    if pending_closure is not None:
        reason = f"record {target} is already being closed by {pending_closure[0]}"
        raise Conflict("recordId", "RecordNotActive", reason)
    return record, target


def _check_enforced_record(session: Session, record_id: str, subject: str) -> None:
    row = session.get(CreditRecordRow, record_id)
    found = row.subject if row is not None else None
    if row is None:
        pending = session.get(SignedSubmission, record_id)
        found = pending.subject if pending is not None and pending.type == "CreditRecord" else None
    if found is None:
        raise NotFound(f"recordId: no record {record_id} is indexed or waiting to be")
    if found != subject:
        raise ValidationFailed("subject", f"record {record_id} concerns {found}, not {subject}")


def record_message(row: CreditRecordRow) -> dict[str, Any]:
    """The signed record message an indexed row holds."""
    return {
        "kind": Kind[row.kind.upper()].value,
        "subject": bytes.fromhex(row.subject[2:]),
        "issuer": bytes.fromhex(row.issuer[2:]),
        "legalBasis": row.legal_basis,
        "tier": credit.Tier[row.tier.upper()].value,
        "measures": row.measures,
        "documentHash": bytes.fromhex(row.document_hash[2:]),
        "effectiveAt": row.effective_at,
        "publicUntil": row.public_until,
        "validUntil": row.valid_until,
        "relation": credit.Relation[row.relation.upper()].value,
        "refersTo": bytes.fromhex(row.refers_to[2:]) if row.refers_to else credit.ZERO32,
        "nonce": int(row.nonce),
    }


def _queued(c: _Checked) -> Queued:
    return Queued(
        record_hex(c.id), c.type, c.issuer, str(c.message["nonce"]), c.subject, c.target, c.signer, c.message,
        c.signature, credit.CONTRACT, credit.FUNCTIONS[c.type],
        credit.calldata(c.type, c.message, c.signature, c.record),
    )  # fmt: skip
