"""The consumer scan (C5): a trace code's story and a verdict on it, for ``GET /v1/trace/01/…`` and ``GET /t/01/…``.

A scan reads, for one GS1 Digital Link path, the code and its lot (one indexed query), the checkpoint events of
the code and of the case it is packed in (one indexed query), the scans before this one (one), and records the scan
(one insert). Product, producer and member names, members' keys, the subject ids of members, signature checks
and Merkle proofs are kept in memory (:class:`ScanService`): events are immutable, so an event whose signature or
proof was checked once needs no second look, and the names change rarely (refreshed every ``scan_cache_seconds``).

**Signatures.** Each event's stored message is hashed again under the TraceRegistry's EIP-712 domain
(:class:`node_bridge.trace.TraceDomain`); the digest must be the event id, the signature must recover
(:func:`node_bridge.eip712.recover`) to the stored signer, and the signer must be (or have been) a key of the actor.
``signature``: ``valid``, ``invalid`` (with why), or ``unchecked`` when the TraceRegistry is not deployed where the
API can see it (the recovered signer is still compared with the stored one).

**Proofs.** Once the anchorer put an event in a batch, its RFC 6962 audit path is computed over the batch's event
ids (leaf order) and checked with :func:`node_bridge.merkle.verify_inclusion` against the root the *chain* holds
(``trace_chain_anchor``, filled by the indexer). ``proof``: ``valid``, ``invalid``, or ``pending`` (not yet in a
batch, or the batch's anchor not yet indexed from the chain).

**Verdict.** ``unknown`` when the code was never issued; ``suspicious`` when any reason below holds; ``genuine``
otherwise. Reasons (``code``: machine code, ``text``: for people):

- ``not_issued``: no such code (or no such product) was issued: the verdict is ``unknown``.
- ``already_sold``: the code was sold or delivered more than ``scan_sold_grace_seconds`` ago (who and when), or sold
  twice without a return between: a copied code shown to a second buyer.
- ``too_many_scans``: this code was scanned more than ``scan_max_count`` times.
- ``impossible_travel``: two scans whose coarse places are farther apart than ``scan_max_speed_kmh`` allows in
  the time between them (places closer than ``scan_travel_min_km`` are ignored: coarse geo is ~10 km).
- ``recalled``: a RECALL event on the code, its case or its lot (or the lot marked recalled).
- ``producer_blacklisted`` / ``seller_blacklisted``: the producer, or a member that sold the code, is on the
  blacklist now (the in-memory :class:`api.status.StatusCache`).
- ``bad_signature`` / ``bad_proof``: an event's signature or Merkle proof does not check.

**Members and their credit codes.** Members are identified by ``keccak256(USCC)`` and the index keeps their name,
not their USCC, while the blacklist is kept under the subject id (the USCC packed into 32 bytes). A hash cannot be
reversed, so the map member id → subject id is built from the configuration that admitted them: the founding
regulators of ``consortium_config`` and the members of ``config/demo.yaml``, plus ``scan_member_codes`` (a setting,
``{USCC: …}`` list) for members admitted otherwise. The member id itself is also asked, in case a record names it.

**Privacy.** A scan row holds the code id, the time, and what the page passed: ``region`` (free text, at most 64
characters) and ``geo`` rounded to one decimal (~10 km). Never an address, a user agent or a cookie.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, bindparam, func, insert, select
from sqlalchemy import inspect as sa_inspect

from api.status import BLACK, StatusCache
from credtrace.errors import ValidationFailed
from credtrace.settings import Settings
from node_bridge.consortium import member_id
from node_bridge.credit import subject_id
from node_bridge.eip712 import recover
from node_bridge.merkle import MerkleTree, verify_inclusion
from node_bridge.models import Member, MemberKey
from node_bridge.projections import table_of
from node_bridge.trace import EIP712_TYPES, Step, TraceDomain, code_id, parse_digital_link
from node_bridge.trace_models import AnchorBatch, Lot, Product, Scan, TraceCode, TraceEventCode, TraceEventRow

CODES = table_of(TraceCode)
LOTS = table_of(Lot)
PRODUCTS = table_of(Product)
EVENTS = table_of(TraceEventRow)
EVENT_CODES = table_of(TraceEventCode)
BATCHES = table_of(AnchorBatch)
SCANS = table_of(Scan)
MEMBERS = table_of(Member)
KEYS = table_of(MemberKey)
CHAIN_ANCHOR_TABLE = "trace_chain_anchor"
log = logging.getLogger(__name__)
RECENT_SCANS = 20
_GEO = re.compile(r"^\s*(-?\d{1,2}(?:\.\d+)?)\s*,\s*(-?\d{1,3}(?:\.\d+)?)\s*$")
_REGION = re.compile(r"^[^\x00-\x1f<>]{1,64}$")
SOLD_STATES = (Step.SELL.slug, Step.DELIVER.slug)


_CODE_QUERY = (
    select(CODES.c.state, CODES.c.holder, CODES.c.parent, CODES.c.lot_id, LOTS.c.produced_on, LOTS.c.best_before,
           LOTS.c.recalled_at, LOTS.c.recall_event)
    .select_from(CODES.outerjoin(LOTS, LOTS.c.id == CODES.c.lot_id))
    .where(CODES.c.id == bindparam("cid"))
)  # fmt: skip
_EVENT_COLUMNS = [c for c in EVENTS.c if c.name not in ("message", "signature")]
_EVENTS_QUERY = (
    select(*_EVENT_COLUMNS)
    .join(EVENT_CODES, EVENT_CODES.c.event_id == EVENTS.c.id)
    .where(EVENT_CODES.c.code_id.in_(bindparam("ids", expanding=True)))
    .order_by(EVENTS.c.time, EVENTS.c.accepted_at)
)
_SIGNED_QUERY = select(EVENTS.c.message, EVENTS.c.signature).where(EVENTS.c.id == bindparam("id"))
"""What was signed, read only the first time an event's signature is checked (then cached)."""
_RECENT_SCANS = (
    select(SCANS.c.scanned_at, SCANS.c.geo)
    .where(SCANS.c.code_id == bindparam("cid"))
    .order_by(SCANS.c.id.desc())
    .limit(RECENT_SCANS)
)
_LAST_BATCH = select(func.max(EVENTS.c.batch))
_BATCHED = (
    select(EVENT_CODES.c.code_id, EVENTS.c.batch)
    .join(EVENTS, EVENTS.c.id == EVENT_CODES.c.event_id)
    .where(EVENTS.c.batch > bindparam("batch"))
)
_COUNT_SCANS = select(func.count()).where(SCANS.c.code_id == bindparam("cid"))


