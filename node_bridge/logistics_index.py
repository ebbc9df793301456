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
from node_bridge.events import DecodedEvent
from node_bridge.logistics import CONTRACT, EVENTS, REGISTRY
from node_bridge.logistics_models import LogisticsCourier, LogisticsEvaluation, LogisticsFirm, LogisticsRule
from node_bridge.projections import table_of, upsert

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


def _place(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    return {"signer": event.args["signer"], "block_number": event.block_number, "block_time": block_time,
            "tx_hash": event.tx_hash, "log_index": event.log_index}  # fmt: skip


def firm_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"firm": _hex(m["firm"]), "code": subject_code(m["firm"]), "id": event.args["id"],
            "registrar": _hex(m["registrar"]), **_place(event, block_time)}  # fmt: skip


def courier_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"id": event.args["id"], "courier": _hex(m["courier"]), "firm": _hex(m["firm"]),
            "registrar": _hex(m["registrar"]), **_place(event, block_time)}  # fmt: skip


def evaluation_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {
        "id": event.args["id"], "evaluator": _hex(m["evaluator"]), "firm": _hex(m["firm"]), "period": m["period"],
        "parcels": m["parcels"], "on_time_bps": m["onTimeBps"], "loss_damage_bps": m["lossDamageBps"],
        "complaints_per_10k": m["complaintsPer10k"], "violations": m["violations"], "sanctions": m["sanctions"],
        **_place(event, block_time),
    }  # fmt: skip


def rule_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    m = message(event)
    return {"version": m["version"], "rule_hash": _hex(m["ruleHash"]), "id": event.args["id"],
            "publisher": _hex(m["publisher"]), **_place(event, block_time)}  # fmt: skip


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


def _hex(value: bytes) -> str:
    return "0x" + value.hex()
