"""Online payment management (C11) behind ``api/routes/payments.py``: accepting bindings and signals, reading the index.

Writes go through :func:`api.signed_writes.accept` with :func:`check`, which holds what the PaymentRegistry would
refuse besides the signature and role: a zero account hash, a (subject, account) pair already bound
(``BindingExists``), a month that is not YYYYMM (``InvalidPeriod``), a rate above 10,000 basis points
(``InvalidRate``), a second signal of one member for one merchant and month (``SignalExists``), an unbinding of a
pair not bound (``NotBound``) or bound by another member (``NotBinder``), a relation declared twice
(``RelationExists``) — in the index, among accepted messages still on their way to the chain, and earlier in the
same batch.

Reads: the alerts of :mod:`node_bridge.payment_index` with their evidence (the bindings and credit records that prove
them, expanded), and a merchant's payment picture. Account hashes are shown to PAYMENT, REGULATOR and AUDITOR members
only: they are not personal data (the pepper keys them), but nobody else needs them to follow a merchant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field
from sqlalchemy import RowMapping, or_, select
from sqlmodel import Session

from api.chain_view import ChainView
from api.signed_writes import ON_ITS_WAY, Accepted, Checked, Placement, SignedMessage, accept, deployed_domain, pending
from credtrace.errors import ChainUnavailable, Conflict, NotAuthorised, ValidationFailed
from node_bridge.consortium import Role
from node_bridge.credit import subject_code, subject_id
from node_bridge.credit_index import RECORDS
from node_bridge.eip712 import Domain, hex32
from node_bridge.models import Member
from node_bridge.payment_index import ALERT_KINDS, ALERTS, BINDINGS, BLACKLIST_REAPPEARANCE, RELATIONS, SIGNALS
from node_bridge.payments import (
    BINDING,
    CONTRACT,
    REGISTRY,
    RELATION,
    SIGNAL,
    UNBINDING,
    check_bps,
    check_month,
    pair_key,
    relation_key,
    signal_key,
)
from node_bridge.projections import chunks, table_of

MEMBERS = table_of(Member)
SEES_ACCOUNTS = Role.PAYMENT | Role.REGULATOR | Role.AUDITOR
"""Who sees account hashes and alerts."""
ACCOUNT_NUMBER_FIELDS = frozenset({"account", "accountNumber", "account_number", "settlementAccount", "iban"})


def domain(chain: ChainView) -> Domain:
    """The EIP-712 domain of the deployed PaymentRegistry."""
    return deployed_domain(
        chain.deployment(), CONTRACT, REGISTRY.domain, missing=ChainUnavailable,
        message="chain {chain_id}'s deployment has no {contract}: run `credtrace deploy`",
    )  # fmt: skip


# writes


def submit(
    session: Session, chain: ChainView, items: Sequence[SignedMessage], field_prefix: str | None
) -> list[Accepted]:
    """Check and queue signed PaymentRegistry messages (not committed: the route commits before it answers); errors
    name ``<field_prefix>[i].<field>``, or the field alone when ``field_prefix`` is None (a single message)."""
    for index, item in enumerate(items):
        if isinstance(item.message, Mapping) and (plain := ACCOUNT_NUMBER_FIELDS & set(item.message)):
            field = sorted(plain)[0]
            raise ValidationFailed(
                f"{field_prefix}[{index}].message.{field}" if field_prefix else f"message.{field}",
                "the API takes only accountHash, the keyed hash of the number: compute it where the number is kept "
                "(`credtrace payments hash-account`); the account number must not leave the payment institution",
            )
    return accept(session, REGISTRY, domain(chain), items, check, field_prefix=field_prefix)


def check(session: Session, checked: Checked, earlier: Sequence[Checked]) -> Placement:
    """The PaymentRegistry's state rules for one message (after signature, standing and role)."""
    m = checked.message
    if checked.type == BINDING.name:
        if m["accountHash"] == bytes(32):
            raise ValidationFailed("accountHash", "must not be zero")
        pair = pair_key(m["subject"], m["accountHash"])
        same = [c for c in earlier if c.type == BINDING.name and c.id != checked.id]
        if any(pair_key(c.message["subject"], c.message["accountHash"]) == pair for c in same):
            raise Conflict("accountHash", "BindingExists", "this account is bound to this subject earlier in the batch")
        indexed = _open_binding(session, m["subject"], m["accountHash"])
        if (indexed is not None and indexed["id"] != checked.hex_id) or _pending(session, BINDING.name, pair, checked):
            raise Conflict("accountHash", "BindingExists", "this account is already bound to this subject")
        return Placement(subject=hex32(m["subject"]), target=pair)
    if checked.type == UNBINDING.name:
        return _check_unbinding(session, checked, earlier)
    if checked.type == RELATION.name:
        return _check_relation(session, checked, earlier)
    check_month(m["month"])
    check_bps(m["refundBps"], "refundBps")
    check_bps(m["chargebackBps"], "chargebackBps")
    slot = signal_key(m["payment"], m["merchant"], m["month"])
    same = [c for c in earlier if c.type == SIGNAL.name and c.id != checked.id]
    if any(signal_key(c.message["payment"], c.message["merchant"], c.message["month"]) == slot for c in same):
        raise Conflict("month", "SignalExists", f"a signal for this merchant and {m['month']} is earlier in the batch")
    filed = session.execute(
        select(SIGNALS.c.id).where(
            SIGNALS.c.payment == hex32(m["payment"]),
            SIGNALS.c.merchant == hex32(m["merchant"]),
            SIGNALS.c.month == m["month"],
        )
    ).scalar()
    if (filed is not None and filed != checked.hex_id) or _pending(session, SIGNAL.name, slot, checked):
        raise Conflict("month", "SignalExists", f"this member already filed one for this merchant and {m['month']}")
    return Placement(subject=hex32(m["merchant"]), target=slot)


