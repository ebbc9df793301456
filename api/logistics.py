"""Logistics credit (C6) behind ``/v1/logistics``: the state rules of the writes, a firm's view, and access answers.

Writes go through :func:`api.signed_writes.accept` with :func:`check`, which applies what the LogisticsRegistry
will apply (a firm registered once, couriers and evaluations only of registered firms, one evaluation per evaluator,
firm and month, rule versions 1, 2, 3... and only the hash of the rule file this repository holds for that version),
over the index, the messages accepted but not yet indexed, and the messages earlier in the same batch (the relayer
sends a batch in its order, so a firm can be registered and evaluated in one request).

Access answers (``GET /v1/logistics/{firm}/access``, ``POST /v1/logistics/access:batch``) come from memory:
:class:`GradeCache` keeps every firm's grade under the latest published rule, re-graded only for the firms whose
evaluations changed when the indexer's checkpoint moves (all of them when a new rule version is published or the
chain reorganised), and the blacklist comes from the status cache (:mod:`api.status.cache`). A firm is refused when
graded D under the latest rule or blacklisted; the answer names the reasons and the records (with their
transactions) that prove them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlmodel import Session

from api.signed_writes import NOT_FAILED, Checked, Placement, pending
from api.status.cache import StatusCache
from api.status.evaluation import BLACK
from api.status.index import Checkpoint, read_checkpoint
from api.status.subjects import Subject
from credtrace import persons
from credtrace.errors import Conflict, CredtraceError, NotFound, ValidationFailed
from credtrace.logistics_rating import Figures, Grade, LoadedRule, file_hash, grade, load_rule, rule_path
from node_bridge import logistics
from node_bridge.credit import subject_code
from node_bridge.eip712 import hex32
from node_bridge.logistics_index import COURIERS, EVALUATIONS, FIRMS, RULES

log = logging.getLogger("api.logistics")
FREEZE_AT = 10_000
REFUSE_MEASURE = "refuse_platform_access"
"""The catalogue's measure (``config/measures.yaml``, code 12) that a refusal applies."""
EVALUATION_COLUMNS = (
    EVALUATIONS.c.id, EVALUATIONS.c.firm, EVALUATIONS.c.period, EVALUATIONS.c.parcels, EVALUATIONS.c.on_time_bps,
    EVALUATIONS.c.loss_damage_bps, EVALUATIONS.c.complaints_per_10k, EVALUATIONS.c.violations,
    EVALUATIONS.c.sanctions, EVALUATIONS.c.tx_hash, EVALUATIONS.c.block_number, EVALUATIONS.c.evaluator,
)  # fmt: skip


# writes: the state rules


def _earlier(earlier: Sequence[Checked], type_name: str) -> list[dict[str, Any]]:
    return [c.message for c in earlier if c.type == type_name]


def _firm_known(session: Session, firm: bytes) -> bool:
    """Registered in the index, or accepted here (and not failed) on its way there."""
    key = hex32(firm)
    if session.execute(select(FIRMS.c.firm).where(FIRMS.c.firm == key)).first() is not None:
        return True
    return bool(pending(session, ["FirmRegistration"], target=key, status=NOT_FAILED))


def _require_firm(session: Session, firm: bytes, earlier: Sequence[Checked]) -> None:
    if _firm_known(session, firm):
        return
    if any(m["firm"] == firm for m in _earlier(earlier, "FirmRegistration")):
        return  # registered earlier in this batch, which reaches the chain in its order
    raise Conflict(
        "firm", "FirmNotRegistered", f"{hex32(firm)} is not a registered delivery firm (a LOGISTICS member "
        "registers it first: FirmRegistration)",
    )  # fmt: skip


