"""Consortium events → the queryable tables: member, member_key, proposal, proposal_approval, chain_parameter.

Design (current-state rows, recomputed on rollback):

- These tables hold one row per entity, as the chain last said (what the API reads). Every decoded event is also
  kept in ``chain_event``, and each event touches exactly one entity (:func:`entity_of`): a member (MemberAdmitted,
  -Suspended, -Reinstated, -Removed, -RolesChanged), a key (KeyAdded, KeyRevoked), a proposal with its approvals
  (ProposalCreated, -Approved, -Executed) or a parameter (ThresholdChanged → ``threshold``).
- Going forward, :func:`project` applies a range's events in (block, log index) order to a working set: the rows
  of the entities they touch, loaded in one query per table (none for an entity the range creates), then upserted
  in bulk. The indexer passes only events that are new to ``chain_event``, so each event is applied exactly once
  (approvals are counted, not recomputed) and replaying a range changes nothing.
- On a reorg, the indexer deletes the events above the common ancestor; :func:`recompute` then deletes the rows of
  every entity those events touched and rebuilds them from the entity's remaining events with the same
  :func:`apply`. No history table is needed and a rollback costs only the entities it touches.

``member.updated_block`` is the block of the member's last membership event (admission, status or roles); key
changes show in ``member_key``. The proposer's signature counts as the first approval: ProposalCreated gives
``approvals = 1`` and a ``proposal_approval`` row for the proposer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from sqlalchemy import JSON, Connection, Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from node_bridge.consortium import Action, MemberStatus
from node_bridge.events import DecodedEvent
from node_bridge.models import ChainEvent, ChainParameter, Member, MemberKey, Proposal, ProposalApproval

CONTRACT = "Consortium"
log = logging.getLogger(__name__)


def table_of(model: type[SQLModel]) -> Table:
    """The SQLAlchemy Core table of a sqlmodel table class."""
    return model.metadata.tables[str(model.__tablename__)]


MEMBERS = table_of(Member)
KEYS = table_of(MemberKey)
PROPOSALS = table_of(Proposal)
APPROVALS = table_of(ProposalApproval)
PARAMETERS = table_of(ChainParameter)
EVENTS = table_of(ChainEvent)
IN_CHUNK = 500
to_json = json.JSONEncoder(separators=(",", ":")).encode

# entity kind -> (events that touch it, the argument naming the entity, events that create it)
KINDS: dict[str, tuple[frozenset[str], str | None, frozenset[str]]] = {
    "member": (
        frozenset({"MemberAdmitted", "MemberSuspended", "MemberReinstated", "MemberRemoved", "MemberRolesChanged"}),
        "member",
        frozenset({"MemberAdmitted"}),
    ),
    "key": (frozenset({"KeyAdded", "KeyRevoked"}), "key", frozenset({"KeyAdded"})),
    "proposal": (
        frozenset({"ProposalCreated", "ProposalApproved", "ProposalExecuted"}),
        "proposalId",
        frozenset({"ProposalCreated"}),
    ),
    "parameter": (frozenset({"ThresholdChanged"}), None, frozenset()),
}
_KIND_OF = {name: kind for kind, (names, _, _) in KINDS.items() for name in names}

Entity = tuple[str, str]
"""(kind, key): ("member", id) · ("key", address) · ("proposal", id) · ("parameter", name)."""


class EventLike(Protocol):
    """What :func:`apply` needs of an event (a :class:`DecodedEvent` or a :class:`Change`)."""

    @property
    def name(self) -> str: ...
    @property
    def args(self) -> dict[str, Any]: ...
    @property
    def block_number(self) -> int: ...
    @property
    def log_index(self) -> int: ...


class Change(NamedTuple):
    """An event as read back from ``chain_event``."""

    name: str
    args: dict[str, Any]
    block_number: int
    log_index: int


def entity_of(name: str, args: dict[str, Any]) -> Entity | None:
    """The one entity an event touches, None for events that project nowhere (e.g. BatchCallFailed)."""
    kind = _KIND_OF.get(name)
    if kind is None:
        return None
    arg = KINDS[kind][1]
    return (kind, "threshold") if arg is None else (kind, str(args[arg]))


@dataclass
class WorkingSet:
    """Rows (as dicts) of the entities a batch touches, keyed like their primary keys."""

    member: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: dict[str, dict[str, Any]] = field(default_factory=dict)
    proposal: dict[str, dict[str, Any]] = field(default_factory=dict)
    parameter: dict[str, dict[str, Any]] = field(default_factory=dict)
    approval: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    skipped: list[EventLike] = field(default_factory=list)


def apply(state: WorkingSet, event: EventLike) -> None:
    """Apply one event to the working set (pure: no I/O). Events about unknown entities are kept in ``skipped``."""
    handler = _HANDLERS.get(event.name)
    if handler is not None and handler(state, event.args, event.block_number) is False:
        state.skipped.append(event)


def _admitted(state: WorkingSet, a: dict[str, Any], block: int) -> None:
    state.member[a["member"]] = {
        "id": a["member"], "name": a["name"], "roles": a["roles"], "status": ACTIVE,
        "admitted_block": block, "updated_block": block,
    }  # fmt: skip


def _standing(status: str) -> Handler:
    def handle(state: WorkingSet, a: dict[str, Any], block: int) -> bool:
        member = state.member.get(a["member"])
        if member is None:
            return False
        member.update(status=status, updated_block=block)
        return True

    return handle


def _roles_changed(state: WorkingSet, a: dict[str, Any], block: int) -> bool:
    member = state.member.get(a["member"])
    if member is None:
        return False
    member.update(roles=a["newRoles"], updated_block=block)
    return True


def _key_added(state: WorkingSet, a: dict[str, Any], block: int) -> None:
    state.key[a["key"]] = {
        "address": a["key"], "member_id": a["member"], "active": True, "added_block": block,
        "revoked_block": None, "revoked_by_self": None,
    }  # fmt: skip


def _key_revoked(state: WorkingSet, a: dict[str, Any], block: int) -> bool:
    key = state.key.get(a["key"])
    if key is None:
        return False
    key.update(active=False, revoked_block=block, revoked_by_self=a["bySelf"])
    return True


def _threshold_changed(state: WorkingSet, a: dict[str, Any], block: int) -> None:
    state.parameter["threshold"] = {"name": "threshold", "value": str(a["newThreshold"]), "updated_block": block}


def _proposal_created(state: WorkingSet, a: dict[str, Any], block: int) -> None:
    pid, proposer, signer = a["proposalId"], a["proposer"], a["signer"]
    action = a["action"]
    state.proposal[pid] = {
        "id": pid, "action": ACTION_NAMES.get(action, str(action)), "member_id": a["member"],
        "payload": a["payload"], "proposer_id": proposer, "signer": signer, "expires_at": int(a["expiresAt"]),
        "created_block": block, "approvals": 1, "executed": False, "executed_block": None,
    }  # fmt: skip
    state.approval[(pid, proposer)] = {
        "proposal_id": pid,
        "member_id": proposer,
        "signer": signer,
        "block_number": block,
    }


def _proposal_approved(state: WorkingSet, a: dict[str, Any], block: int) -> bool:
    pid, approver = a["proposalId"], a["approver"]
    proposal = state.proposal.get(pid)
    if proposal is None:
        return False
    proposal["approvals"] += 1
    state.approval[(pid, approver)] = {
        "proposal_id": pid, "member_id": approver, "signer": a["signer"], "block_number": block,
    }  # fmt: skip
    return True


def _proposal_executed(state: WorkingSet, a: dict[str, Any], block: int) -> bool:
    proposal = state.proposal.get(a["proposalId"])
    if proposal is None:
        return False
    proposal.update(executed=True, executed_block=block)
    return True


Handler = Callable[[WorkingSet, dict[str, Any], int], "bool | None"]
ACTIVE = MemberStatus.ACTIVE.name.lower()
ACTION_NAMES = {int(action): action.name for action in Action}
_HANDLERS: dict[str, Handler] = {
    "MemberAdmitted": _admitted,
    "MemberSuspended": _standing(MemberStatus.SUSPENDED.name.lower()),
    "MemberReinstated": _standing(ACTIVE),
    "MemberRemoved": _standing(MemberStatus.REMOVED.name.lower()),
    "MemberRolesChanged": _roles_changed,
    "KeyAdded": _key_added,
    "KeyRevoked": _key_revoked,
    "ThresholdChanged": _threshold_changed,
    "ProposalCreated": _proposal_created,
    "ProposalApproved": _proposal_approved,
    "ProposalExecuted": _proposal_executed,
}


# SQL side


def upsert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]], *, update: bool = True) -> None:
    """Insert ``rows`` in bulk; on a primary-key conflict overwrite the other columns (or keep the row)."""
    if not rows:
        return
    columns, json_at = _columns(table)
    getter = itemgetter(*columns)
    values: list[tuple[Any, ...]] = [getter(row) for row in rows]
    if json_at:
        for index, row in enumerate(values):
            serialised = list(row)
            for at in json_at:
                serialised[at] = to_json(serialised[at])
            values[index] = tuple(serialised)
    upsert_values(connection, table, values, update=update)


def upsert_values(connection: Connection, table: Table, values: list[tuple[Any, ...]], *, update: bool = True) -> None:
    """:func:`upsert` of rows given as tuples in the table's column order, JSON columns already serialised.

    The driver's executemany runs one ``INSERT ... ON CONFLICT`` (SQLite and PostgreSQL share the syntax), without
    SQLAlchemy's per-row parameter processing, which would cost more than the database does. (On PostgreSQL,
    psycopg pipelines executemany; multi-row VALUES and unnest() measured slower here.)
    """
    if values:
        connection.exec_driver_sql(_upsert_sql(connection.dialect.name, table, update), values)


@cache
def _columns(table: Table) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The table's columns in order, and the positions of its JSON columns."""
    columns = tuple(c.name for c in table.columns)
    return columns, tuple(n for n, c in enumerate(table.columns) if isinstance(c.type, JSON))


