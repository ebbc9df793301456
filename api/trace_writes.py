"""Traceability writes (C5): products, lots, code issuance, signed code batches and signed checkpoint events.

Like :mod:`api.credit_writes`, everything here runs in the caller's SQL transaction and raises on the first bad
input, naming it (``events[3].codes[0]``); the route commits before it answers, so nothing of a rejected request is
stored. A batch of events costs a fixed number of queries per table, not one per event: the codes, their packed
contents, earlier events, nonces and corrected events are read in bulk (:data:`IN_CHUNK` keys a query), the custody
state machine (:mod:`node_bridge.custody`) runs in memory, and the rows go in with executemany. Code updates are
conditional on the last event the check saw, so two requests racing on one code cannot both move it.

Events are not sent to the chain one by one: the anchorer (:mod:`node_bridge.anchorer`) batches them into Merkle
trees whose roots it anchors; :func:`proof` answers an event's RFC 6962 inclusion proof once its root is indexed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Table, and_, bindparam, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel

from api.signers import Signers, signer_standing
from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from node_bridge import outbox, trace
from node_bridge.consortium import Role
from node_bridge.custody import CodeState, State, StepNotAllowed, transition
from node_bridge.eip712 import keccak, recover, to_bytes, to_int
from node_bridge.merkle import MerkleTree
from node_bridge.models import OutboxEntry, utcnow
from node_bridge.projections import table_of
from node_bridge.trace import ZERO32, Disposition, Step, TraceDomain
from node_bridge.trace_models import AnchorBatch, CodeBatch, Lot, Product, TraceCode, TraceEventCode, TraceEventRow

CODES = table_of(TraceCode)
BATCHES = table_of(CodeBatch)
EVENTS = table_of(TraceEventRow)
EVENT_CODES = table_of(TraceEventCode)
LOTS = table_of(Lot)
ANCHORS = table_of(AnchorBatch)
OUTBOX = table_of(OutboxEntry)
MAX_CODES = 100_000
MAX_EVENTS = 5_000
MAX_TEXT = 200
IN_CHUNK = 500
COPY_FROM = 2000
"""Rows from which a PostgreSQL bulk insert goes through COPY (several times executemany's speed)."""
MAX_DEPTH = 4
"""Levels of packing an event on a pallet reaches (pallet → case → item ...)."""
PROPAGATING = frozenset({Step.SHIP, Step.RECEIVE, Step.SELL, Step.DELIVER, Step.RETURN, Step.RECALL, Step.DESTROY})
"""Steps that reach the codes packed in the codes an event names (EPCIS aggregation)."""
EVENT_FIELDS = {f["name"]: f["type"] for f in trace.EIP712_TYPES["TraceEvent"]}
OPTIONAL_EVENT_FIELDS = {"parent": ZERO32, "geo": "", "corrects": ZERO32}


def hex32(value: bytes) -> str:
    return "0x" + value.hex()


def _in_chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# products and lots


def register_product(session: Session, producer: str, gtin: str, name: str, description: str = "") -> Product:
    """A new product of ``producer`` (a member id); 409 if the GTIN is registered already."""
    gtin14 = trace.normalise_gtin(gtin)
    if not name.strip():
        raise ValidationFailed("name", "must name the product")
    if len(name) > MAX_TEXT:
        raise ValidationFailed("name", f"is {len(name)} characters; at most {MAX_TEXT}")
    existing = session.get(Product, gtin14)
    if existing is not None:
        owner = "you" if existing.producer == producer else existing.producer
        raise Conflict("gtin", "ProductExists", f"GTIN {gtin14} is registered already (by {owner})")
    product = Product(gtin=gtin14, producer=producer, name=name.strip(), description=description)
    session.add(product)
    session.flush()
    return product


def own_product(session: Session, producer: str, gtin: str, field_name: str = "gtin") -> Product:
    """The product ``gtin`` of ``producer``; 404 if unknown, 403 if another producer's."""
    gtin14 = trace.normalise_gtin(gtin, field_name)
    product = session.get(Product, gtin14)
    if product is None:
        raise NotFound(f"{field_name}: no product {gtin14} is registered (POST /v1/trace/products)")
    if product.producer != producer:
        raise NotAuthorised(f"{field_name}: product {gtin14} belongs to producer {product.producer}, not you")
    return product


def _date(value: str | None, field_name: str) -> str | None:
    if value is None:
        return None
    try:
        time.strptime(value, "%Y-%m-%d")
    except (TypeError, ValueError):
        raise ValidationFailed(field_name, "must be an ISO date YYYY-MM-DD") from None
    return value


def register_lot(
    session: Session, producer: str, gtin: str, lot: str, produced_on: str | None = None, best_before: str | None = None
) -> Lot:
    """A new lot of one of ``producer``'s products; 409 if it exists."""
    product = own_product(session, producer, gtin)
    lot = trace.check_lot(lot)
    lot_id = f"{product.gtin}/{lot}"
    if session.get(Lot, lot_id) is not None:
        raise Conflict("lot", "LotExists", f"lot {lot} of {product.gtin} is registered already")
    row = Lot(
        id=lot_id,
        gtin=product.gtin,
        lot=lot,
        producer=producer,
        produced_on=_date(produced_on, "produced_on"),
        best_before=_date(best_before, "best_before"),
    )
    session.add(row)
    session.flush()
    return row


def own_lot(session: Session, producer: str, gtin: str, lot: str) -> Lot:
    product = own_product(session, producer, gtin)
    row = session.get(Lot, f"{product.gtin}/{trace.check_lot(lot)}")
    if row is None:
        raise NotFound(f"lot: no lot {lot} of {product.gtin} is registered (POST /v1/trace/lots)")
    return row


# codes and code batches

_SERIAL_TABLE = bytes(ord(trace.SERIAL_ALPHABET[i % 32]) for i in range(256))


def new_serials(count: int) -> list[str]:
    """``count`` distinct unguessable serials of :data:`node_bridge.trace.SERIAL_LENGTH` characters.

    Each character is 5 bits of :func:`secrets.token_bytes` (32 of the serial alphabet's letters), so a serial
    holds 80 random bits; a hundred thousand cost a few milliseconds.
    """
    size = trace.SERIAL_LENGTH
    serials: set[str] = set()
    while len(serials) < count:
        need = count - len(serials)
        text = secrets.token_bytes(need * size).translate(_SERIAL_TABLE).decode()
        serials.update(text[i : i + size] for i in range(0, need * size, size))
    return list(serials)


def code_batch_message(batch: CodeBatch, lot: Lot) -> dict[str, Any]:
    """The ``CodeBatch`` message of a batch row."""
    return {
        "producer": bytes.fromhex(batch.producer[2:]),
        "gtin": lot.gtin,
        "lot": lot.lot,
        "count": batch.count,
        "root": bytes.fromhex(batch.root[2:]),
        "nonce": int(batch.nonce),
    }


def to_json(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as JSON values: bytes as 0x-hex (also in lists), integers beyond 2^53 as decimal strings."""
    out: dict[str, Any] = {}
    for name, value in message.items():
        if isinstance(value, bytes):
            out[name] = hex32(value)
        elif isinstance(value, list):
            out[name] = [hex32(v) if isinstance(v, bytes) else v for v in value]
        elif isinstance(value, int) and not isinstance(value, bool) and value > 2**53:
            out[name] = str(value)
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class IssuedBatch:
    batch: CodeBatch
    message: dict[str, Any]
    paths: list[str]


def issue_codes(session: Session, domain: TraceDomain, producer: str, lot: Lot, count: int) -> IssuedBatch:
    """Generate ``count`` codes of ``lot``, their RFC 6962 root (leaf data = code id, in leaf order) and the unsigned
    ``CodeBatch``; stores codes and batch. The producer signs the batch next (:func:`sign_code_batch`)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CODES:
        raise ValidationFailed("count", f"must be 1 to {MAX_CODES:,} codes")
    prefix = f"/01/{lot.gtin}/10/{lot.lot}/21/"
    paths = [prefix + serial for serial in new_serials(count)]
    ids = [keccak(path.encode()) for path in paths]
    root = MerkleTree(ids).root
    message = {
        "producer": bytes.fromhex(producer[2:]),
        "gtin": lot.gtin,
        "lot": lot.lot,
        "count": count,
        "root": root,
        "nonce": secrets.randbelow(2**53),
    }
    batch_id = hex32(domain.digest("CodeBatch", message))
    now = utcnow()
    batch = CodeBatch(
        id=batch_id, lot_id=lot.id, producer=producer, count=count, root=hex32(root), nonce=str(message["nonce"]),
        created_at=now,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    connection = session.connection()
    stamp, issued = db_time(connection, now), State.ISSUED.value
    rows = [
        ("0x" + i.hex(), p, lot.id, batch_id, n, issued, None, None, None, stamp)
        for n, (i, p) in enumerate(zip(ids, paths, strict=True))
    ]
    try:
        bulk_insert(connection, CODES, rows)
    except IntegrityError:  # 80 random bits: a clash with an earlier serial is not expected in practice
        raise Conflict("count", "SerialClash", "a generated serial clashed with an issued one; issue again") from None
    return IssuedBatch(batch, message, paths)


def own_batch(session: Session, producer: str, batch_id: str) -> tuple[CodeBatch, Lot]:
    batch = session.get(CodeBatch, batch_id.lower())
    if batch is None:
        raise NotFound(f"no code batch {batch_id} was issued here")
    if batch.producer != producer:
        raise NotAuthorised(f"code batch {batch_id} belongs to producer {batch.producer}, not you")
    lot = session.get(Lot, batch.lot_id)
    assert lot is not None
    return batch, lot


def sign_code_batch(session: Session, domain: TraceDomain, producer: str, batch_id: str, signature: str) -> CodeBatch:
    """Attach the producer's signature to a code batch and queue ``commitCodes`` (idempotent for the same one)."""
    batch, lot = own_batch(session, producer, batch_id)
    raw = to_bytes(signature, "signature")
    message = code_batch_message(batch, lot)
    signer = recover(domain.digest("CodeBatch", message), raw)
    standing = signer_standing(session, signer)
    if standing is None or standing[0] != batch.producer:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of producer {batch.producer} (or the batch was signed "
            f"for another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    if not standing[1] & Role.PRODUCER:
        raise NotAuthorised(f"signature: committing codes needs a PRODUCER signer; {signer} is not one")
    if batch.signature is not None:
        return batch
    batch.signature, batch.signer, batch.signed_at = "0x" + raw.hex(), signer, utcnow()
    session.add(batch)
    outbox.enqueue(session, batch.id, trace.CONTRACT, "commitCodes", trace.calldata("CodeBatch", message, raw))
    return batch


def batch_paths(session: Session, batch_id: str, limit: int, offset: int) -> list[str]:
    rows = session.execute(
        select(CODES.c.path)
        .where(CODES.c.batch_id == batch_id)
        .order_by(CODES.c.leaf_index)
        .limit(limit)
        .offset(offset)
    )
    return [r[0] for r in rows]


def code_by_path(session: Session, path: str, field_name: str = "path") -> TraceCode:
    trace.parse_digital_link(path, field_name)
    code = session.get(TraceCode, hex32(trace.code_id(path)))
    if code is None:
        raise NotFound(f"{field_name}: no code {path} was issued here")
    return code


# checkpoint events


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
    index: int
    id: str
    message: dict[str, Any]
    signature: bytes
    signer: str
    actor: str
    step: Step
    codes: list[str]
    parent: str | None
    corrects: str | None


def _code_ref(value: Any, field_name: str) -> bytes:
    """A code id from 0x-hex or a GS1 Digital Link path."""
    if isinstance(value, str) and value.startswith("/"):
        return trace.code_id(digital_link_of(value, field_name))
    raw = to_bytes(value, field_name)
    if len(raw) != 32:
        raise ValidationFailed(field_name, f"must be a 32-byte code id or a Digital Link path, got {len(raw)} bytes")
    return raw


def digital_link_of(path: str, field_name: str) -> str:
    gtin, lot, serial = trace.parse_digital_link(path, field_name)
    return trace.digital_link(gtin, lot, serial)


def _enum(kind: type[Step] | type[Disposition], value: Any, field_name: str) -> int:
    if isinstance(value, str) and not value.isdigit():
        try:
            return int(kind[value.upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in kind)
            raise ValidationFailed(field_name, f"{value!r} is not one of {names}") from None
    number = to_int(value, field_name)
    if number not in kind._value2member_map_:
        raise ValidationFailed(field_name, f"{number} is not a {kind.__name__.lower()} (0-{len(kind) - 1})")
    return number


def normalise_event(message: Mapping[str, Any]) -> dict[str, Any]:
    """A TraceEvent as JSON (codes and parent as 0x ids or Digital Link paths; step and disposition as numbers or
    names) as the Python values that are signed; errors name the field (``codes[2]``)."""
    if not isinstance(message, Mapping):
        raise ValidationFailed("message", "must be an object")
    if unknown := sorted(set(message) - set(EVENT_FIELDS)):
        raise ValidationFailed(unknown[0], "is not a field of TraceEvent")
    out: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = message.get(name)
        if value is None:
            if name not in OPTIONAL_EVENT_FIELDS:
                raise ValidationFailed(name, "is missing")
            out[name] = OPTIONAL_EVENT_FIELDS[name]
            continue
        if name == "actor":
            raw = to_bytes(value, name)
            if len(raw) != 32:
                raise ValidationFailed(name, f"must be a 32-byte member id, got {len(raw)} bytes")
            out[name] = raw
        elif name in ("parent", "corrects"):
            out[name] = _code_ref(value, name) if name == "parent" else to_bytes(value, name)
            if len(out[name]) != 32:
                raise ValidationFailed(name, "must be 32 bytes")
        elif name == "codes":
            if not isinstance(value, list):
                raise ValidationFailed(name, "must be a list of code ids or Digital Link paths")
            out[name] = [_code_ref(v, f"codes[{j}]") for j, v in enumerate(value)]
        elif name == "step":
            out[name] = _enum(Step, value, name)
        elif name == "disposition":
            out[name] = _enum(Disposition, value, name)
        elif name in ("time", "nonce"):
            out[name] = to_int(value, name)
            if not 0 <= out[name] < 2 ** (64 if name == "time" else 256):
                raise ValidationFailed(name, "is out of range")
        else:
            if not isinstance(value, str):
                raise ValidationFailed(name, f"must be text, got {type(value).__name__}")
            if len(value) > MAX_TEXT:
                raise ValidationFailed(name, f"is {len(value)} characters; at most {MAX_TEXT}")
            out[name] = value
    trace.check_event(out)
    return out


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


def _check_one(domain: TraceDomain, signers: Signers, index: int, item: SignedEvent, latest: int, skew: int) -> _Event:
    message = normalise_event(item.message)
    signature = to_bytes(item.signature, "signature")
    digest = domain.digest("TraceEvent", message)
    signer = recover(digest, signature)
    standing = signers.standing(signer)
    if standing is None:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of an active member (or the event was signed for "
            f"another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    organisation, roles = standing
    actor = hex32(message["actor"])
    if organisation != actor:
        raise NotAuthorised(f"actor: the event names {actor} but signer {signer} signs for {organisation}")
    step = Step(message["step"])
    needed = trace.STEP_ROLES[step]
    if not roles & needed:
        names = " or ".join(str(r.name) for r in Role if r & needed)
        raise NotAuthorised(f"signature: a {step.slug} event needs a {names} signer; {signer} is not one")
    if message["time"] > latest:
        raise ValidationFailed("time", f"{message['time']} is more than {skew} s ahead of the server's clock")
    parent = hex32(message["parent"]) if message["parent"] != ZERO32 else None
    corrects = hex32(message["corrects"]) if message["corrects"] != ZERO32 else None
    codes = [hex32(c) for c in message["codes"]]
    return _Event(index, hex32(digest), message, signature, signer, actor, step, codes, parent, corrects)


def _select_in(session: Session, columns: Sequence[Any], key: Any, values: Sequence[Any]) -> list[Any]:
    rows: list[Any] = []
    for chunk in _in_chunks(values):
        rows.extend(session.execute(select(*columns).where(key.in_(chunk))).all())
    return rows


@dataclass
class _Code:
    custody: CodeState
    lot_id: str
    producer: str
    signed: bool
    original: str | None  # last_event as stored: the update's condition


def _load_codes(session: Session, ids: Sequence[str]) -> dict[str, _Code]:
    columns = (
        CODES.c.id, CODES.c.state, CODES.c.holder, CODES.c.parent, CODES.c.last_event, CODES.c.lot_id,
        BATCHES.c.producer, BATCHES.c.signature,
    )  # fmt: skip
    found: dict[str, _Code] = {}
    for chunk in _in_chunks(list(ids)):
        query = select(*columns).join(BATCHES, BATCHES.c.id == CODES.c.batch_id).where(CODES.c.id.in_(chunk))
        for cid, state, holder, parent, last, lot_id, producer, signature in session.execute(query):
            custody = CodeState(State(state), holder, parent, last)
            found[cid] = _Code(custody, lot_id, producer, signature is not None, last)
    return found


def _load_children(session: Session, codes: dict[str, _Code], roots: Iterable[str]) -> dict[str, set[str]]:
    """Packed contents, level by level from ``roots``, loading the codes found into ``codes``."""
    children: dict[str, set[str]] = {}
    level = sorted(set(roots))
    for _ in range(MAX_DEPTH):
        if not level:
            break
        found = _select_in(session, (CODES.c.id, CODES.c.parent), CODES.c.parent, level)
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
) -> list[AcceptedEvent]:
    """Check and store signed checkpoint events, all or none; raises on the first bad one naming
    ``<prefix>[i].<field>`` (403 standing or role, 404 unknown code or event, 409 state or nonce, 422 shape)."""
    name = field_prefix or "body"
    if not items:
        raise ValidationFailed(name, "is empty")
    if len(items) > MAX_EVENTS:
        raise ValidationFailed(name, f"holds {len(items)} events; at most {MAX_EVENTS}")
    latest = (int(time.time()) if now is None else now) + clock_skew
    signers = Signers(session)
    checked: list[_Event] = []
    first: dict[str, _Event] = {}
    for index, item in enumerate(items):
        try:
            one = _check_one(domain, signers, index, item, latest, clock_skew)
        except (ValidationFailed, Conflict, NotAuthorised, NotFound) as exc:
            raise _at(field_prefix, index, exc) from None
        checked.append(one)
        first.setdefault(one.id, one)
    earlier = {
        eid: ("anchored" if batch is not None else "accepted")
        for eid, batch in _select_in(session, (EVENTS.c.id, EVENTS.c.batch), EVENTS.c.id, list(first))
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
        pair = (e.actor, str(e.message["nonce"]))
        if pair in pairs:
            raise Conflict(_where(prefix, e.index, "nonce"), "NonceUsed", f"nonce {pair[1]} of {pair[0]} is used twice")
        pairs[pair] = e.index
    keys = list(pairs)
    for chunk in _in_chunks(keys, 300):
        used = session.execute(
            select(EVENTS.c.actor, EVENTS.c.nonce).where(tuple_(EVENTS.c.actor, EVENTS.c.nonce).in_(chunk))
        ).first()
        if used is not None:
            reason = f"{used[0]} already used nonce {used[1]} for another event (a replay?)"
            raise Conflict(_where(prefix, pairs[(used[0], used[1])], "nonce"), "NonceUsed", reason)


def _check_corrections(session: Session, fresh: list[_Event], prefix: str | None) -> None:
    wanted = [e for e in fresh if e.corrects is not None]
    if not wanted:
        return
    known = {e.id: (e.actor, e.step) for e in fresh}
    targets = sorted({e.corrects for e in wanted if e.corrects is not None} - set(known))
    for eid, actor, step in _select_in(session, (EVENTS.c.id, EVENTS.c.actor, EVENTS.c.step), EVENTS.c.id, targets):
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
            changes.event_codes.extend((c, e.id, e.message["time"], None) for c in e.codes)
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
            changes.event_codes.append((cid, e.id, e.message["time"], via))
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
    for eid, step in _select_in(session, (EVENTS.c.id, EVENTS.c.step), EVENTS.c.id, targets):
        steps[eid] = Step[step.upper()]
    return steps


def _store(session: Session, fresh: list[_Event], changes: _Changes) -> None:
    now = utcnow()
    connection = session.connection()
    stamp = db_time(connection, now)
    json_text = orjson.dumps
    rows = [
        (e.id, e.actor, e.signer, e.step.slug, e.message["time"], e.message["location"], e.message["geo"],
         Disposition(e.message["disposition"]).name.lower(), e.parent, e.corrects, str(e.message["nonce"]),
         json_text(to_json(e.message)).decode(), "0x" + e.signature.hex(), stamp, None, None)
        for e in fresh
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


# bulk SQL through the driver: SQLAlchemy's per-row parameter processing costs more than the database does


def db_time(connection: Connection, value: datetime) -> Any:
    """A UTC datetime as SQLAlchemy would bind it for this database (SQLite: its text form)."""
    if connection.dialect.name == "sqlite":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def bulk_insert(connection: Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert rows given as tuples in the table's column order (JSON columns as JSON text) with executemany."""
    if not rows:
        return
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        raw = connection.connection.dbapi_connection
        with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
        return
    connection.exec_driver_sql(_insert_sql(connection.dialect.name, table), list(rows))


@cache
def _insert_sql(dialect: str, table: Table) -> str:
    marker = "?" if dialect == "sqlite" else "%s"
    columns = list(table.columns)
    quote = (sqlite.dialect if dialect == "sqlite" else postgresql.dialect)().identifier_preparer.quote
    values = [
        f"CAST({marker} AS JSON)" if isinstance(c.type, JSON) and dialect != "sqlite" else marker for c in columns
    ]
    return f"INSERT INTO {table.name} ({', '.join(quote(c.name) for c in columns)}) VALUES ({', '.join(values)})"


_MOVE_SQLITE = (
    "UPDATE trace_code SET state = ?, holder = ?, parent = ?, last_event = ?, updated_at = ? "
    "WHERE id = ? AND last_event IS ?"
)
"""Move a code if its last event is still the one the check saw (null-safe)."""
_MOVE_PG = (
    "UPDATE trace_code SET state = %s, holder = %s, parent = %s, last_event = %s, updated_at = %s "
    "WHERE id = %s AND last_event IS NOT DISTINCT FROM %s"
)


# reading events and proofs


def event_status(row: TraceEventRow, session: Session) -> str:
    """accepted (waiting for a batch) → batched (root sent) → anchored (root indexed from the chain)."""
    if row.batch is None:
        return "accepted"
    return "anchored" if chain_anchor(session, row.batch) is not None else "batched"


def event_codes(session: Session, event_id: str) -> list[str]:
    """The codes an event reached (named, or packed in a named case or pallet)."""
    rows = session.execute(select(EVENT_CODES.c.code_id).where(EVENT_CODES.c.event_id == event_id))
    return sorted(r[0] for r in rows)


def chain_anchor_table() -> Table | None:
    """The indexer's ``trace_chain_anchor`` table (node_bridge/models.py), if this build has it."""
    return SQLModel.metadata.tables.get("trace_chain_anchor")


def chain_anchor(session: Session, index: int) -> dict[str, Any] | None:
    table = chain_anchor_table()
    if table is None:
        return None
    row = session.execute(select(table).where(table.c["index"] == index)).mappings().first()
    return dict(row) if row is not None else None


class TreeCache:
    """The most recently used batch trees, keyed by (batch index, root): a proof costs no rebuild while its tree is
    here, and a tree is never served for another batch of the same index (a reset store)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._trees: OrderedDict[tuple[int, str], MerkleTree] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, batch: AnchorBatch) -> MerkleTree:
        key = (batch.index, batch.root)
        with self._lock:
            tree = self._trees.get(key)
            if tree is not None:
                self._trees.move_to_end(key)
                return tree
        ids = session.execute(
            select(EVENTS.c.id).where(EVENTS.c.batch == batch.index).order_by(EVENTS.c.leaf_index)
        ).all()
        tree = MerkleTree([bytes.fromhex(r[0][2:]) for r in ids])
        if tree.size != batch.size or "0x" + tree.root.hex() != batch.root:
            raise Conflict("batch", "BatchMismatch", f"batch {batch.index}'s events do not make its root {batch.root}")
        with self._lock:
            self._trees[key] = tree
            while len(self._trees) > self.size:
                self._trees.popitem(last=False)
        return tree


TREES = TreeCache()


def proof(session: Session, event_id: str, contract: str, trees: TreeCache = TREES) -> dict[str, Any]:
    """An event's RFC 6962 inclusion proof and where its root is anchored; 404 unknown, 409 naming the state."""
    row = session.get(TraceEventRow, event_id.lower())
    if row is None:
        raise NotFound(f"no trace event {event_id} was accepted here")
    if row.batch is None or row.leaf_index is None:
        raise Conflict("event", "NotBatched", f"event {row.id} is waiting for a batch (the anchorer closes one soon)")
    batch = session.get(AnchorBatch, row.batch)
    assert batch is not None
    anchored = chain_anchor(session, row.batch)
    if anchored is None:
        entry = session.get(OutboxEntry, batch.anchor_id)
        status = entry.status if entry is not None else "unknown"
        raise Conflict(
            "event", "NotConfirmed",
            f"event {row.id} is in batch {row.batch}, anchored but not confirmed yet (anchor write {status})",
        )  # fmt: skip
    tree = trees.get(session, batch)
    return {
        "event_id": row.id,
        "leaf_index": row.leaf_index,
        "tree_size": tree.size,
        "leaf_hash": hex32(tree.leaf(row.leaf_index)),
        "audit_path": [hex32(h) for h in tree.audit_path(row.leaf_index)],
        "root": hex32(tree.root),
        "batch": row.batch,
        "anchor": {
            "contract": contract,
            "index": row.batch,
            "tx_hash": anchored.get("tx_hash"),
            "block_number": anchored.get("block_number"),
        },
    }