def check(session: Session, checked: Checked, earlier: Sequence[Checked]) -> Placement:
    """The LogisticsRegistry's state rules for one message (see the module docstring); errors name the field."""
    m = checked.message
    if checked.type == "FirmRegistration":
        logistics.check_firm_code(m["firm"])
        if _firm_known(session, m["firm"]) or any(
            e["firm"] == m["firm"] for e in _earlier(earlier, "FirmRegistration")
        ):
            raise Conflict("firm", "FirmAlreadyRegistered", f"{subject_code(m['firm'])} is registered already")
        return Placement(subject=hex32(m["firm"]), target=hex32(m["firm"]))
    if checked.type == "CourierRegistration":
        logistics.check_courier(m["courier"])
        logistics.check_firm_code(m["firm"])
        persons.ensure_not_shredded(session, hex32(m["courier"]))
        _require_firm(session, m["firm"], earlier)
        courier, firm = hex32(m["courier"]), hex32(m["firm"])
        latest = session.execute(
            select(COURIERS.c.firm).where(COURIERS.c.courier == courier).order_by(COURIERS.c.block_number.desc(),
                                                                                  COURIERS.c.log_index.desc())
        ).first()  # fmt: skip
        same = (latest is not None and latest[0] == firm) or any(
            c["courier"] == m["courier"] and c["firm"] == m["firm"] for c in _earlier(earlier, "CourierRegistration")
        )
        if same or pending(session, ["CourierRegistration"], subject=courier, target=firm, status=NOT_FAILED):
            raise Conflict("courier", "CourierAlreadyRegistered", f"this courier is registered with {firm} already")
        return Placement(subject=courier, target=firm)
    if checked.type == "Evaluation":
        logistics.check_evaluation(m)
        logistics.check_firm_code(m["firm"])
        _require_firm(session, m["firm"], earlier)
        firm, evaluator = hex32(m["firm"]), hex32(m["evaluator"])
        slot = (m["evaluator"], m["firm"], m["period"])
        indexed = session.execute(
            select(EVALUATIONS.c.id).where(EVALUATIONS.c.evaluator == evaluator, EVALUATIONS.c.firm == firm,
                                           EVALUATIONS.c.period == m["period"])
        ).first()  # fmt: skip
        queued = any(  # as stored: JSON values (0x-hex, integers)
            str(p["message"]["evaluator"]).lower() == evaluator and int(p["message"]["period"]) == m["period"]
            for p in pending(session, ["Evaluation"], target=firm, status=NOT_FAILED)
        )
        batch = any((o["evaluator"], o["firm"], o["period"]) == slot for o in _earlier(earlier, "Evaluation"))
        if indexed is not None or queued or batch:
            raise Conflict(
                "period", "EvaluationExists",
                f"{evaluator} has evaluated {firm} for {m['period']} already (one evaluation per evaluator, firm and "
                "month; corrections are not supported yet)",
            )  # fmt: skip
        return Placement(subject=firm, target=firm)
    if checked.type == "RatingRule":
        version, digest = m["version"], m["ruleHash"]
        expected = latest_version(session) + 1 + len(_earlier(earlier, "RatingRule"))
        if version != expected:
            raise Conflict("version", "RuleVersion", f"the next rule version is {expected}, not {version}")
        path = rule_path(version)
        if not path.is_file():
            raise ValidationFailed("version", f"no rule file for version {version} in this repository ({path.name})")
        if file_hash(path) != digest:
            raise Conflict(
                "ruleHash", "RuleHashMismatch",
                f"{hex32(digest)} is not the keccak256 of {path.name} ({hex32(file_hash(path))})",
            )  # fmt: skip
        return Placement()
    raise ValidationFailed("type", f"{checked.type} is not a logistics message")  # pragma: no cover


def latest_version(session: Session) -> int:
    """The latest rule version published or accepted here (0 if none)."""
    indexed = session.execute(select(func.max(RULES.c.version))).scalar() or 0
    queued = pending(session, ["RatingRule"], status=NOT_FAILED)
    return max([int(indexed), *(int(p["message"]["version"]) for p in queued)])


# reads: rules, a firm's evaluations and grades


@dataclass(frozen=True)
class PublishedRule:
    version: int
    hash: str
    id: str
    publisher: str
    tx_hash: str
    block_number: int

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "hash": self.hash, "id": self.id, "publisher": self.publisher,
                "tx_hash": self.tx_hash, "block_number": self.block_number}  # fmt: skip


def published_rules(connection: Connection | Session, up_to: int | None = None) -> list[PublishedRule]:
    query = select(RULES.c.version, RULES.c.rule_hash, RULES.c.id, RULES.c.publisher, RULES.c.tx_hash,
                   RULES.c.block_number).order_by(RULES.c.version)  # fmt: skip
    if up_to is not None:
        query = query.where(RULES.c.block_number <= up_to)
    return [PublishedRule(int(r[0]), r[1], r[2], r[3], r[4], int(r[5])) for r in connection.execute(query)]


def loaded(rule: PublishedRule) -> LoadedRule:
    """The rule file of a published version, checked against its published hash."""
    return load_rule(rule.version, bytes.fromhex(rule.hash[2:]))


def rules_view(session: Session) -> list[dict[str, Any]]:
    """Every published version: hash, transaction, and whether this repository's file is that rule."""
    out = []
    for rule in published_rules(session):
        item = rule.to_json()
        try:
            item["file"] = loaded(rule).path.name
            item["file_matches"] = True
        except CredtraceError as exc:
            item["file"] = rule_path(rule.version).name
            item["file_matches"] = False
            item["error"] = str(exc)
        out.append(item)
    return out


