"""PaymentRegistry events → ``payment_binding``, ``_relation``, ``_signal``; the alerts they raise → ``payment_alert``.

Bindings and signals are append-only on chain: each event inserts its row; an ``AccountUnbound`` fills the
``unbound_*`` columns of the pair's binding open before it (a pair bound again later gets a new row). Unbinding
does not erase history: alerts count every binding made before the raising event, ended since or not (an account
once known under a blacklisted name stays known), and a pair bound again after an unbinding raises nothing new.

Alerts are derived here, from the chain
alone, so that a rebuilt index has exactly the same ones. Each alert is raised by one event and judged *as of that
event's place in the chain* (block number, log index): only bindings and blacklist records that came before it
count. That makes the result independent of how the chain is cut into indexed ranges (a live index and a rebuild
agree), and an alert, once raised, never changes.

- ``shared_account``: a binding of account A to subject S, when A was already bound to another subject that was
  not declared related to S (``SubjectsRelated``, before the binding). Every other distinct subject counts as a
  different real-name identity; a relation declared later does not withdraw an alert.
- ``blacklist_reappearance`` (declared relations do not matter: a blacklisted entity's account under its affiliate
  is the case in point), raised two ways:

  * a binding of A to S, when A was already bound to a subject T ≠ S that had a BLACKLIST record (active or not:
    a blacklisted entity reopening under a new name is the point, whatever became of the record since);
  * the *first* BLACKLIST record of a subject T, for each account A bound to T that was already bound to another
    subject as well (later bindings of A are caught by the first rule).

Alert ids are ``keccak256(kind ‖ id of the raising event [‖ account hash])``. A reorg rollback to block N deletes
rows of blocks above N (:func:`rollback`): an alert lives in the block of the event that raised it, and only
depends on events before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, and_, delete, or_, select, update

from node_bridge.consortium import Role
from node_bridge.credit import CONTRACT as CREDIT_CONTRACT
from node_bridge.credit import Kind, subject_code
from node_bridge.credit_index import RECORDS
from node_bridge.eip712 import hex32, keccak, to_bytes
from node_bridge.events import DecodedEvent
from node_bridge.payment_models import PaymentAlert, PaymentBinding, PaymentRelation, PaymentSignalRow
from node_bridge.payments import BINDING, CONTRACT, REGISTRY, RELATION, SIGNAL, UNBINDING
from node_bridge.projections import chunks, signed_place, table_of, upsert

BINDINGS = table_of(PaymentBinding)
SIGNALS = table_of(PaymentSignalRow)
RELATIONS = table_of(PaymentRelation)
ALERTS = table_of(PaymentAlert)
TABLES = (BINDINGS, SIGNALS, RELATIONS, ALERTS)
FEED = {
    "AccountBound": "account_binding",
    "AccountUnbound": "account_unbinding",
    "SubjectsRelated": "subjects_related",
    "PaymentSignalFiled": "payment_signal",
}
"""Change-feed item types of this registry's events."""
FEED_ROLES: int | None = int(Role.PAYMENT | Role.REGULATOR | Role.AUDITOR)
"""Who sees them in the feed: account hashes and merchants' payment figures are for payment and supervision."""
SHARED_ACCOUNT = "shared_account"
BLACKLIST_REAPPEARANCE = "blacklist_reappearance"
ALERT_KINDS = (SHARED_ACCOUNT, BLACKLIST_REAPPEARANCE)
_BLACKLIST = Kind.BLACKLIST.slug