@cache
def _upsert_sql(dialect: str, table: Table, update: bool) -> str:
    """The upsert of one row into ``table`` for ``dialect``, for executemany."""
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"upserts are written for SQLite and PostgreSQL, not {dialect}")
    preparer = (sqlite.dialect if dialect == "sqlite" else postgresql.dialect)().identifier_preparer
    columns, json_at = _columns(table)
    marker = "?" if dialect == "sqlite" else "%s"
    row = [f"CAST({marker} AS JSON)" if n in json_at and dialect != "sqlite" else marker for n in range(len(columns))]
    keys = [c.name for c in table.primary_key.columns]
    others = [c for c in columns if c not in keys]
    conflict = f"ON CONFLICT ({', '.join(preparer.quote(k) for k in keys)}) "
    if update and others:
        conflict += "DO UPDATE SET " + ", ".join(f"{preparer.quote(c)} = excluded.{preparer.quote(c)}" for c in others)
    else:
        conflict += "DO NOTHING"
    return (
        f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.quote(c) for c in columns)}) "
        f"VALUES ({', '.join(row)}) {conflict}"
    )


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def signed_place(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The columns of a row projected from a member-signed message's event: the key that signed it and where the
    event is on chain. Every registry's rows carry them alike, so that a reorg rollback finds them by block and the
    API cites them the same way."""
    return {"signer": event.args["signer"], "block_number": event.block_number, "block_time": block_time,
            "tx_hash": event.tx_hash, "log_index": event.log_index}  # fmt: skip


_TABLE_OF = {"member": MEMBERS, "key": KEYS, "proposal": PROPOSALS, "parameter": PARAMETERS}


def _load(connection: Connection, state: WorkingSet, kind: str, keys: Sequence[str]) -> None:
    table = _TABLE_OF[kind]
    column = table.primary_key.columns.values()[0]
    target: dict[str, dict[str, Any]] = getattr(state, kind)
    for chunk in chunks(sorted(keys)):
        for row in connection.execute(select(table).where(column.in_(chunk))).mappings():
            target[row[column.name]] = dict(row)


def project(connection: Connection, events: Iterable[DecodedEvent]) -> WorkingSet:
    """Apply new Consortium events (in chain order) to the tables, in bulk; returns the working set written."""
    changes = [e for e in events if e.contract == CONTRACT]
    state = WorkingSet()
    if not changes:
        return state
    wanted: dict[str, set[str]] = {kind: set() for kind in KINDS}
    created: set[Entity] = set()
    for change in changes:
        entity = entity_of(change.name, change.args)
        if entity is None or entity in created:
            continue
        if change.name in KINDS[entity[0]][2]:
            created.add(entity)
        else:
            wanted[entity[0]].add(entity[1])
    for kind, keys in wanted.items():
        _load(connection, state, kind, list(keys))
    for change in changes:
        apply(state, change)
    if state.skipped:
        log.warning("%d events name entities the index does not hold, e.g. %s", len(state.skipped), state.skipped[0])
    write(connection, state)
    return state


def write(connection: Connection, state: WorkingSet) -> None:
    """Upsert every row of the working set."""
    upsert(connection, MEMBERS, list(state.member.values()))
    upsert(connection, KEYS, list(state.key.values()))
    upsert(connection, PROPOSALS, list(state.proposal.values()))
    upsert(connection, APPROVALS, list(state.approval.values()))
    upsert(connection, PARAMETERS, list(state.parameter.values()))


def touched(changes: Iterable[tuple[str, dict[str, Any]]]) -> set[Entity]:
    """The entities a set of (event name, args) touch."""
    return {entity for name, args in changes if (entity := entity_of(name, args)) is not None}


def recompute(connection: Connection, chain_id: int, entities: Iterable[Entity]) -> WorkingSet:
    """Delete the rows of ``entities`` and rebuild them from their events still in ``chain_event``."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind, key in entities:
        by_kind[kind].append(key)
    changes: list[EventLike] = []
    for kind, keys in by_kind.items():
        if not keys:
            continue
        _delete(connection, kind, keys)
        changes.extend(_events_of(connection, chain_id, kind, keys))
    changes.sort(key=lambda c: (c.block_number, c.log_index))
    state = WorkingSet()
    for change in changes:
        apply(state, change)
    write(connection, state)
    return state


def _delete(connection: Connection, kind: str, keys: Sequence[str]) -> None:
    table = _TABLE_OF[kind]
    column = table.primary_key.columns.values()[0]
    for chunk in chunks(sorted(keys)):
        if kind == "proposal":
            connection.execute(delete(APPROVALS).where(APPROVALS.c.proposal_id.in_(chunk)))
        connection.execute(delete(table).where(column.in_(chunk)))


def _events_of(connection: Connection, chain_id: int, kind: str, keys: Sequence[str]) -> Iterator[Change]:
    names, arg, _ = KINDS[kind]
    base = select(EVENTS.c.name, EVENTS.c.args, EVENTS.c.block_number, EVENTS.c.log_index).where(
        EVENTS.c.chain_id == chain_id, EVENTS.c.contract == CONTRACT, EVENTS.c.name.in_(sorted(names))
    )
    queries = [base] if arg is None else [base.where(EVENTS.c.args[arg].as_string().in_(c)) for c in chunks(keys)]
    for query in queries:
        for name, args, block_number, log_index in connection.execute(query):
            yield Change(name, dict(args), int(block_number), int(log_index))
