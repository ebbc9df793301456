"""Consumer protection (C7) behind ``/v1/protection``: accepting platforms' signed funds and case steps, and what
regulators read from them (a platform's summary, merchants' unrecovered cases as risk signals).

Writes go through :func:`api.signed_writes.accept` with :func:`check`, which applies the contract's rules
(:mod:`node_bridge.protection`) to the state the chain will have when the message lands: the index, then the
messages accepted earlier and not indexed yet (not failed), then those earlier in the same batch. A message the
contract would refuse by an order or amount rule is a 409 naming the field and the contract's custom error
(``FundVersion``, ``StepOutOfOrder``, ``RecoveryExceedsCompensation``...); a malformed one a 422. Besides the
contract's rules the API refuses a ``consumer`` that reads as text (personal data where a salted commitment
belongs) and a ``decision`` that is no credit record against the case's merchant.

Figures (see ``docs/protection.md``): a case is *due* once it is compensated or its promised pay-by time has
passed without payment (cases closed without compensation, i.e. rejected or withdrawn, are never due); it is
*paid on time* when compensated at or before ``dueBy``. A case is *unrecovered* while the platform has recovered
less than it paid, closed or not; a merchant with :data:`RISK_MIN_CASES` or more unrecovered cases compensated
more than :data:`RECOVERY_GRACE_DAYS` ago is a risk signal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from api.auth import Caller
from api.chain_view import ChainView
from api.signed_writes import NOT_FAILED, Checked, Placement, deployed_domain, earlier_status, pending
from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from node_bridge.consortium import Role
from node_bridge.credit import subject_code
from node_bridge.eip712 import Domain, hex32
from node_bridge.models import CreditRecordRow, SignedSubmission
from node_bridge.projections import table_of
from node_bridge.protection import (
    CONTRACT,
    REGISTRY,
    ZERO32,
    CaseState,
    FundState,
    RuleBroken,
    Step,
    advance,
    looks_like_text,
    next_fund_version,
)
from node_bridge.protection_models import CaseRow, CaseStepRow, FundVersionRow
from node_bridge.trace_models import TraceCode

RECOVERY_GRACE_DAYS = 30
"""Days after compensating a consumer in which a platform is expected to recover the money from the merchant."""
RISK_MIN_CASES = 2
"""Unrecovered cases (past the grace period) that make a merchant a risk signal."""
SUPERVISORS = Role.REGULATOR | Role.AUDITOR
SHAPE_ERRORS = frozenset({"InvalidPeriod", "InvalidCurrency", "EmptyCustodian", "InvalidAmount", "InvalidStep",
                          "ZeroMerchant"})  # fmt: skip
"""Contract errors about a message's own fields (422); the others are about the state it meets (409)."""
FUNDS = table_of(FundVersionRow)
STEPS = table_of(CaseStepRow)
CASES = table_of(CaseRow)
S = TypeVar("S", FundState, CaseState)


def domain(chain: ChainView) -> Domain:
    """The EIP-712 domain of the deployed ProtectionRegistry."""
    return deployed_domain(chain.deployment(), CONTRACT, REGISTRY.domain)


# writes


def check(session: Session, one: Checked, earlier: Sequence[Checked]) -> Placement:
    """The contract's rules (and the API's own) for one message, over index, pending and earlier messages."""
    if session.get(SignedSubmission, one.hex_id) is not None:  # the same signed message again: same id, no new row
        target = one.message["fundId" if one.type == "FundDeclaration" else "caseId"]
        return Placement(subject=None, target=hex32(target))
    indexed = FUNDS if one.type == "FundDeclaration" else STEPS
    if session.execute(select(indexed.c.id).where(indexed.c.id == one.hex_id)).first() is not None:
        raise Conflict("signature", "AlreadyRecorded", f"message {one.hex_id} is on chain already")
    try:
        if one.type == "FundDeclaration":
            return _check_fund(session, one, earlier)
        return _check_step(session, one, earlier)
    except RuleBroken as exc:
        if exc.error in SHAPE_ERRORS:
            raise ValidationFailed(exc.field, f"{exc.reason} ({exc.error})") from None
        raise Conflict(exc.field, exc.error, exc.reason) from None


