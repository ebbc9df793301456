"""Signed checkpoint events: checking the signer's standing and role (after :mod:`api.trace.verify` has checked the
shape and recovered the signer), the custody state machine over the codes an event names, storing it, and reading
events back.

A batch of events costs a fixed number of queries per table, not one per event: the codes, their packed contents,
earlier events, nonces and corrected events are read in bulk (:data:`IN_CHUNK` keys a query), the custody state
machine (:mod:`node_bridge.custody`) runs in memory, and the rows go in with executemany. Code updates are
conditional on the last event the check saw, so two requests racing on one code cannot both move it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlmodel import Session

from api.signers import Signers
from api.trace.proofs import chain_anchor
from api.trace.sql import BATCHES, CODES, EVENT_CODES, EVENTS, IN_CHUNK, LOTS, bulk_insert, db_time, select_in
from api.trace.verify import BadEvent, Verified, Verifier
from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from node_bridge import trace
from node_bridge.consortium import Role
from node_bridge.custody import CodeState, State, StepNotAllowed, transition
from node_bridge.models import utcnow
from node_bridge.projections import chunks
from node_bridge.trace import Step, TraceDomain
from node_bridge.trace_models import TraceEventRow

MAX_EVENTS = 5_000
MAX_DEPTH = 4
"""Levels of packing an event on a pallet reaches (pallet → case → item ...)."""
PROPAGATING = frozenset({Step.SHIP, Step.RECEIVE, Step.SELL, Step.DELIVER, Step.RETURN, Step.RECALL, Step.DESTROY})
"""Steps that reach the codes packed in the codes an event names (EPCIS aggregation)."""
INLINE = Verifier(workers=0)


@dataclass(frozen=True)
class SignedEvent:
    message: Mapping[str, Any]
    signature: str


@dataclass(frozen=True)
class AcceptedEvent:
    id: str
    signer: str
    status: str


@dataclass
class _Event:
    """An event whose signer may sign it: its place in the batch, its step, and what verification made of it."""

    index: int
    step: Step
    verified: Verified

    @property
    def id(self) -> str:
        return self.verified.id

    @property
    def signer(self) -> str:
        return self.verified.signer

    @property
    def actor(self) -> str:
        return self.verified.actor

    @property
    def codes(self) -> list[str]:
        return self.verified.codes

    @property
    def parent(self) -> str | None:
        return self.verified.parent

    @property
    def corrects(self) -> str | None:
        return self.verified.corrects


def _at(prefix: str | None, index: int, exc: Exception) -> Exception:
    """The same error placed in the batch: ``events[3].codes[0]``."""
    if prefix is None:
        return exc
    where = f"{prefix}[{index}]"
    if isinstance(exc, Conflict):
        return Conflict(f"{where}.{exc.field}", exc.error, exc.reason)
    if isinstance(exc, ValidationFailed):
        return ValidationFailed(f"{where}.{exc.field}", exc.reason)
    return type(exc)(f"{where}.{exc}")


def _check_one(domain: TraceDomain, signers: Signers, index: int, one: Verified, latest: int, skew: int) -> _Event:
    """A well-formed event's signer standing, actor, role and time."""
    signer, actor = one.signer, one.actor
    standing = signers.standing(signer)
    if standing is None:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of an active member (or the event was signed for "
            f"another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    organisation, roles = standing
    if organisation != actor:
        raise NotAuthorised(f"actor: the event names {actor} but signer {signer} signs for {organisation}")
    step = Step(one.step)
    needed = trace.STEP_ROLES[step]
    if not roles & needed:
        names = " or ".join(str(r.name) for r in Role if r & needed)
        raise NotAuthorised(f"signature: a {step.slug} event needs a {names} signer; {signer} is not one")
    if one.time > latest:
        raise ValidationFailed("time", f"{one.time} is more than {skew} s ahead of the server's clock")
    return _Event(index, step, one)


@dataclass
class _Code:
    custody: CodeState
    lot_id: str
    producer: str
    signed: bool
    original: str | None  # last_event as stored: the update's condition


_STATES = {s.value: s for s in State}


def _load_codes(session: Session, ids: Sequence[str]) -> dict[str, _Code]:
    """The codes among ``ids`` that exist, with their batch's producer and whether it is signed (a batch holds
    up to 100,000 codes: each batch is read once)."""
    columns = (CODES.c.id, CODES.c.state, CODES.c.holder, CODES.c.parent, CODES.c.last_event, CODES.c.lot_id,
               CODES.c.batch_id)  # fmt: skip
    connection = session.connection()
    rows = select_in(connection, columns, CODES.c.id, list(ids))
    batch_columns = (BATCHES.c.id, BATCHES.c.producer, BATCHES.c.signature)
    batches = {
        bid: (producer, signature is not None)
        for bid, producer, signature in select_in(connection, batch_columns, BATCHES.c.id, sorted({r[6] for r in rows}))
    }
    found: dict[str, _Code] = {}
    for cid, state, holder, parent, last, lot_id, batch_id in rows:
        producer, signed = batches[batch_id]
        found[cid] = _Code(CodeState(_STATES[state], holder, parent, last), lot_id, producer, signed, last)
    return found


def _load_children(session: Session, codes: dict[str, _Code], roots: Iterable[str]) -> dict[str, set[str]]:
    """Packed contents, level by level from ``roots``, loading the codes found into ``codes``."""
    children: dict[str, set[str]] = {}
    level = sorted(set(roots))
    for _ in range(MAX_DEPTH):
        if not level:
            break
        found = select_in(session.connection(), (CODES.c.id, CODES.c.parent), CODES.c.parent, level)
        new = sorted({cid for cid, _ in found} - set(codes))
        codes.update(_load_codes(session, new))
        for cid, parent in found:
            children.setdefault(parent, set()).add(cid)
        level = new
    return children


def accept_events(
    session: Session,
    domain: TraceDomain,
    items: Sequence[SignedEvent],
    *,
    field_prefix: str | None = "events",
    clock_skew: int = 300,
    now: int | None = None,
    verifier: Verifier | None = None,
) -> list[AcceptedEvent]:
    """Check and store signed checkpoint events, all or none; raises on the first bad one naming
    ``<prefix>[i].<field>`` (403 standing or role, 404 unknown code or event, 409 state or nonce, 422 shape).
    ``verifier`` checks shapes and signatures (a pool of processes for big batches); default: this thread."""
    verified = check_events(domain, items, field_prefix=field_prefix, verifier=verifier)
    return accept_checked(session, domain, verified, field_prefix=field_prefix, clock_skew=clock_skew, now=now)


def check_events(
    domain: TraceDomain, items: Sequence[SignedEvent], *, field_prefix: str | None = "events",
    verifier: Verifier | None = None,
) -> list[Verified]:  # fmt: skip
    """The first step of :func:`accept_events`, without the database: each event's shape and signer."""
    name = field_prefix or "body"
    if not items:
        raise ValidationFailed(name, "is empty")
    if len(items) > MAX_EVENTS:
        raise ValidationFailed(name, f"holds {len(items)} events; at most {MAX_EVENTS}")
    try:
        return (verifier or INLINE).verify(domain, [(i.message, i.signature) for i in items])
    except BadEvent as bad:
        raise _at(field_prefix, bad.index, bad.error) from None


def accept_checked(
    session: Session, domain: TraceDomain, verified: Sequence[Verified], *, field_prefix: str | None = "events",
    clock_skew: int = 300, now: int | None = None,
) -> list[AcceptedEvent]:  # fmt: skip
    """The second step of :func:`accept_events`: standing, roles, nonces, custody, and the rows."""
    latest = (int(time.time()) if now is None else now) + clock_skew
    signers = Signers(session)
    checked: list[_Event] = []
    first: dict[str, _Event] = {}
    for index, item in enumerate(verified):
        try:
            one = _check_one(domain, signers, index, item, latest, clock_skew)
        except (ValidationFailed, NotAuthorised) as exc:
            raise _at(field_prefix, index, exc) from None
        checked.append(one)
        first.setdefault(one.id, one)
    earlier = {
        eid: ("anchored" if batch is not None else "accepted")
        for eid, batch in select_in(session.connection(), (EVENTS.c.id, EVENTS.c.batch), EVENTS.c.id, list(first))
    }
    fresh = [e for e in first.values() if e.id not in earlier]
    if fresh:
        _check_nonces(session, fresh, field_prefix)
        _check_corrections(session, fresh, field_prefix)
        changes = _apply_custody(session, fresh, field_prefix)
        _store(session, fresh, changes)
    return [AcceptedEvent(e.id, e.signer, earlier.get(e.id, "accepted")) for e in checked]


def _where(prefix: str | None, index: int, name: str) -> str:
    return name if prefix is None else f"{prefix}[{index}].{name}"


def _check_nonces(session: Session, fresh: list[_Event], prefix: str | None) -> None:
    pairs: dict[tuple[str, str], int] = {}
    for e in fresh:
        pair = (e.actor, e.verified.nonce)
        if pair in pairs:
            raise Conflict(_where(prefix, e.index, "nonce"), "NonceUsed", f"nonce {pair[1]} of {pair[0]} is used twice")
        pairs[pair] = e.index
    by_actor: dict[str, list[str]] = {}
    for actor, nonce in pairs:
        by_actor.setdefault(actor, []).append(nonce)
    for actor, nonces in by_actor.items():  # each query a range of the unique (actor, nonce) index
        for chunk in chunks(nonces, IN_CHUNK):
            used = session.execute(
                select(EVENTS.c.nonce).where(EVENTS.c.actor == actor, EVENTS.c.nonce.in_(chunk)).limit(1)
            ).first()
            if used is not None:
                reason = f"{actor} already used nonce {used[0]} for another event (a replay?)"
                raise Conflict(_where(prefix, pairs[(actor, used[0])], "nonce"), "NonceUsed", reason)


def _check_corrections(session: Session, fresh: list[_Event], prefix: str | None) -> None:
    wanted = [e for e in fresh if e.corrects is not None]
    if not wanted:
        return
    known = {e.id: (e.actor, e.step) for e in fresh}
    targets = sorted({e.corrects for e in wanted if e.corrects is not None} - set(known))
    columns = (EVENTS.c.id, EVENTS.c.actor, EVENTS.c.step)
    for eid, actor, step in select_in(session.connection(), columns, EVENTS.c.id, targets):
        known[eid] = (actor, Step[step.upper()])
    for e in wanted:
        assert e.corrects is not None
        if e.corrects == e.id or e.corrects not in known:
            raise NotFound(f"{_where(prefix, e.index, 'corrects')}: no event {e.corrects} was accepted here")
        actor, _step = known[e.corrects]
        if actor != e.actor:
            raise NotAuthorised(
                f"{_where(prefix, e.index, 'corrects')}: event {e.corrects} is {actor}'s; only its actor may correct it"
            )


@dataclass
class _Changes:
    codes: dict[str, _Code]
    touched: set[str]
    event_codes: list[tuple[str, str, int, str | None]]  # trace_event_code rows
    recalls: dict[str, str]  # lot id -> recall event


def _apply_custody(session: Session, fresh: list[_Event], prefix: str | None) -> _Changes:
    named = {c for e in fresh for c in e.codes} | {e.parent for e in fresh if e.parent}
    codes = _load_codes(session, sorted(named))
    for e in fresh:
        for j, cid in enumerate(e.codes):
            _known(codes, cid, _where(prefix, e.index, f"codes[{j}]"))
        if e.parent is not None:
            _known(codes, e.parent, _where(prefix, e.index, "parent"))
    propagating = [c for e in fresh if e.step in PROPAGATING for c in e.codes]
    children = _load_children(session, codes, propagating) if propagating else {}
    changes = _Changes(codes, set(), [], {})
    corrected_steps = _corrected_steps(session, fresh)
    for e in fresh:
        moved: list[tuple[str, str | None]] = [(c, None) for c in e.codes]
        if e.corrects is not None and corrected_steps.get(e.corrects) == e.step:
            changes.event_codes.extend((c, e.id, e.verified.time, None) for c in e.codes)
            continue  # amends the data of the event it corrects: no code moves
        if e.step in (Step.PACK, Step.UNPACK):
            _check_parent(codes, e, prefix)
        if e.step in PROPAGATING:
            moved += _descendants(children, e.codes)
        for j, (cid, via) in enumerate(moved):
            code = codes[cid]
            if e.step is Step.COMMISSION and code.producer != e.actor:
                raise NotAuthorised(
                    f"{_where(prefix, e.index, f'codes[{j}]')}: code {cid} was issued by {code.producer}; only that "
                    f"producer commissions it"
                )
            try:
                code.custody = transition(code.custody, e.step, e.actor, e.id, e.parent)
            except StepNotAllowed as exc:
                what = f"code {cid}" + (f" (packed in {via})" if via else "")
                field_name = _where(prefix, e.index, f"codes[{j}]" if via is None else "codes")
                raise Conflict(field_name, "InvalidState", f"{what} {exc.reason}") from None
            changes.touched.add(cid)
            changes.event_codes.append((cid, e.id, e.verified.time, via))
            if e.step is Step.RECALL:
                changes.recalls.setdefault(code.lot_id, e.id)
        if e.step is Step.PACK:
            children.setdefault(e.parent or "", set()).update(e.codes)
        elif e.step is Step.UNPACK:
            children.get(e.parent or "", set()).difference_update(e.codes)
    return changes


def _known(codes: dict[str, _Code], cid: str, where: str) -> None:
    code = codes.get(cid)
    if code is None:
        raise NotFound(f"{where}: no code {cid} was issued here")
    if not code.signed:
        raise NotFound(f"{where}: code {cid} is in a code batch its producer has not signed yet")


def _check_parent(codes: dict[str, _Code], e: _Event, prefix: str | None) -> None:
    assert e.parent is not None
    parent = codes[e.parent].custody
    if parent.state in (State.ISSUED, State.DESTROYED):
        raise Conflict(_where(prefix, e.index, "parent"), "InvalidState", f"parent {e.parent} is {parent.state.value}")
    if e.parent in e.codes:
        raise ValidationFailed(_where(prefix, e.index, "parent"), "a code cannot be packed in itself")


def _descendants(children: dict[str, set[str]], roots: Sequence[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    seen = set(roots)
    level = list(roots)
    for _ in range(MAX_DEPTH):
        following = []
        for parent in level:
            for child in sorted(children.get(parent, ())):
                if child not in seen:
                    seen.add(child)
                    out.append((child, parent))
                    following.append(child)
        level = following
    return out


def _corrected_steps(session: Session, fresh: list[_Event]) -> dict[str, Step]:
    targets = sorted({e.corrects for e in fresh if e.corrects is not None})
    if not targets:
        return {}
    steps = {e.id: e.step for e in fresh}
    for eid, step in select_in(session.connection(), (EVENTS.c.id, EVENTS.c.step), EVENTS.c.id, targets):
        steps[eid] = Step[step.upper()]
    return steps


def _store(session: Session, fresh: list[_Event], changes: _Changes) -> None:
    now = utcnow()
    connection = session.connection()
    stamp = db_time(connection, now)
    rows = [
        (v.id, v.actor, v.signer, e.step.slug, v.time, v.location, v.geo, v.disposition, v.parent, v.corrects, v.nonce,
         v.message, v.signature, stamp, None, None)
        for e in fresh
        for v in (e.verified,)
    ]  # fmt: skip
    bulk_insert(connection, EVENTS, rows)
    if changes.event_codes:
        bulk_insert(connection, EVENT_CODES, _unique_event_codes(changes.event_codes))
    if changes.touched:
        params = []
        for cid in changes.touched:
            code = changes.codes[cid]
            c = code.custody
            params.append((c.state.value, c.holder, c.parent, c.last_event, stamp, cid, code.original))
        move = _MOVE_SQLITE if connection.dialect.name == "sqlite" else _MOVE_PG
        result = connection.exec_driver_sql(move, params)  # psycopg pipelines executemany
        if result.rowcount is not None and 0 <= result.rowcount < len(params):
            raise Conflict("events", "Concurrent", "another request moved some of these codes meanwhile; send again")
    if changes.recalls:
        session.execute(
            update(LOTS)
            .where(and_(LOTS.c.id == bindparam("lid"), LOTS.c.recalled_at.is_(None)))
            .values(recalled_at=now, recall_event=bindparam("ev")),
            [{"lid": lot, "ev": ev} for lot, ev in changes.recalls.items()],
        )


def _unique_event_codes(rows: list[tuple[str, str, int, str | None]]) -> list[tuple[str, str, int, str | None]]:
    """(code_id, event_id, time, via) once per code and event."""
    seen: dict[tuple[str, str], tuple[str, str, int, str | None]] = {}
    for row in rows:
        seen.setdefault((row[0], row[1]), row)
    return list(seen.values())


_MOVE_SQLITE = (
    "UPDATE trace_code SET state = ?, holder = ?, parent = ?, last_event = ?, updated_at = ? "
    "WHERE id = ? AND last_event IS ?"
)
"""Move a code if its last event is still the one the check saw (null-safe)."""
_MOVE_PG = (
    "UPDATE trace_code SET state = %s, holder = %s, parent = %s, last_event = %s, updated_at = %s "
    "WHERE id = %s AND last_event IS NOT DISTINCT FROM %s"
)


# reading events


def event_status(row: TraceEventRow, session: Session) -> str:
    """accepted (waiting for a batch) → batched (root sent) → anchored (root indexed from the chain)."""
    if row.batch is None:
        return "accepted"
    return "anchored" if chain_anchor(session, row.batch) is not None else "batched"


def event_codes(session: Session, event_id: str) -> list[str]:
    """The codes an event reached (named, or packed in a named case or pallet)."""
    rows = session.execute(select(EVENT_CODES.c.code_id).where(EVENT_CODES.c.event_id == event_id))
    return sorted(r[0] for r in rows)