def _check_unbinding(session: Session, checked: Checked, earlier: Sequence[Checked]) -> Placement:
    """An unbinding ends the pair's open binding, made by the same member (``NotBound``, ``NotBinder``)."""
    m = checked.message
    pair = pair_key(m["subject"], m["accountHash"])
    if any(
        c.type == UNBINDING.name
        and c.id != checked.id
        and pair_key(c.message["subject"], c.message["accountHash"]) == pair
        for c in earlier
    ) or _pending(session, UNBINDING.name, pair, checked):
        raise Conflict("accountHash", "NotBound", "an unbinding of this account from this subject is already pending")
    binder: str | None = None
    indexed = _open_binding(session, m["subject"], m["accountHash"])
    if indexed is not None:
        binder = indexed["payment"]
    else:
        queued = [
            c
            for c in earlier
            if c.type == BINDING.name and pair_key(c.message["subject"], c.message["accountHash"]) == pair
        ]
        if queued:
            binder = hex32(queued[-1].message["payment"])
        else:
            row = _pending(session, BINDING.name, pair, checked)
            binder = row["issuer"] if row is not None else None
    if binder is None:
        raise Conflict("accountHash", "NotBound", "this account is not bound to this subject")
    if binder != hex32(m["payment"]):
        raise NotAuthorised(f"payment: member {binder} made this binding; only it may end it (NotBinder)")
    return Placement(subject=hex32(m["subject"]), target=pair)


def _check_relation(session: Session, checked: Checked, earlier: Sequence[Checked]) -> Placement:
    """Two different subjects, not declared related before (``InvalidSubject``, ``RelationExists``)."""
    m = checked.message
    if m["subject"] == m["related"]:
        raise ValidationFailed("related", "must be another subject than subject")
    pair = relation_key(m["subject"], m["related"])
    same = [c for c in earlier if c.type == RELATION.name and c.id != checked.id]
    first, second = sorted((hex32(m["subject"]), hex32(m["related"])))
    indexed = session.execute(
        select(RELATIONS.c.id).where(RELATIONS.c.subject_a == first, RELATIONS.c.subject_b == second)
    ).scalar()
    if (
        any(relation_key(c.message["subject"], c.message["related"]) == pair for c in same)
        or (indexed is not None and indexed != checked.hex_id)
        or _pending(session, RELATION.name, pair, checked)
    ):
        raise Conflict("related", "RelationExists", "these two subjects are already declared related")
    return Placement(subject=hex32(m["subject"]), target=pair)


def _open_binding(session: Session, subject: bytes, account: bytes) -> RowMapping | None:
    """The indexed binding of a pair not ended since, if any."""
    query = select(BINDINGS.c.id, BINDINGS.c.payment).where(
        BINDINGS.c.subject == hex32(subject),
        BINDINGS.c.account_hash == hex32(account),
        BINDINGS.c.unbound_by.is_(None),
    )
    return session.execute(query).mappings().first()


def _pending(session: Session, type_name: str, target: str, checked: Checked) -> RowMapping | None:
    """Another accepted message of this type filed under ``target`` and still on its way to the chain (once mined,
    the index tells; if it failed, it never counted)."""
    rows = pending(session, [type_name], target=target, status=ON_ITS_WAY)
    return next((r for r in rows if r["id"] != checked.hex_id), None)


# reads


class BindingView(BaseModel):
    id: str
    payment: str = Field(description="member id of the PAYMENT member that bound it")
    payment_name: str | None
    subject: str
    subject_code: str | None
    account_hash: str | None = Field(description="shown to PAYMENT, REGULATOR and AUDITOR members only")
    bound_at: int
    block_number: int
    tx_hash: str
    unbound_at: int | None = Field(None, description="when the binding was ended, if it was")
    unbound_by: str | None = Field(None, description="id of the AccountUnbinding that ended it")