Position = tuple[int, int]


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new PaymentRegistry events (chain order), and derive the alerts that they, and new blacklist records,
    raise; ``block_times`` maps their blocks to timestamps. Runs after :mod:`node_bridge.credit_index`."""
    bindings: list[dict[str, Any]] = []
    unbindings: list[dict[str, Any]] = []
    relations: list[dict[str, Any]] = []
    signals: list[dict[str, Any]] = []
    blacklists: list[tuple[DecodedEvent, str]] = []
    for event in events:
        if event.contract == CONTRACT:
            if event.name == "AccountBound":
                bindings.append(binding_row(event, block_times[event.block_number]))
            elif event.name == "AccountUnbound":
                unbindings.append(unbinding(event))
            elif event.name == "SubjectsRelated":
                relations.append(relation_row(event, block_times[event.block_number]))
            elif event.name == "PaymentSignalFiled":
                signals.append(signal_row(event, block_times[event.block_number]))
        elif event.contract == CREDIT_CONTRACT and event.name == "RecordIssued":
            record = event.args["record"]
            if int(record[0]) == Kind.BLACKLIST:
                blacklists.append((event, hex32(to_bytes(record[1], "subject"))))
    upsert(connection, BINDINGS, bindings, update=False)
    upsert(connection, SIGNALS, signals, update=False)
    upsert(connection, RELATIONS, relations, update=False)
    for u in unbindings:  # in chain order: each ends the one binding of its pair open before it
        connection.execute(
            update(BINDINGS)
            .where(
                BINDINGS.c.subject == u["subject"], BINDINGS.c.account_hash == u["account_hash"],
                BINDINGS.c.unbound_by.is_(None), _before(BINDINGS, u["at"]),
            )
            .values(unbound_by=u["id"], unbound_at=u["unbound_at"], unbound_block=u["at"][0], unbound_tx=u["tx_hash"])
        )  # fmt: skip
    if not bindings and not blacklists:
        return len(signals) + len(unbindings) + len(relations)
    alerts: list[dict[str, Any]] = []
    for row in bindings:
        alerts.extend(_binding_alerts(connection, row))
    bound = _bound_subjects(connection, sorted({subject for _, subject in blacklists}))
    for event, subject in blacklists:
        if subject in bound:  # most blacklisted subjects have no binding: one query for the whole range
            alerts.extend(_blacklist_alerts(connection, event, subject, block_times[event.block_number]))
    upsert(connection, ALERTS, alerts, update=False)
    return len(bindings) + len(unbindings) + len(relations) + len(signals) + len(alerts)


def binding_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``payment_binding`` row of an ``AccountBound`` event."""
    m = REGISTRY.from_event(BINDING.name, event.args["binding"])
    return {
        "id": event.args["id"], "payment": hex32(m["payment"]), "subject": hex32(m["subject"]),
        "subject_code": subject_code(m["subject"]), "account_hash": hex32(m["accountHash"]), "bound_at": m["boundAt"],
        "nonce": str(m["nonce"]), "unbound_by": None, "unbound_at": None, "unbound_block": None, "unbound_tx": None,
        **signed_place(event, block_time),
    }  # fmt: skip


def unbinding(event: DecodedEvent) -> dict[str, Any]:
    """What an ``AccountUnbound`` event changes: the pair, the unbinding's id and time, and where it is."""
    m = REGISTRY.from_event(UNBINDING.name, event.args["unbinding"])
    return {
        "id": event.args["id"], "subject": hex32(m["subject"]), "account_hash": hex32(m["accountHash"]),
        "unbound_at": m["unboundAt"], "at": (event.block_number, event.log_index), "tx_hash": event.tx_hash,
    }  # fmt: skip