def _replayed(
    session: Session,
    one: Checked,
    earlier: Sequence[Checked],
    key: str,
    indexed: Any,
    state: S,
    step: Callable[[S, Mapping[str, Any]], S],
) -> S:
    """``state`` (as indexed) after the messages that reach the chain before ``one`` and ``one`` itself: those of its
    type filed under the same ``key`` (fund or case id) accepted here and neither indexed nor failed (oldest first),
    then those earlier in the batch. ``step`` raises :class:`RuleBroken` as the contract would revert; an earlier
    message that breaks a rule was accepted when the state was otherwise, and the chain will refuse it as it refuses
    ``one``: it is passed over."""
    target = hex32(one.message[key])
    rows = pending(session, [one.type], target=target, status=NOT_FAILED)
    ids = [r["id"] for r in rows]
    done = set(session.execute(select(indexed.c.id).where(indexed.c.id.in_(ids))).scalars()) if ids else set()
    before = [REGISTRY.normalise(one.type, r["message"]) for r in rows if r["id"] not in done]
    before += [e.message for e in earlier if e.type == one.type and hex32(e.message[key]) == target]
    for message in before:
        try:
            state = step(state, message)
        except RuleBroken:
            continue
    return step(state, one.message)


def fund_state(session: Session, fund_id: str) -> FundState:
    """A fund's platform and version as indexed."""
    row = session.execute(
        select(FUNDS.c.platform, FUNDS.c.version).where(FUNDS.c.fund_id == fund_id).order_by(FUNDS.c.version.desc())
    ).first()
    return FundState(bytes.fromhex(row.platform[2:]), row.version) if row else FundState()


def _check_fund(session: Session, one: Checked, earlier: Sequence[Checked]) -> Placement:
    fund_id = hex32(one.message["fundId"])
    _replayed(session, one, earlier, "fundId", FUNDS, fund_state(session, fund_id), next_fund_version)
    return Placement(subject=hex32(one.message["platform"]), target=fund_id)


def case_state(session: Session, case_id: str) -> CaseState:
    """A case as indexed, in the contract's terms."""
    row = session.get(CaseRow, case_id)
    if row is None:
        return CaseState()
    return CaseState(
        bytes.fromhex(row.platform[2:]), bytes.fromhex(row.merchant[2:]), Step[row.state.upper()], row.compensated,
        row.recovered, row.last_at,
    )  # fmt: skip


def _check_step(session: Session, one: Checked, earlier: Sequence[Checked]) -> Placement:
    message = one.message
    case_id = hex32(message["caseId"])
    if message["consumer"] != ZERO32 and looks_like_text(message["consumer"]):
        raise ValidationFailed(
            "consumer", "reads as text: name the consumer by a salted commitment (keccak256(salt ‖ your reference)) "
            "or zero; no consumer's personal data may leave the platform",
        )  # fmt: skip
    _replayed(session, one, earlier, "caseId", STEPS, case_state(session, case_id), advance)
    if message["decision"] != ZERO32:
        _check_decision(session, hex32(message["decision"]), hex32(message["merchant"]))
    return Placement(subject=hex32(message["merchant"]), target=case_id)


def _check_decision(session: Session, decision: str, merchant: str) -> None:
    """The decision must be a credit record (indexed, or accepted here) whose subject is the case's merchant."""
    row = session.get(CreditRecordRow, decision)
    subject = row.subject if row is not None else None
    if row is None:
        submitted = session.get(SignedSubmission, decision)
        if submitted is None or submitted.type != "CreditRecord":
            raise ValidationFailed("decision", f"{decision} is no credit record accepted or indexed here")
        subject = submitted.subject
    if subject != merchant:
        raise ValidationFailed("decision", f"credit record {decision} concerns {subject}, not the merchant {merchant}")


# reads


def may_see_all(caller: Caller) -> bool:
    return caller.has_any(SUPERVISORS)


def require_platform_or_supervisor(caller: Caller, platform: str) -> None:
    """Regulators and auditors see every platform; a platform sees only itself."""
    if may_see_all(caller) or caller.member_id == platform:
        return
    raise NotAuthorised(
        f"Authorization: member {caller.name} may not see platform {platform}'s cases; "
        "only that platform, regulators and auditors may"
    )


def fund_json(row: Any) -> dict[str, Any]:
    return {
        "fund_id": row.fund_id, "platform": row.platform, "version": row.version, "amount": row.amount,
        "currency": row.currency, "custodian": row.custodian, "period_start": row.period_start,
        "period_end": row.period_end, "declaration_id": row.id, "signer": row.signer,
        "block_number": row.block_number, "block_time": row.block_time, "tx_hash": row.tx_hash,
    }  # fmt: skip