class ScanRecorder:
    """Buffers scan rows and writes them in one transaction every ``interval`` seconds (a commit per scan would
    cost more than the rest of the scan); :meth:`flush` writes at once. ``generation`` is odd while a flush is
    being committed, so that a reader can tell whether the table and the buffer it read were consistent."""

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.generation = 0
        self._pending: list[dict[str, Any]] = []
        self._by_code: dict[str, list[tuple[int, str | None]]] = {}
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, cid: str, row: dict[str, Any]) -> None:
        with self._lock:
            self._pending.append(row)
            self._by_code.setdefault(cid, []).append((row["scanned_at"], row["geo"]))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scan-recorder", daemon=True)
                self._thread.start()

    def pending_of(self, cid: str) -> tuple[list[tuple[int, str | None]], int]:
        """This code's buffered scans (oldest first) and the generation they were read at."""
        with self._lock:
            return list(self._by_code.get(cid, ())), self.generation

    def flush(self) -> int:
        """Write what is buffered; returns how many rows."""
        with self._flushing:
            with self._lock:
                rows = list(self._pending)
                if not rows:
                    return 0
                self.generation += 1
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(SCANS), rows)
            finally:
                with self._lock:
                    del self._pending[: len(rows)]
                    by_code: dict[str, list[tuple[int, str | None]]] = {}
                    for row in self._pending:
                        by_code.setdefault(row["code_id"], []).append((row["scanned_at"], row["geo"]))
                    self._by_code = by_code
                    self.generation += 1
            return len(rows)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            try:
                self.flush()
            except Exception:  # the database away for a moment: keep the rows, try again
                log.exception("recording scans failed; retrying")


# input