def figures_of(row: Sequence[Any]) -> Figures:
    """Figures from a row of :data:`EVALUATION_COLUMNS`."""
    return Figures(row[0], *(int(v) for v in row[2:9]))


def firm_view(session: Session, firm: Subject) -> dict[str, Any]:
    """A firm's registration, couriers (commitments), evaluations, and grade under every published rule."""
    registration = session.execute(select(FIRMS).where(FIRMS.c.firm == firm.id)).mappings().first()
    rows = session.execute(
        select(*EVALUATION_COLUMNS).where(EVALUATIONS.c.firm == firm.id).order_by(EVALUATIONS.c.period,
                                                                                 EVALUATIONS.c.id)
    ).all()  # fmt: skip
    queued = pending(session, ["FirmRegistration"], target=firm.id, status=NOT_FAILED)
    if registration is None and not rows and not queued:
        raise NotFound(f"firm: {firm.code or firm.id} is not a registered delivery firm")
    couriers = session.execute(
        select(COURIERS.c.courier, COURIERS.c.id, COURIERS.c.tx_hash).where(COURIERS.c.firm == firm.id)
    ).all()
    figures = [figures_of(r) for r in rows]
    grades = []
    for rule in published_rules(session):
        try:
            grades.append(grade(loaded(rule), figures).to_json() | {"rule_tx_hash": rule.tx_hash})
        except CredtraceError as exc:
            grades.append({"rule_version": rule.version, "rule_hash": rule.hash, "error": str(exc)})
    return {
        "firm": firm.id,
        "firm_code": firm.code,
        "registered": registration is not None,
        "registration": None if registration is None else {
            "id": registration["id"], "registrar": registration["registrar"], "signer": registration["signer"],
            "block_number": registration["block_number"], "tx_hash": registration["tx_hash"],
        },
        "pending_registration": registration is None and bool(queued),
        "couriers": [{"courier": c[0], "id": c[1], "tx_hash": c[2]} for c in couriers],
        "evaluations": [
            {"id": r[0], "evaluator": r[11], "period": r[2], "parcels": r[3], "onTimeBps": r[4],
             "lossDamageBps": r[5], "complaintsPer10k": r[6], "violations": r[7], "sanctions": r[8],
             "tx_hash": r[9], "block_number": r[10]}
            for r in rows
        ],
        "grades": grades,
        "current": grades[-1] if grades else None,
    }  # fmt: skip


# the in-memory grades behind access answers


@dataclass
class FirmState:
    """A firm as access answers need it: registered or not, its evaluations, its grade under the latest rule, and
    (prepared when it is graded) the reason and the records of a D."""

    registered: bool = False
    evaluations: dict[str, tuple[Figures, str]] = field(default_factory=dict)
    """evaluation id → (figures, tx hash)."""
    grade: Grade | None = None
    score: str | None = None
    refusal: str | None = None
    """Why a D is refused; None unless graded D."""
    proof: tuple[dict[str, Any], ...] = ()
    """The evaluations of the window and the rule that make the D, with their transactions."""
    proof_ids: tuple[str, ...] = ()

    def regrade(self, loaded: LoadedRule | None, rule: PublishedRule | None) -> None:
        self.grade = graded = grade(loaded, [f for f, _ in self.evaluations.values()]) if loaded else None
        self.score = None if graded is None or graded.score is None else str(graded.score)
        if graded is None or graded.grade != "D" or rule is None:
            self.refusal, self.proof, self.proof_ids = None, (), ()
            return
        because = "; ".join(graded.automatic_d) or f"score {graded.score} below grade C"
        self.refusal = f"graded D under rating rule v{graded.version} ({because})"
        self.proof = (
            *({"type": "evaluation", "id": e, "tx_hash": self.evaluations[e][1]} for e in graded.evaluations),
            {"type": "rating_rule", "version": rule.version, "id": rule.id, "hash": rule.hash, "tx_hash": rule.tx_hash},
        )
        self.proof_ids = (*graded.evaluations, rule.id)