def funds(session: Session, platform: str | None = None) -> list[dict[str, Any]]:
    """Every fund at its current version (of one platform if given)."""
    latest = select(FUNDS.c.fund_id, func.max(FUNDS.c.version).label("version")).group_by(FUNDS.c.fund_id)
    if platform is not None:
        latest = latest.where(FUNDS.c.platform == platform)
    current = latest.subquery()
    query = (
        select(FUNDS)
        .join(current, and_(FUNDS.c.fund_id == current.c.fund_id, FUNDS.c.version == current.c.version))
        .order_by(FUNDS.c.platform, FUNDS.c.block_number, FUNDS.c.fund_id)
    )
    return [fund_json(row) for row in session.execute(query)]


def fund_history(session: Session, fund_id: str) -> dict[str, Any]:
    """A fund's current version and every version before it."""
    rows = session.execute(select(FUNDS).where(FUNDS.c.fund_id == fund_id).order_by(FUNDS.c.version.desc())).all()
    if not rows:
        raise NotFound(f"no fund {fund_id} is indexed")
    return fund_json(rows[0]) | {"history": [fund_json(r) for r in rows]}


def case_json(row: Any) -> dict[str, Any]:
    return {
        "case_id": row.case_id, "platform": row.platform, "merchant": row.merchant,
        "merchant_code": row.merchant_code, "consumer": row.consumer, "state": row.state, "claimed": row.claimed,
        "compensated": row.compensated, "recovered": row.recovered, "unrecovered": row.compensated - row.recovered,
        "due_by": row.due_by, "opened_at": row.opened_at, "paid_at": row.paid_at,
        "paid_on_time": None if row.paid_at is None else row.paid_at <= row.due_by,
        "recovered_at": row.recovered_at, "closed_at": row.closed_at, "trace_code": row.trace_code,
        "decision": row.decision, "steps": row.steps,
    }  # fmt: skip


def step_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "step": row.step, "amount": row.amount, "at": row.at, "due_by": row.due_by,
        "trace_code": row.trace_code, "decision": row.decision, "signer": row.signer, "status": "confirmed",
        "block_number": row.block_number, "block_time": row.block_time, "tx_hash": row.tx_hash,
    }  # fmt: skip


def case_detail(session: Session, case_id: str, caller: Caller) -> dict[str, Any]:
    """A case, its timeline (indexed steps, then those accepted and on their way) and its links."""
    row = session.get(CaseRow, case_id)
    waiting = pending(session, ["CaseStep"], target=case_id)
    if row is None and not waiting:
        raise NotFound(f"no case {case_id} is indexed or accepted here")
    platform = row.platform if row is not None else waiting[0]["issuer"]
    require_platform_or_supervisor(caller, platform)
    steps = session.execute(
        select(STEPS).where(STEPS.c.case_id == case_id).order_by(STEPS.c.block_number, STEPS.c.log_index)
    ).all()
    indexed = {s.id for s in steps}
    status = earlier_status(session, [bytes.fromhex(w["id"][2:]) for w in waiting])
    timeline = [step_json(s) for s in steps]
    for w in waiting:
        if w["id"] in indexed:
            continue
        m = w["message"]
        timeline.append({
            "id": w["id"], "step": Step(int(m["step"])).name.lower(), "amount": int(m["amount"]), "at": int(m["at"]),
            "due_by": int(m["dueBy"]), "trace_code": m["traceCode"], "decision": m["decision"], "signer": w["signer"],
            "status": status.get(w["id"], "accepted"), "block_number": None, "block_time": None, "tx_hash": None,
        })  # fmt: skip
    view: dict[str, Any] = case_json(row) if row is not None else {"case_id": case_id, "platform": platform}
    view["timeline"] = timeline
    view["links"] = _links(session, row)
    return view


def _links(session: Session, row: CaseRow | None) -> dict[str, Any]:
    links: dict[str, Any] = {"trace": None, "decision": None}
    if row is None:
        return links
    if row.trace_code:
        code = session.get(TraceCode, row.trace_code)
        links["trace"] = {"code_id": row.trace_code, "known": code is not None}
        if code is not None:
            links["trace"] |= {"path": code.path, "state": code.state, "scan": "/t" + code.path}
    if row.decision:
        record = session.get(CreditRecordRow, row.decision)
        links["decision"] = {"record_id": row.decision, "known": record is not None}
        if record is not None:
            links["decision"] |= {"kind": record.kind, "issuer": record.issuer, "legal_basis": record.legal_basis,
                                  "closed": record.closed}  # fmt: skip
    return links


