"""SupervisionRegistry events → ``supervision_entry``, ``supervision_joint_decision``, ``supervision_joint_signature``.

Entries and signatures are append-only, so the projection needs no working set:

- ``CaseEntryRecorded`` inserts an entry row with every signed field and the ``late`` flag the contract computed;
- ``JointDecisionSigned`` inserts the decision row on its first signature (the event carries the whole signed
  decision every time, so any one of them is enough) and a signature row;
- ``JointDecisionActive`` marks the decision active.

Replaying a range changes nothing (inserts ignore existing keys; activation writes the same values again). A reorg
rollback to block N deletes entries, signatures and decisions first signed above N, and clears activations above N.

The change feed (:data:`FEED`) carries these events to regulators and auditors only (:data:`FEED_ROLES`): a case
is not for platforms or the public, and even its existence on a subject would tell them something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, delete, update

from node_bridge.consortium import Role
from node_bridge.eip712 import hex32
from node_bridge.events import DecodedEvent
from node_bridge.projections import signed_place, table_of, upsert
from node_bridge.supervision import CONTRACT, REGISTRY, Action
from node_bridge.supervision_models import SupervisionEntry, SupervisionJointDecision, SupervisionJointSignature

ENTRIES = table_of(SupervisionEntry)
DECISIONS = table_of(SupervisionJointDecision)
SIGNATURES = table_of(SupervisionJointSignature)
TABLES = (ENTRIES, DECISIONS, SIGNATURES)

FEED = {
    "CaseEntryRecorded": "supervision_case_entry",
    "JointDecisionSigned": "supervision_joint_signed",
    "JointDecisionActive": "supervision_joint_active",
}
"""Change-feed item type of each event."""
FEED_ROLES: int | None = int(Role.REGULATOR | Role.AUDITOR)
"""Only regulators and auditors see supervision items in the feed."""


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new SupervisionRegistry events (chain order); ``block_times`` maps their blocks to timestamps."""
    entries: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    signatures: list[dict[str, Any]] = []
    activations: list[dict[str, Any]] = []
    for event in events:
        if event.contract != CONTRACT:
            continue
        when = block_times[event.block_number]
        if event.name == "CaseEntryRecorded":
            entries.append(entry_row(event, when))
        elif event.name == "JointDecisionSigned":
            decisions.append(decision_row(event))
            a = event.args
            signatures.append({
                "decision_id": a["id"], "department": a["department"], "remaining": int(a["remaining"]),
                **signed_place(event, when),
            })  # fmt: skip
        elif event.name == "JointDecisionActive":
            activations.append({"row": event.args["id"], "active": True, "active_block": event.block_number,
                                "active_time": when})  # fmt: skip
    upsert(connection, ENTRIES, entries, update=False)
    upsert(connection, DECISIONS, decisions, update=False)
    upsert(connection, SIGNATURES, signatures, update=False)
    if activations:  # after the inserts: the last signature and the activation share a transaction
        statement = update(DECISIONS).where(DECISIONS.c.id == bindparam("row"))
        values: dict[str, Any] = {name: bindparam(name) for name in ("active", "active_block", "active_time")}
        connection.execute(statement.values(values), activations)
    return len(entries) + len(signatures) + len(activations)


def entry_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``supervision_entry`` row of a ``CaseEntryRecorded`` event."""
    m = REGISTRY.from_event("CaseEntry", event.args["entry"])
    return {
        "id": event.args["id"], "case_id": hex32(m["caseId"]), "action": Action(m["action"]).slug,
        "department": hex32(m["department"]), "subject": hex32(m["subject"]), "counterpart": hex32(m["counterpart"]),
        "deadline": m["deadline"], "document_hash": hex32(m["documentHash"]), "note_hash": hex32(m["noteHash"]),
        "ref": hex32(m["ref"]), "at": m["at"], "nonce": str(m["nonce"]), "late": bool(event.args["late"]),
        **signed_place(event, block_time),
    }  # fmt: skip


def decision_row(event: DecodedEvent) -> dict[str, Any]:
    """The ``supervision_joint_decision`` row of a ``JointDecisionSigned`` event (not yet active)."""
    d = REGISTRY.from_event("JointDecision", event.args["decision"])
    return {
        "id": event.args["id"], "case_id": hex32(d["caseId"]), "subject": hex32(d["subject"]), "kind": d["kind"],
        "tier": d["tier"], "measures": d["measures"], "document_hash": hex32(d["documentHash"]),
        "effective_at": d["effectiveAt"], "valid_until": d["validUntil"],
        "departments": ",".join(hex32(x) for x in d["departments"]), "nonce": str(d["nonce"]),
        "first_block": event.block_number, "active": False, "active_block": None, "active_time": None,
    }  # fmt: skip


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` did: their entries, signatures, new decisions and activations."""
    connection.execute(delete(ENTRIES).where(ENTRIES.c.block_number > above))
    connection.execute(delete(SIGNATURES).where(SIGNATURES.c.block_number > above))
    connection.execute(delete(DECISIONS).where(DECISIONS.c.first_block > above))
    connection.execute(
        update(DECISIONS)
        .where(DECISIONS.c.active_block > above)
        .values(active=False, active_block=None, active_time=None)
    )
