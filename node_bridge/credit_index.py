"""CreditRegistry events → ``credit_record`` and ``enforcement``.

Records are append-only with one possible closure, so the projection needs no working set:

- ``RecordIssued`` inserts a row with every field of the signed record (the event carries them all);
- ``RecordRevoked`` / ``RecordRepaired`` fill the row's ``closed_*`` columns (the contract only closes records it
  accepted, so the row is there, in this range or an earlier one);
- ``EnforcementFiled`` inserts a receipt.

Replaying a range changes nothing (inserts ignore existing ids; a closure writes the same values again). A reorg
rollback to block N deletes rows accepted above N and clears closures made above N (:func:`rollback`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, update

from node_bridge.credit import CONTRACT, Kind, Relation, Tier, record_from_event, subject_code
from node_bridge.events import DecodedEvent
from node_bridge.models import CreditRecordRow, EnforcementRow
from node_bridge.projections import table_of, upsert

RECORDS = table_of(CreditRecordRow)
ENFORCEMENTS = table_of(EnforcementRow)
TABLES = (RECORDS, ENFORCEMENTS)
CLOSURES = {"RecordRevoked": "revoked", "RecordRepaired": "repaired"}


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new CreditRegistry events (chain order); ``block_times`` maps their blocks to timestamps."""
    records: list[dict[str, Any]] = []
    closures: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    for event in events:
        if event.contract != CONTRACT:
            continue
        when = block_times[event.block_number]
        if event.name == "RecordIssued":
            records.append(record_row(event, when))
        elif event.name in CLOSURES:
            a = event.args
            closures.append({
                "row": a["id"], "closed": CLOSURES[event.name], "closure_id": a["closureId"],
                "closed_reason": a["reason"], "closed_by": a["signer"], "closed_block": event.block_number,
                "closed_time": when, "closed_tx": event.tx_hash,
            })  # fmt: skip
        elif event.name == "EnforcementFiled":
            a = event.args
            receipts.append({
                "id": a["id"], "platform": a["platform"], "subject": a["subject"], "record_id": a["recordId"],
                "measure": a["measure"], "applied_at": a["appliedAt"], "signer": a["signer"],
                "block_number": event.block_number, "block_time": when, "tx_hash": event.tx_hash,
                "log_index": event.log_index,
            })  # fmt: skip
    upsert(connection, RECORDS, records, update=False)
    if closures:  # after the inserts: a record and its closure can share a range
        statement = update(RECORDS).where(RECORDS.c.id == bindparam("row"))
        columns: dict[str, Any] = {name: bindparam(name) for name in closures[0] if name != "row"}
        connection.execute(statement.values(columns), closures)
    upsert(connection, ENFORCEMENTS, receipts, update=False)
    return len(records) + len(closures) + len(receipts)


def record_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``credit_record`` row of a ``RecordIssued`` event."""
    record = record_from_event(event.args["record"])
    refers_to = record["refersTo"]
    return {
        "id": event.args["id"],
        "kind": Kind(record["kind"]).slug,
        "subject": "0x" + record["subject"].hex(),
        "subject_code": subject_code(record["subject"]),
        "issuer": "0x" + record["issuer"].hex(),
        "signer": event.args["signer"],
        "legal_basis": record["legalBasis"],
        "tier": Tier(record["tier"]).name.lower(),
        "measures": record["measures"],
        "document_hash": "0x" + record["documentHash"].hex(),
        "effective_at": record["effectiveAt"],
        "public_until": record["publicUntil"],
        "valid_until": record["validUntil"],
        "relation": Relation(record["relation"]).name.lower(),
        "refers_to": None if refers_to == bytes(32) else "0x" + refers_to.hex(),
        "nonce": str(record["nonce"]),
        "block_number": event.block_number,
        "block_time": block_time,
        "tx_hash": event.tx_hash,
        "log_index": event.log_index,
        "closed": None,
        "closure_id": None,
        "closed_reason": None,
        "closed_by": None,
        "closed_block": None,
        "closed_time": None,
        "closed_tx": None,
    }


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` did: their records and receipts, and their closures of older records."""
    connection.execute(delete(RECORDS).where(RECORDS.c.block_number > above))
    connection.execute(delete(ENFORCEMENTS).where(ENFORCEMENTS.c.block_number > above))
    cleared = dict.fromkeys(("closed", "closure_id", "closed_reason", "closed_by", "closed_block", "closed_time"))
    connection.execute(update(RECORDS).where(RECORDS.c.closed_block > above).values(closed_tx=None, **cleared))