class RecordEvidence(BaseModel):
    id: str
    kind: str
    subject: str
    subject_code: str | None
    issuer: str
    tier: str
    effective_at: int
    closed: str | None
    block_number: int
    tx_hash: str


class AlertView(BaseModel):
    id: str
    kind: str = Field(description="shared_account | blacklist_reappearance")
    explanation: str
    account_hash: str
    subject: str = Field(description="the subject of the event that raised it")
    subject_code: str | None
    subjects: list[str] = Field(description="every subject involved, the raising one first")
    raised_by: str = Field(description="id of the binding or the blacklist record that raised it")
    block_number: int
    block_time: int
    tx_hash: str
    bindings: list[BindingView] = Field(description="the bindings that prove it")
    records: list[RecordEvidence] = Field(description="the blacklist records that prove it")


class SignalView(BaseModel):
    id: str
    payment: str
    payment_name: str | None
    month: int
    orders: int
    refund_bps: int
    chargeback_bps: int
    block_number: int
    tx_hash: str


class MerchantView(BaseModel):
    subject: str
    subject_code: str | None
    bindings_count: int = Field(description="settlement account bindings on chain, not ended")
    accounts_count: int = Field(description="distinct accounts bound now")
    pending_bindings: int = Field(description="bindings accepted here, not yet on chain")
    bindings: list[BindingView] | None = Field(description="all, ended ones too; PAYMENT, REGULATOR, AUDITOR only")
    signals: list[SignalView] = Field(description="monthly aggregates, by month then member")
    related: list[str] = Field(description="subjects declared one group with it (their shared accounts raise no alert)")
    payment_violations: list[str] = Field(description="ids of PAYMENT_VIOLATION credit records on the subject")
    alerts: list[AlertView] | None = Field(description="PAYMENT, REGULATOR and AUDITOR members only")


def subject_key(value: str, field: str = "subject") -> str:
    """A subject path parameter (credit code or 0x commitment) as the index keys it; errors name ``field``."""
    try:
        return hex32(subject_id(value))
    except ValidationFailed as exc:
        raise ValidationFailed(field, exc.reason) from None


def list_alerts(
    session: Session,
    *,
    kind: str | None = None,
    subject: str | None = None,
    account: str | None = None,
    from_block: int = 0,
    limit: int = 100,
) -> list[AlertView]:
    """Alerts in chain order, filtered; each with its evidence. ``subject`` matches any subject involved."""
    query = select(ALERTS).where(ALERTS.c.block_number >= from_block)
    if kind is not None:
        if kind not in ALERT_KINDS:
            raise ValidationFailed("kind", f"{kind!r} is not one of {', '.join(ALERT_KINDS)}")
        query = query.where(ALERTS.c.kind == kind)
    if account is not None:
        query = query.where(ALERTS.c.account_hash == account)
    if subject is not None:  # every subject of an alert is bound to its account: look through the accounts
        accounts = select(BINDINGS.c.account_hash).where(BINDINGS.c.subject == subject)
        query = query.where(ALERTS.c.account_hash.in_(accounts))
    query = query.order_by(ALERTS.c.block_number, ALERTS.c.log_index)
    if subject is None:
        rows = session.execute(query.limit(limit)).mappings().all()
    else:  # the accounts' alerts from before the subject was bound to them do not involve it
        rows = [r for r in session.execute(query).mappings() if subject in r["subjects"]][:limit]
    return _alert_views(session, rows)


def _alert_views(session: Session, rows: Sequence[RowMapping]) -> list[AlertView]:
    bindings = _bindings_by_id(session, [b for r in rows for b in r["bindings"]], show_accounts=True)
    records = _records_by_id(session, [x for r in rows for x in r["records"]])
    return [
        AlertView(
            id=r["id"], kind=r["kind"], explanation=_explain(r), account_hash=r["account_hash"], subject=r["subject"],
            subject_code=subject_code(bytes.fromhex(r["subject"][2:])), subjects=r["subjects"],
            raised_by=r["raised_by"], block_number=r["block_number"], block_time=r["block_time"],
            tx_hash=r["tx_hash"], bindings=[bindings[b] for b in r["bindings"] if b in bindings],
            records=[records[x] for x in r["records"] if x in records],
        )
        for r in rows
    ]  # fmt: skip