def relation_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``payment_relation`` row of a ``SubjectsRelated`` event (the pair in 0x-hex order)."""
    m = REGISTRY.from_event(RELATION.name, event.args["relation"])
    first, second = sorted((hex32(m["subject"]), hex32(m["related"])))
    return {
        "id": event.args["id"], "declarant": hex32(m["declarant"]), "subject_a": first, "subject_b": second,
        **signed_place(event, block_time),
    }  # fmt: skip


def signal_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``payment_signal`` row of a ``PaymentSignalFiled`` event."""
    m = REGISTRY.from_event(SIGNAL.name, event.args["signal"])
    return {
        "id": event.args["id"], "payment": hex32(m["payment"]), "merchant": hex32(m["merchant"]), "month": m["month"],
        "orders": m["orders"], "refund_bps": m["refundBps"], "chargeback_bps": m["chargebackBps"],
        "nonce": str(m["nonce"]), **signed_place(event, block_time),
    }  # fmt: skip


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` did: their bindings, signals, the alerts their events raised, and their
    unbindings of older bindings."""
    for table in TABLES:
        connection.execute(delete(table).where(table.c.block_number > above))
    reopened = dict.fromkeys(("unbound_by", "unbound_at", "unbound_block", "unbound_tx"))
    connection.execute(update(BINDINGS).where(BINDINGS.c.unbound_block > above).values(**reopened))


# alerts


def _before(table: Any, at: Position) -> ColumnElement[bool]:
    """Rows of ``table`` earlier in the chain than position ``at`` (block number, log index)."""
    block, log_index = at
    return or_(table.c.block_number < block, and_(table.c.block_number == block, table.c.log_index < log_index))


def _bound_subjects(connection: Connection, subjects: Sequence[str]) -> set[str]:
    """Those of ``subjects`` with at least one binding in the index."""
    found: set[str] = set()
    for chunk in chunks(subjects):
        found.update(connection.execute(select(BINDINGS.c.subject).where(BINDINGS.c.subject.in_(chunk))).scalars())
    return found


def _bindings_of(connection: Connection, account: str, at: Position) -> list[RowMapping]:
    """The bindings of ``account`` before ``at``, in chain order."""
    query = (
        select(BINDINGS.c.id, BINDINGS.c.subject)
        .where(BINDINGS.c.account_hash == account, _before(BINDINGS, at))
        .order_by(BINDINGS.c.block_number, BINDINGS.c.log_index)
    )
    return list(connection.execute(query).mappings())


def _related_to(connection: Connection, subject: str, at: Position) -> set[str]:
    """The subjects declared related to ``subject`` before ``at``."""
    query = select(RELATIONS.c.subject_a, RELATIONS.c.subject_b).where(
        or_(RELATIONS.c.subject_a == subject, RELATIONS.c.subject_b == subject), _before(RELATIONS, at)
    )
    return {b if a == subject else a for a, b in connection.execute(query)}


def _blacklist_records(connection: Connection, subjects: Sequence[str], at: Position) -> list[RowMapping]:
    """The BLACKLIST records of ``subjects`` before ``at``, in chain order."""
    if not subjects:
        return []
    query = (
        select(RECORDS.c.id, RECORDS.c.subject)
        .where(RECORDS.c.kind == _BLACKLIST, RECORDS.c.subject.in_(list(subjects)), _before(RECORDS, at))
        .order_by(RECORDS.c.block_number, RECORDS.c.log_index)
    )
    return list(connection.execute(query).mappings())


def _alert(
    kind: str,
    raised_by: str,
    account: str,
    subject: str,
    subjects: Iterable[str],
    bindings: Iterable[str],
    records: Iterable[str],
    where: Mapping[str, Any],
    salt: bytes = b"",
) -> dict[str, Any]:
    return {
        "id": "0x" + keccak(kind.encode() + bytes.fromhex(raised_by[2:]) + salt).hex(),
        "kind": kind, "account_hash": account, "subject": subject, "subjects": list(dict.fromkeys(subjects)),
        "bindings": list(dict.fromkeys(bindings)), "records": list(dict.fromkeys(records)), "raised_by": raised_by,
        "block_number": where["block_number"], "block_time": where["block_time"], "tx_hash": where["tx_hash"],
        "log_index": where["log_index"],
    }  # fmt: skip


def _binding_alerts(connection: Connection, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The alerts a new binding raises, judged against what came before it."""
    at = (row["block_number"], row["log_index"])
    subject, account = row["subject"], row["account_hash"]
    earlier = _bindings_of(connection, account, at)
    others = [b for b in earlier if b["subject"] != subject]
    if not others or len(others) < len(earlier):  # a pair bound again after an unbinding is nothing new
        return []
    related = _related_to(connection, subject, at)
    unrelated = [b for b in others if b["subject"] not in related]
    alerts = []
    if unrelated:
        alerts.append(
            _alert(
                SHARED_ACCOUNT, row["id"], account, subject, [subject, *(b["subject"] for b in unrelated)],
                [row["id"], *(b["id"] for b in unrelated)], [], row,
            )
        )  # fmt: skip
    records = _blacklist_records(connection, sorted({b["subject"] for b in others}), at)
    if records:
        listed = {r["subject"] for r in records}
        alerts.append(
            _alert(
                BLACKLIST_REAPPEARANCE, row["id"], account, subject,
                [subject, *(b["subject"] for b in others if b["subject"] in listed)],
                [row["id"], *(b["id"] for b in others if b["subject"] in listed)], [r["id"] for r in records], row,
            )
        )  # fmt: skip
    return alerts


def _blacklist_alerts(
    connection: Connection, event: DecodedEvent, subject: str, block_time: int
) -> list[dict[str, Any]]:
    """The alerts a subject's first BLACKLIST record raises: its accounts already bound to other subjects too."""
    at = (event.block_number, event.log_index)
    if _blacklist_records(connection, [subject], at):
        return []  # not the first: bindings since the first were judged when they came
    own = connection.execute(
        select(BINDINGS.c.id, BINDINGS.c.account_hash)
        .where(BINDINGS.c.subject == subject, _before(BINDINGS, at))
        .order_by(BINDINGS.c.block_number, BINDINGS.c.log_index)
    ).mappings()
    where = {"block_number": event.block_number, "block_time": block_time, "tx_hash": event.tx_hash,
             "log_index": event.log_index}  # fmt: skip
    alerts = []
    for binding in own:
        account = binding["account_hash"]
        others = [b for b in _bindings_of(connection, account, at) if b["subject"] != subject]
        if others:
            alerts.append(
                _alert(
                    BLACKLIST_REAPPEARANCE, event.args["id"], account, subject,
                    [subject, *(b["subject"] for b in others)], [binding["id"], *(b["id"] for b in others)],
                    [event.args["id"]], where, salt=bytes.fromhex(account[2:]),
                )
            )  # fmt: skip
    return alerts