def cases(
    session: Session,
    caller: Caller,
    *,
    platform: str | None,
    merchant: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Cases, newest first; a platform sees only its own."""
    if not may_see_all(caller):
        if platform is not None and platform != caller.member_id:
            require_platform_or_supervisor(caller, platform)
        platform = caller.member_id
    query = select(CASES).order_by(CASES.c.opened_block.desc(), CASES.c.case_id).limit(limit).offset(offset)
    if platform is not None:
        query = query.where(CASES.c.platform == platform)
    if merchant is not None:
        query = query.where(CASES.c.merchant == merchant)
    if state is not None:
        query = query.where(CASES.c.state == state)
    return [case_json(r) for r in session.execute(query)]


def summary(session: Session, platform: str, now: int) -> dict[str, Any]:
    """What a regulator sees of a platform: its fund, its cases, how many were paid on time and recovered."""
    declared = funds(session, platform)
    in_effect = [f for f in declared if f["period_start"] <= now < f["period_end"]]
    by_currency: dict[str, dict[str, Any]] = {}
    for fund in in_effect:
        entry = by_currency.setdefault(fund["currency"], {"currency": fund["currency"], "amount": 0, "funds": 0})
        entry["amount"] += fund["amount"]
        entry["funds"] += 1
    compensated = CASES.c.compensated > 0
    on_time = and_(compensated, CASES.c.paid_at <= CASES.c.due_by)
    overdue_unpaid = and_(CASES.c.state == "complaint", CASES.c.due_by < now)
    in_full = and_(compensated, CASES.c.recovered == CASES.c.compensated)

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            func.count().label("opened"),
            count(CASES.c.state != "closed").label("open"),
            count(compensated).label("compensated"),
            func.coalesce(func.sum(CASES.c.compensated), 0).label("compensated_amount"),
            count(on_time).label("on_time"),
            count(overdue_unpaid).label("overdue_unpaid"),
            count(in_full).label("recovered_in_full"),
            func.coalesce(func.sum(CASES.c.recovered), 0).label("recovered_amount"),
            func.coalesce(func.sum(CASES.c.claimed), 0).label("claimed_amount"),
        ).where(CASES.c.platform == platform)
    ).one()
    due = int(row.compensated) + int(row.overdue_unpaid)
    return {
        "platform": platform, "at": now,
        "fund": {"in_effect": list(by_currency.values()), "funds_declared": len(declared)},
        "cases": {
            "opened": int(row.opened), "open": int(row.open), "claimed_amount": int(row.claimed_amount),
            "compensated": int(row.compensated), "compensated_amount": int(row.compensated_amount),
            "due": due, "paid_on_time": int(row.on_time), "overdue_unpaid": int(row.overdue_unpaid),
            "paid_on_time_ratio": round(int(row.on_time) / due, 4) if due else None,
            "recovered_in_full": int(row.recovered_in_full), "recovered_amount": int(row.recovered_amount),
            "unrecovered_amount": int(row.compensated_amount) - int(row.recovered_amount),
        },
    }  # fmt: skip


def risks(session: Session, now: int, grace_days: int, min_cases: int = RISK_MIN_CASES) -> list[dict[str, Any]]:
    """Merchants with ``min_cases`` or more cases compensated over ``grace_days`` ago and not fully recovered."""
    unrecovered = and_(
        CASES.c.compensated > 0, CASES.c.recovered < CASES.c.compensated, CASES.c.paid_at <= now - grace_days * 86400
    )
    merchants = session.execute(
        select(CASES.c.merchant, func.count().label("n"), func.sum(CASES.c.compensated - CASES.c.recovered))
        .where(unrecovered)
        .group_by(CASES.c.merchant)
        .having(func.count() >= min_cases)
        .order_by(func.count().desc(), CASES.c.merchant)
    ).all()
    if not merchants:
        return []
    evidence: dict[str, list[dict[str, Any]]] = {}
    rows = session.execute(
        select(CASES).where(unrecovered, CASES.c.merchant.in_([m[0] for m in merchants])).order_by(CASES.c.paid_at)
    )
    for row in rows:
        evidence.setdefault(row.merchant, []).append(case_json(row))
    return [
        {
            "merchant": merchant,
            "merchant_code": subject_code(bytes.fromhex(merchant[2:])),
            "unrecovered_cases": n,
            "unrecovered_amount": int(amount),
            "platforms": sorted({c["platform"] for c in evidence[merchant]}),
            "signal": f"{n} advance compensations not recovered from the merchant after {grace_days} days",
            "cases": evidence[merchant],
        }
        for merchant, n, amount in merchants
    ]