def _explain(row: RowMapping) -> str:
    others = len(row["subjects"]) - 1
    if row["kind"] == BLACKLIST_REAPPEARANCE:
        if row["raised_by"] in row["records"]:
            return (
                f"the subject was blacklisted while its settlement account is also bound to {others} other "
                "subject(s): the dishonest entity may be trading on under another name"
            )
        return (
            f"a settlement account of {others} blacklisted subject(s) was bound to a new subject: the blacklisted "
            "entity may be reappearing under another name"
        )
    return f"this settlement account is bound to {others} other subject(s), each a different real-name identity"


def _names(session: Session, ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(ids))
    names: dict[str, str] = {}
    for chunk in chunks(wanted):
        query = select(MEMBERS.c.id, MEMBERS.c.name).where(MEMBERS.c.id.in_(chunk))
        names.update({member: name for member, name in session.execute(query)})
    return names


def _binding_views(session: Session, rows: Sequence[RowMapping], show_accounts: bool) -> list[BindingView]:
    names = _names(session, (r["payment"] for r in rows))
    return [
        BindingView(
            id=r["id"], payment=r["payment"], payment_name=names.get(r["payment"]), subject=r["subject"],
            subject_code=r["subject_code"], account_hash=r["account_hash"] if show_accounts else None,
            bound_at=r["bound_at"], block_number=r["block_number"], tx_hash=r["tx_hash"], unbound_at=r["unbound_at"],
            unbound_by=r["unbound_by"],
        )
        for r in rows
    ]  # fmt: skip


def _bindings_by_id(session: Session, ids: Sequence[str], show_accounts: bool) -> dict[str, BindingView]:
    rows: list[RowMapping] = []
    for chunk in chunks(sorted(set(ids))):
        rows.extend(session.execute(select(BINDINGS).where(BINDINGS.c.id.in_(chunk))).mappings())
    return {v.id: v for v in _binding_views(session, rows, show_accounts)}


def _records_by_id(session: Session, ids: Sequence[str]) -> dict[str, RecordEvidence]:
    out: dict[str, RecordEvidence] = {}
    for chunk in chunks(sorted(set(ids))):
        for r in session.execute(select(RECORDS).where(RECORDS.c.id.in_(chunk))).mappings():
            out[r["id"]] = RecordEvidence(
                id=r["id"], kind=r["kind"], subject=r["subject"], subject_code=r["subject_code"],
                issuer=r["issuer"], tier=r["tier"], effective_at=r["effective_at"], closed=r["closed"],
                block_number=r["block_number"], tx_hash=r["tx_hash"],
            )  # fmt: skip
    return out


def merchant(session: Session, subject: str, roles: Role) -> MerchantView:
    """A merchant's bindings, signals, payment violations and (for those who may see them) alerts."""
    privileged = bool(roles & SEES_ACCOUNTS)
    order = (BINDINGS.c.block_number, BINDINGS.c.log_index)
    rows = session.execute(select(BINDINGS).where(BINDINGS.c.subject == subject).order_by(*order)).mappings().all()
    waiting = pending(session, [BINDING.name], subject=subject, status=ON_ITS_WAY)
    by_month = (SIGNALS.c.month, SIGNALS.c.payment)
    signal_query = select(SIGNALS).where(SIGNALS.c.merchant == subject).order_by(*by_month)
    signal_rows = session.execute(signal_query).mappings().all()
    names = _names(session, (r["payment"] for r in signal_rows))
    signals = [
        SignalView(
            id=r["id"], payment=r["payment"], payment_name=names.get(r["payment"]), month=r["month"],
            orders=r["orders"], refund_bps=r["refund_bps"], chargeback_bps=r["chargeback_bps"],
            block_number=r["block_number"], tx_hash=r["tx_hash"],
        )
        for r in signal_rows
    ]  # fmt: skip
    pairs = session.execute(
        select(RELATIONS.c.subject_a, RELATIONS.c.subject_b)
        .where(or_(RELATIONS.c.subject_a == subject, RELATIONS.c.subject_b == subject))
        .order_by(RELATIONS.c.block_number, RELATIONS.c.log_index)
    )
    related = list(dict.fromkeys(b if a == subject else a for a, b in pairs))
    violations = session.execute(
        select(RECORDS.c.id)
        .where(RECORDS.c.subject == subject, RECORDS.c.kind == "payment_violation")
        .order_by(RECORDS.c.block_number, RECORDS.c.log_index)
    ).scalars()
    return MerchantView(
        subject=subject,
        subject_code=subject_code(bytes.fromhex(subject[2:])),
        bindings_count=sum(r["unbound_by"] is None for r in rows),
        accounts_count=len({r["account_hash"] for r in rows if r["unbound_by"] is None}),
        pending_bindings=len(waiting),
        bindings=_binding_views(session, rows, show_accounts=True) if privileged else None,
        signals=signals,
        related=related,
        payment_violations=list(violations),
        alerts=list_alerts(session, subject=subject, limit=1000) if privileged else None,
    )