@dataclass
class GradeCache:
    """Every firm's grade under the latest published rule, in memory; see the module docstring."""

    engine: Engine
    status: StatusCache
    chain_id: int | None = None
    interval: float = 0.2
    firms: dict[str, FirmState] = field(default_factory=dict)
    rule: PublishedRule | None = None
    rule_loaded: LoadedRule | None = None
    rule_error: str | None = None
    head: Checkpoint | None = None
    refreshed_at: float = -1e9
    _lock: asyncio.Lock | None = None

    async def ensure_fresh(self) -> None:
        if time.monotonic() - self.refreshed_at < self.interval:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self.refreshed_at >= self.interval:
                await asyncio.to_thread(self.refresh)
                self.refreshed_at = time.monotonic()

    def refresh(self) -> int:
        """Fold what the indexer wrote since the last checkpoint seen; returns the firms re-graded."""
        with self.engine.connect() as connection:
            head = read_checkpoint(connection, self.chain_id)
            last = self.head
            if head is None or head == last:
                return 0
            reload = last is None or head.number < last.number
            if not reload and last is not None:
                reload = not self._still_there(connection, last)
            low = -1 if reload or last is None else last.number
            rules = published_rules(connection, head.number)
            latest = rules[-1] if rules else None
            new_rule = latest != self.rule
            firms = self.firms if not reload else {}
            changed: set[str] = set()
            for firm, in connection.execute(
                select(FIRMS.c.firm).where(FIRMS.c.block_number > low, FIRMS.c.block_number <= head.number)
            ):  # fmt: skip
                firms.setdefault(firm, FirmState()).registered = True
                changed.add(firm)
            query = select(*EVALUATION_COLUMNS).where(
                EVALUATIONS.c.block_number > low, EVALUATIONS.c.block_number <= head.number
            )
            for row in connection.execute(query):
                firms.setdefault(row[1], FirmState()).evaluations[row[0]] = (figures_of(row), row[9])
                changed.add(row[1])
        if new_rule:
            self.rule, self.rule_loaded, self.rule_error = latest, None, None
            if latest is not None:
                try:
                    self.rule_loaded = loaded(latest)
                except CredtraceError as exc:
                    self.rule_error = str(exc)
                    log.error("logistics: rule v%s cannot be used: %s", latest.version, exc)
            changed = set(firms)
        for firm in changed:
            firms[firm].regrade(self.rule_loaded, self.rule)
        self.firms, self.head = firms, head
        if reload and len(firms) >= FREEZE_AT:
            # as the status cache does: keep the long-lived grades out of the cyclic collector's full passes
            gc.collect()
            gc.freeze()
        return len(changed)

    def _still_there(self, connection: Connection, last: Checkpoint) -> bool:
        from api.status.index import BLOCKS

        query = select(BLOCKS.c.hash).where(BLOCKS.c.number == last.number)
        if self.chain_id is not None:
            query = query.where(BLOCKS.c.chain_id == self.chain_id)
        return connection.execute(query).scalar() == last.hash

    # answers

    def access(self, subject: Subject, now: int, full: bool = True) -> dict[str, Any]:
        """Allowed or refused, with the reasons and the records that prove them (``full``: each record with its
        type and transaction, the grade's breakdown and window; otherwise the records' ids)."""
        state = self.firms.get(subject.id) or _NO_FIRM
        reasons: list[str] = [state.refusal] if state.refusal else []
        records: list[Any] = list(state.proof if full else state.proof_ids)
        for entry in self.status.by_subject.get(subject.id, ()):
            if entry.flag == BLACK and entry.effective_at <= now < entry.valid_until:
                reasons.append(f"blacklisted (credit record {entry.id})")
                records.append(entry.ref if full else entry.id)
        graded = state.grade
        answer: dict[str, Any] = {
            "firm": subject.id,
            "firm_code": subject.code,
            "access": "refused" if reasons else "allowed",
            "reasons": reasons,
            "measure": REFUSE_MEASURE if reasons else None,
            "registered": state.registered,
            "grade": graded.grade if graded else None,
            "score": state.score,
            "records": records,
        }
        if full:
            answer["rule_version"] = self.rule.version if self.rule else None
            answer["breakdown"] = list(graded.breakdown) if graded else []
            answer["window"] = graded.to_json()["window"] if graded else None
            answer["rule_error"] = self.rule_error
        return answer

    def meta(self, now: int) -> dict[str, Any]:
        return {"as_of_block": self.head.number if self.head else None, "as_of_time": now,
                "rule_version": self.rule.version if self.rule else None}  # fmt: skip


_NO_FIRM = FirmState()


def grades_by_firm(connection: Connection | Session, rule: LoadedRule) -> dict[str, Grade]:
    """Every firm's grade under ``rule`` from the SQL index (what the benchmark times)."""
    by_firm: dict[str, list[Figures]] = defaultdict(list)
    for row in connection.execute(select(*EVALUATION_COLUMNS)):
        by_firm[row[1]].append(figures_of(row))
    return {firm: grade(rule, figures) for firm, figures in by_firm.items()}