def parse_geo(value: str | None) -> tuple[float, float] | None:
    """Optional ``lat,lon`` from the page, rounded to 1 decimal (~10 km); ValidationFailed on ``geo``."""
    if value is None or value == "":
        return None
    match = _GEO.match(value)
    if match is None:
        raise ValidationFailed("geo", "must be 'lat,lon' in decimal degrees, e.g. 37.5,121.4")
    lat, lon = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationFailed("geo", "latitude must be within ±90 and longitude within ±180")
    return round(lat, 1), round(lon, 1)


def parse_region(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not _REGION.match(value):
        raise ValidationFailed("region", "must be 1 to 64 printable characters (a city or district), without < >")
    return value


def geo_text(geo: tuple[float, float] | None) -> str | None:
    return None if geo is None else f"{geo[0]:.1f},{geo[1]:.1f}"


def _geo_of(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lat, lon = text.split(",")
        return float(lat), float(lon)
    except ValueError:
        return None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, mean Earth radius 6371 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reason(code: str, text: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "text": text, **details}


# caches


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def configured_member_codes(settings: Settings) -> dict[str, str]:
    """``{member id: subject id}`` of every member whose USCC the configuration names (module docstring)."""
    from credtrace.demo import all_demo_members

    codes: list[str] = list(settings.scan_member_codes)
    with contextlib.suppress(OSError, ValueError, KeyError):  # no consortium config or demo file here
        codes += [m.uscc for m in all_demo_members(settings)]
    return {"0x" + member_id(code).hex(): "0x" + subject_id(code).hex() for code in codes}


@dataclass
class ScanService:
    """Reads a code's story and judges it; one per API process (``app.state.scan``)."""

    engine: Engine
    settings: Settings
    status: StatusCache | None = None
    domain: TraceDomain | None = None
    clock: Any = time.time
    names: dict[str, str] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=dict)
    products: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)
    _loaded_at: float = -math.inf
    _signatures: _Lru = field(default_factory=lambda: _Lru(200_000))
    _proofs: _Lru = field(default_factory=lambda: _Lru(200_000))
    _trees: _Lru = field(default_factory=lambda: _Lru(16))
    _views: _Lru = field(default_factory=lambda: _Lru(200_000))
    _stories: _Lru = field(default_factory=lambda: _Lru(100_000))
    """code id -> (code and lot row, events): forgotten when an event names the code or a batch takes one."""
    _children: dict[str, set[str]] = field(default_factory=dict)
    _looked_at: float = -math.inf
    _batch_mark: int | None = None
    _roots: dict[int, dict[str, Any]] = field(default_factory=dict)
    _chain_anchor: Table | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    recorder: ScanRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.subjects = configured_member_codes(self.settings)
        self.recorder = ScanRecorder(self.engine, self.settings.scan_flush_seconds)

    # names, keys, products (in memory, refreshed every scan_cache_seconds)

    def _refresh(self, connection: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._loaded_at < self.settings.scan_cache_seconds:
            return
        with self._lock:
            if not force and now - self._loaded_at < self.settings.scan_cache_seconds:
                return
            self.names = dict(connection.execute(select(MEMBERS.c.id, MEMBERS.c.name)).all())
            keys: dict[str, set[str]] = {}
            for address, owner in connection.execute(select(KEYS.c.address, KEYS.c.member_id)):
                keys.setdefault(owner, set()).add(address.lower())
            self.keys = keys
            self.products = {
                gtin: (name, producer, description)
                for gtin, name, producer, description in connection.execute(
                    select(PRODUCTS.c.gtin, PRODUCTS.c.name, PRODUCTS.c.producer, PRODUCTS.c.description)
                )
            }
            if self._chain_anchor is None and sa_inspect(connection).has_table(CHAIN_ANCHOR_TABLE):
                self._chain_anchor = Table(CHAIN_ANCHOR_TABLE, _metadata(), autoload_with=connection)
            self._loaded_at = now

    def name_of(self, member: str | None) -> str | None:
        return None if member is None else self.names.get(member)

    def member_view(self, member: str | None) -> dict[str, Any] | None:
        if member is None:
            return None
        return {"id": member, "name": self.name_of(member)}

    def blacklisted(self, member: str, now: int) -> bool:
        """Whether ``member`` (its credit code's subject, or its id) is on the blacklist now (status cache)."""
        if self.status is None:
            return False
        for subject in (self.subjects.get(member), member):
            for entry in self.status.by_subject.get(subject, ()) if subject else ():
                if entry.flag == BLACK and entry.effective_at <= now < entry.valid_until:
                    return True
        return False

    # checks of one event

    def check_signature(self, connection: Any, row: Any) -> dict[str, Any]:
        cached = self._signatures.get(row.id)
        if cached is None:
            signed = connection.execute(_SIGNED_QUERY, {"id": row.id}).one()
            cached = self._signature_of(row, signed.message, signed.signature)
            self._signatures.put(row.id, cached)
        status, why, recovered = cached
        if status == "invalid":
            return {"status": status, "reason": why, "signer": row.signer}
        if recovered.lower() not in self.keys.get(row.actor, ()):
            return {"status": "invalid", "reason": "the signer is not a key of the actor", "signer": row.signer}
        return {"status": status, "reason": why, "signer": row.signer}

    def _signature_of(self, row: Any, message: dict[str, Any], signature: str) -> tuple[str, str | None, str]:
        """(status, why, recovered address); the part that never changes for an event."""
        digest = bytes.fromhex(row.id[2:])
        why = None
        status = "valid"
        if self.domain is None:
            status, why = "unchecked", "TraceRegistry not deployed here: message digest not recomputed"
        else:
            try:
                if self.domain.digest("TraceEvent", _typed(message)) != digest:
                    return "invalid", "the stored message does not hash to the event id", ""
            except (ValidationFailed, KeyError, TypeError, ValueError) as exc:
                return "invalid", f"the stored message is malformed ({exc})", ""
        try:
            recovered = recover(digest, bytes.fromhex(signature.removeprefix("0x")))
        except (ValidationFailed, ValueError) as exc:
            return "invalid", f"the signature does not recover ({exc})", ""
        if recovered.lower() != row.signer.lower():
            return "invalid", f"the signature recovers to {recovered}, not the stated signer", recovered
        return status, why, recovered

    def check_proof(self, connection: Any, row: Any) -> dict[str, Any]:
        cached = self._proofs.get(row.id)
        if cached is not None:
            return dict(cached)
        if row.batch is None or row.leaf_index is None:
            return {"status": "pending", "reason": "not yet in an anchored batch"}
        anchor = self._anchor(connection, row.batch)
        if anchor is None:
            return {"status": "pending", "batch": row.batch, "reason": "the batch's anchor is not yet on chain"}
        tree = self._tree(connection, row.batch)
        index = row.leaf_index
        base = {
            "batch": row.batch,
            "leaf_index": index,
            "tree_size": anchor["size"],
            "root": anchor["root"],
            "tx_hash": anchor.get("tx_hash"),
            "block_number": anchor.get("block_number"),
        }
        ok = (
            tree is not None
            and index < tree.size
            and tree.size == anchor["size"]
            and tree.leaf(index) == _leaf(row.id)
            and verify_inclusion(
                tree.leaf(index), index, tree.size, tree.audit_path(index), bytes.fromhex(anchor["root"][2:])
            )
        )
        result = {"status": "valid" if ok else "invalid", **base}
        if not ok:
            result["reason"] = "the audit path does not lead to the root anchored on chain"
        self._proofs.put(row.id, result)
        return dict(result)

    def _anchor(self, connection: Any, batch: int) -> dict[str, Any] | None:
        """The root anchored on chain for batch ``batch`` (from the indexer's table), cached once found."""
        if batch in self._roots:
            return self._roots[batch]
        table = self._chain_anchor
        if table is None:
            return None
        index_column = next((table.c[n] for n in ("index", "batch", "batch_index") if n in table.c), None)
        if index_column is None:
            return None
        row = connection.execute(select(table).where(index_column == batch)).mappings().first()
        if row is None:
            return None
        root = row["root"]
        anchor = {
            "root": root if isinstance(root, str) else "0x" + bytes(root).hex(),
            "size": int(row["size"]),
            "tx_hash": row.get("tx_hash"),
            "block_number": row.get("block_number"),
        }
        self._roots[batch] = anchor
        return anchor

    def _tree(self, connection: Any, batch: int) -> MerkleTree | None:
        tree = self._trees.get(str(batch))
        if tree is None:
            ids = connection.execute(
                select(EVENTS.c.id).where(EVENTS.c.batch == batch).order_by(EVENTS.c.leaf_index)
            ).scalars()
            tree = MerkleTree([bytes.fromhex(i[2:]) for i in ids])
            self._trees.put(str(batch), tree)
        return tree

    # the scan

    def scan(
        self, path: str, region: str | None = None, geo: tuple[float, float] | None = None, record: bool = True
    ) -> dict[str, Any]:
        """The story of the code at ``path`` and the verdict; records the scan (``record``)."""
        gtin, lot, serial = parse_digital_link(path)
        now = int(self.clock())
        cid = "0x" + code_id(path).hex()
        with self.engine.connect() as connection:
            self._refresh(connection)
            caching = self.settings.scan_story_seconds > 0
            if caching:
                self._invalidate(connection)
            story = self._stories.get(cid) if caching else None
            if story is None:
                code = connection.execute(_CODE_QUERY, {"cid": cid}).first()
                events: list[Any] = []
                if code is not None:
                    ids = [cid] + ([code.parent] if code.parent else [])
                    events = _unique(connection.execute(_EVENTS_QUERY, {"ids": ids}))
                    if caching:
                        self._stories.put(cid, (code, events))
                    if caching and code.parent:
                        self._children.setdefault(code.parent, set()).add(cid)
            else:
                code, events = story
            if code is not None and gtin not in self.products:
                self._refresh(connection, force=True)
            product = self.products.get(gtin)
            answer: dict[str, Any] = {
                "code": {"id": cid, "path": path, "gtin": gtin, "lot": lot, "serial": serial},
                "scanned_at": now,
            }
            if code is None or product is None:
                answer.update(self._unknown(gtin, product))
            else:
                answer.update(self._story(connection, code, product, gtin, lot, events))
            previous, count = self._previous_scans(connection, cid)
        if code is not None and product is not None:
            answer["reasons"] += self._scan_reasons(previous, count, now, geo)
        reasons = answer["reasons"]
        if code is None or product is None:
            verdict = "unknown"
        elif reasons:
            verdict = "suspicious"
        else:
            verdict = "genuine"
        answer["verdict"] = verdict
        answer["verdict_text"] = _VERDICT_TEXT[verdict]
        answer["scans"] = {"count": count + (1 if record else 0), "previous": count}
        if record:
            self.recorder.add(cid, {"code_id": cid, "scanned_at": now, "region": region, "geo": geo_text(geo),
                                    "verdict": verdict})  # fmt: skip
        order = (
            "verdict",
            "verdict_text",
            "reasons",
            "code",
            "product",
            "producer",
            "lot",
            "state",
            "holder",
            "timeline",
            "checks",
            "scans",
            "scanned_at",
        )
        return {k: answer[k] for k in order if k in answer}

    def _invalidate(self, connection: Any) -> None:
        """Forget the cached stories of the codes whose events the anchorer batched since the last look (every
        ``scan_story_seconds``). Every accepted event is batched within ``anchor_interval`` seconds, and batch
        indexes only grow, so this sees each new event once, exactly, and reads each event-code link once."""
        now = time.monotonic()
        if now - self._looked_at < self.settings.scan_story_seconds:
            return
        self._looked_at = now
        if self._batch_mark is None:
            mark = connection.execute(_LAST_BATCH).scalar()
            self._batch_mark = -1 if mark is None else mark
            self._stories.clear()
            return
        touched = set()
        for cid, batch in connection.execute(_BATCHED, {"batch": self._batch_mark}):
            touched.add(cid)
            self._batch_mark = max(self._batch_mark, batch)
        for cid in touched:
            self._stories.pop(cid, None)
            for child in self._children.pop(cid, ()):
                self._stories.pop(child, None)

    def _previous_scans(self, connection: Any, cid: str) -> tuple[list[tuple[int, str | None]], int]:
        """The latest scans of ``cid`` (newest first, at most :data:`RECENT_SCANS`) and how many there were: the
        recorded ones and those this process still buffers (consistent: retried if a flush ran meanwhile)."""
        recorder = self.recorder
        for _ in range(20):
            generation = recorder.generation
            if generation % 2:  # a flush is being committed
                time.sleep(0.001)
                continue
            rows = [(r[0], r[1]) for r in connection.execute(_RECENT_SCANS, {"cid": cid})]
            count = len(rows)
            if count == RECENT_SCANS:
                count = connection.execute(_COUNT_SCANS, {"cid": cid}).scalar_one()
            pending, again = recorder.pending_of(cid)
            if again == generation:
                return (pending[::-1] + rows)[:RECENT_SCANS], count + len(pending)
        return rows, count

    def _unknown(self, gtin: str, product: tuple[str, str, str] | None) -> dict[str, Any]:
        if product is None:
            text = f"No product with GTIN {gtin} is registered: this code was never issued by a consortium member."
        else:
            text = f"{product[0]} is registered, but this serial was never issued: the code may be counterfeit."
        return {
            "reasons": [reason("not_issued", text)],
            "product": None if product is None else {"gtin": gtin, "name": product[0], "description": product[2]},
            "producer": None if product is None else self.member_view(product[1]),
            "timeline": [],
        }

    def _story(
        self, connection: Any, code: Any, product: tuple[str, str, str], gtin: str, lot: str, events: Sequence[Any]
    ) -> dict[str, Any]:
        now = int(self.clock())
        reasons: list[dict[str, Any]] = []
        timeline = []
        corrected_by: dict[str, list[str]] = {}
        for row in events:
            if row.corrects:
                corrected_by.setdefault(row.corrects, []).append(row.id)
        signatures_ok = proofs_ok = True
        pending = 0
        for row in events:
            signature = self.check_signature(connection, row)
            proof = self.check_proof(connection, row)
            if signature["status"] == "invalid":
                signatures_ok = False
                reasons.append(
                    reason(
                        "bad_signature",
                        f"The {row.step} event of {iso(row.time)} is not validly "
                        f"signed by its actor: {signature['reason']}.",
                        event=row.id,
                    )
                )
            if proof["status"] == "invalid":
                proofs_ok = False
                reasons.append(
                    reason(
                        "bad_proof",
                        f"The {row.step} event of {iso(row.time)} is not in the batch anchored on chain.",
                        event=row.id,
                    )
                )
            elif proof["status"] == "pending":
                pending += 1
            view = self._views.get(row.id)
            if view is None:  # what never changes of an event, prepared once
                view = {"id": row.id, "step": row.step, "time": row.time, "time_iso": iso(row.time), "actor": None,
                        "location": row.location, "geo": row.geo or None, "disposition": row.disposition,
                        "corrects": row.corrects}  # fmt: skip
                self._views.put(row.id, view)
            timeline.append(
                {
                    **view,
                    "actor": self.member_view(row.actor),
                    "corrected_by": corrected_by.get(row.id, []),
                    "signature": signature,
                    "proof": proof,
                }
            )
        # already sold / delivered
        effective = [e for e in events if e.id not in corrected_by]
        sells = [e for e in effective if e.step == Step.SELL.slug]
        returns = [e for e in effective if e.step == Step.RETURN.slug]
        if len(sells) > 1 and not any(sells[0].time <= r.time <= sells[-1].time for r in returns):
            names = " and ".join(f"{self.name_of(e.actor) or e.actor} on {iso(e.time)}" for e in sells)
            reasons.append(
                reason("already_sold", f"This code was sold twice: by {names}.", events=[e.id for e in sells])
            )
        else:
            last = next((e for e in reversed(effective) if e.step in SOLD_STATES), None)
            later_return = last is not None and any(r.time >= last.time for r in returns)
            if last is not None and not later_return and now - last.time > self.settings.scan_sold_grace_seconds:
                who = self.name_of(last.actor) or last.actor
                verb = "sold" if last.step == Step.SELL.slug else "delivered"
                reasons.append(
                    reason(
                        "already_sold",
                        f"This code was already {verb} by {who} on {iso(last.time)}. If you are buying "
                        "this item as new now, its code was probably copied.",
                        event=last.id,
                        by=self.member_view(last.actor),
                        at=last.time,
                    )
                )
        # recalled
        recall = next((e for e in effective if e.step == Step.RECALL.slug), None)
        if recall is not None or code.recalled_at is not None:
            when = iso(recall.time) if recall is not None else f"{code.recalled_at:%Y-%m-%d}"
            by = self.name_of(recall.actor) if recall is not None else None
            text = f"This lot ({lot}) was recalled on {when}" + (f" by {by}" if by else "") + ". Do not use it."
            reasons.append(reason("recalled", text, event=recall.id if recall is not None else code.recall_event))
        # blacklists
        producer = product[1]
        if self.blacklisted(producer, now):
            reasons.append(
                reason(
                    "producer_blacklisted",
                    f"The producer, {self.name_of(producer) or producer}, is on "
                    "the blacklist of seriously dishonest entities.",
                    member=producer,
                )
            )
        for seller in dict.fromkeys(e.actor for e in sells):
            if seller != producer and self.blacklisted(seller, now):
                reasons.append(
                    reason(
                        "seller_blacklisted",
                        f"The seller, {self.name_of(seller) or seller}, is on the "
                        "blacklist of seriously dishonest entities.",
                        member=seller,
                    )
                )
        return {
            "reasons": reasons,
            "product": {"gtin": gtin, "name": product[0], "description": product[2]},
            "producer": self.member_view(producer),
            "lot": {
                "lot": lot,
                "produced_on": code.produced_on,
                "best_before": code.best_before,
                "recalled": code.recalled_at is not None or recall is not None,
            },
            "state": code.state,
            "holder": self.member_view(code.holder),
            "timeline": timeline,
            "checks": {
                "events": len(events),
                "signatures_valid": signatures_ok,
                "proofs_valid": proofs_ok,
                "proofs_pending": pending,
            },
        }

    def _scan_reasons(
        self, previous: Sequence[tuple[int, str | None]], count: int, now: int, geo: tuple[float, float] | None
    ) -> list[dict[str, Any]]:
        reasons = []
        limit = self.settings.scan_max_count
        if count + 1 > limit:
            reasons.append(
                reason(
                    "too_many_scans",
                    f"This code was scanned {count + 1} times, more than the "
                    f"{limit} a genuine item gets: its code may have been copied.",
                    scans=count + 1,
                )
            )
        places = [(now, geo)] + [(t, _geo_of(g)) for t, g in previous]
        located = [(t, g) for t, g in places if g is not None]
        for (t1, g1), (t2, g2) in _pairs(located):
            km = distance_km(g1, g2)
            if km < self.settings.scan_travel_min_km:
                continue
            hours = max(abs(t1 - t2), 1) / 3600
            if km / hours > self.settings.scan_max_speed_kmh:
                reasons.append(
                    reason(
                        "impossible_travel",
                        f"Scanned {km:.0f} km apart within {abs(t1 - t2) / 60:.0f} min "
                        f"({geo_text(g2)} at {iso(t2)}, {geo_text(g1)} at {iso(t1)}): the same item cannot travel that "
                        "fast, so its code was probably copied.",
                        km=round(km),
                        seconds=abs(t1 - t2),
                    )
                )
                break
        return reasons


def _pairs(located: Sequence[tuple[int, tuple[float, float]]]) -> Iterable[tuple[Any, Any]]:
    """Consecutive located scans, newest first (the newest pair is the one worth telling)."""
    return itertools.pairwise(located)


_UINTS = tuple(f["name"] for f in EIP712_TYPES["TraceEvent"] if f["type"].startswith("uint"))


def _typed(message: dict[str, Any]) -> dict[str, Any]:
    """The stored JSON message with its integers as ints (a uint256 nonce may be kept as decimal text)."""
    return {k: int(v) if k in _UINTS and isinstance(v, str) else v for k, v in message.items()}


def _unique(rows: Iterable[Any]) -> list[Any]:
    """Rows once each (an event may name both the code and the case it is packed in)."""
    seen: dict[str, Any] = {}
    for row in rows:
        seen.setdefault(row.id, row)
    return list(seen.values())


def _leaf(event_id: str) -> bytes:
    from node_bridge.merkle import leaf_hash

    return leaf_hash(bytes.fromhex(event_id[2:]))


def _metadata() -> Any:
    from sqlalchemy import MetaData

    return MetaData()


_VERDICT_TEXT = {
    "genuine": "Genuine: this code was issued by its producer and its custody chain checks.",
    "suspicious": "Suspicious: see the reasons below before you buy or use this item.",
    "unknown": "Unknown: this code was never issued by a consortium member.",
}
