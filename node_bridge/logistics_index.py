"""LogisticsRegistry events → ``logistics_firm``, ``logistics_courier``, ``logistics_evaluation``, ``logistics_rule``.

All four are append-only on chain (the contract refuses a second registration of a firm, a second evaluation of the
same evaluator, firm and month, and rule versions out of order), so the projection needs no working set: each event
inserts one row, keyed by its message id (a firm by its subject id, a rule by its version). Replaying a range changes
nothing (inserts ignore existing keys). A reorg rollback to block N deletes the rows of blocks above N
(:func:`rollback`); what the new chain carries is indexed again with its new blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete

from node_bridge.credit import subject_code
from node_bridge.eip712 import hex32
from node_bridge.events import DecodedEvent
from node_bridge.logistics import CONTRACT, EVENTS, REGISTRY
from node_bridge.logistics_models import LogisticsCourier, LogisticsEvaluation, LogisticsFirm, LogisticsRule
from node_bridge.projections import signed_place, table_of, upsert

FIRMS = table_of(LogisticsFirm)
COURIERS = table_of(LogisticsCourier)
EVALUATIONS = table_of(LogisticsEvaluation)
RULES = table_of(LogisticsRule)
TABLES = (FIRMS, COURIERS, EVALUATIONS, RULES)

FEED = {
    "FirmRegistered": "logistics_firm",
    "CourierRegistered": "logistics_courier",
    "EvaluationRecorded": "logistics_evaluation",
    "RulePublished": "logistics_rule",
}
"""Change feed item type of each event."""
FEED_ROLES: int | None = None
"""Every member may see these items (firms, evaluations and rules are what platforms check before onboarding)."""


def message(event: DecodedEvent) -> dict[str, Any]:
    """The signed message an event carries (JSON values: 0x-hex bytes, integers)."""
    type_name, argument = EVENTS[event.name]
    return REGISTRY.from_event(type_name, event.args[argument])


def firm_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"firm": hex32(m["firm"]), "code": subject_code(m["firm"]), "id": event.args["id"],
            "registrar": hex32(m["registrar"]), **signed_place(event, block_time)}  # fmt: skip


def courier_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"id": event.args["id"], "courier": hex32(m["courier"]), "firm": hex32(m["firm"]),
            "registrar": hex32(m["registrar"]), **signed_place(event, block_time)}  # fmt: skip


def evaluation_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {
        "id": event.args["id"], "evaluator": hex32(m["evaluator"]), "firm": hex32(m["firm"]), "period": m["period"],
        "parcels": m["parcels"], "on_time_bps": m["onTimeBps"], "loss_damage_bps": m["lossDamageBps"],
        "complaints_per_10k": m["complaintsPer10k"], "violations": m["violations"], "sanctions": m["sanctions"],
        **signed_place(event, block_time),
    }  # fmt: skip


def rule_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"version": m["version"], "rule_hash": hex32(m["ruleHash"]), "id": event.args["id"],
            "publisher": hex32(m["publisher"]), **signed_place(event, block_time)}  # fmt: skip


_ROWS = {
    "FirmRegistered": (FIRMS, firm_row),
    "CourierRegistered": (COURIERS, courier_row),
    "EvaluationRecorded": (EVALUATIONS, evaluation_row),
    "RulePublished": (RULES, rule_row),
}


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new LogisticsRegistry events (chain order); ``block_times`` maps their blocks to timestamps."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _ROWS}
    for event in events:
        if event.contract != CONTRACT or event.name not in _ROWS:
            continue
        rows[event.name].append(_ROWS[event.name][1](event, block_times[event.block_number]))
    for name, (table, _) in _ROWS.items():
        upsert(connection, table, rows[name], update=False)
    return sum(len(r) for r in rows.values())


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` recorded."""
    for table in TABLES:
        connection.execute(delete(table).where(table.c.block_number > above))
