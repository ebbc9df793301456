"""ProtectionRegistry events → ``protection_fund_version``, ``protection_case_step`` and ``protection_case``.

- ``FundDeclared`` inserts a ``protection_fund_version`` row (id = the declaration's EIP-712 digest); a fund's
  current state is its highest version, so the history needs no working set.
- ``CaseStepRecorded`` inserts a ``protection_case_step`` row, and the cases it touches are recomputed from all
  their steps (:func:`recompute`): a case has a handful of steps, so rebuilding its row costs one query and keeps
  one code path for going forward and for rollback.

Replaying a range changes nothing (inserts ignore existing keys; recomputing gives the same rows). A reorg rollback
to block N deletes the versions and steps of blocks above N and recomputes the cases they touched (:func:`rollback`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from node_bridge.consortium import Role
from node_bridge.credit import subject_code
from node_bridge.eip712 import hex32
from node_bridge.events import DecodedEvent
from node_bridge.projections import chunks, signed_place, table_of, upsert
from node_bridge.protection import CONTRACT, REGISTRY, ZERO32, Step
from node_bridge.protection_models import CaseRow, CaseStepRow, FundVersionRow

FUND_VERSIONS = table_of(FundVersionRow)
STEPS = table_of(CaseStepRow)
CASES = table_of(CaseRow)
TABLES = (FUND_VERSIONS, STEPS, CASES)
FEED = {"FundDeclared": "protection_fund", "CaseStepRecorded": "protection_case_step"}
"""Change-feed item types of this registry's events."""
FEED_ROLES: int | None = int(Role.REGULATOR | Role.AUDITOR)
"""Who sees these feed items: case steps are the platform's and the supervisors' business (funds are public, but
``GET /v1/protection/funds`` serves them to everyone; the feed keeps one rule per registry)."""
ZERO_HEX = hex32(ZERO32)


def project(connection: Connection, events: Iterable[DecodedEvent], block_times: Mapping[int, int]) -> int:
    """Apply new ProtectionRegistry events (chain order); ``block_times`` maps their blocks to timestamps."""
    funds: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for event in events:
        if event.contract != CONTRACT:
            continue
        if event.name == "FundDeclared":
            funds.append(fund_row(event, block_times[event.block_number]))
        elif event.name == "CaseStepRecorded":
            steps.append(step_row(event, block_times[event.block_number]))
    upsert(connection, FUND_VERSIONS, funds, update=False)
    upsert(connection, STEPS, steps, update=False)
    recompute(connection, sorted({s["case_id"] for s in steps}))
    return len(funds) + len(steps)


def fund_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``protection_fund_version`` row of a ``FundDeclared`` event."""
    d = REGISTRY.from_event("FundDeclaration", event.args["declaration"])
    return {
        "id": event.args["id"], "fund_id": hex32(d["fundId"]), "version": d["version"],
        "platform": hex32(d["platform"]), "amount": d["amount"], "currency": d["currency"],
        "custodian": d["custodian"], "period_start": d["periodStart"], "period_end": d["periodEnd"],
        "nonce": str(d["nonce"]), **signed_place(event, block_time),
    }  # fmt: skip


def step_row(event: DecodedEvent, block_time: int) -> dict[str, Any]:
    """The ``protection_case_step`` row of a ``CaseStepRecorded`` event."""
    s = REGISTRY.from_event("CaseStep", event.args["step"])
    return {
        "id": event.args["id"], "case_id": hex32(s["caseId"]), "step": Step(s["step"]).name.lower(),
        "platform": hex32(s["platform"]), "merchant": hex32(s["merchant"]), "consumer": hex32(s["consumer"]),
        "amount": s["amount"], "due_by": s["dueBy"], "trace_code": hex32(s["traceCode"]),
        "decision": hex32(s["decision"]), "at": s["at"], "nonce": str(s["nonce"]), **signed_place(event, block_time),
    }  # fmt: skip


def case_row(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A case's row from its steps in chain order (the first is its complaint; the chain checked the rest)."""
    first = steps[0]
    case: dict[str, Any] = {
        "case_id": first["case_id"], "platform": first["platform"], "merchant": first["merchant"],
        "merchant_code": subject_code(bytes.fromhex(first["merchant"][2:])), "consumer": first["consumer"],
        "state": first["step"], "claimed": first["amount"], "compensated": 0, "recovered": 0,
        "due_by": first["due_by"], "opened_at": first["at"], "paid_at": None, "recovered_at": None,
        "closed_at": None, "last_at": first["at"], "trace_code": None, "decision": None, "steps": len(steps),
        "opened_block": first["block_number"], "updated_block": steps[-1]["block_number"],
    }  # fmt: skip
    for step in steps:
        case["state"], case["last_at"] = step["step"], step["at"]
        if step["step"] == "compensated":
            case["compensated"], case["paid_at"] = step["amount"], step["at"]
        elif step["step"] == "recovered":
            case["recovered"] += step["amount"]
            case["recovered_at"] = step["at"]
        elif step["step"] == "closed":
            case["closed_at"] = step["at"]
        if step["trace_code"] != ZERO_HEX and case["trace_code"] is None:
            case["trace_code"] = step["trace_code"]
        if step["decision"] != ZERO_HEX:
            case["decision"] = step["decision"]
    return case


def recompute(connection: Connection, case_ids: Sequence[str]) -> None:
    """Rebuild the ``protection_case`` rows of ``case_ids`` from their steps (deleting those left with none)."""
    for chunk in chunks(case_ids):
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        query = select(STEPS).where(STEPS.c.case_id.in_(chunk)).order_by(STEPS.c.block_number, STEPS.c.log_index)
        for row in connection.execute(query).mappings():
            by_case[row["case_id"]].append(dict(row))
        connection.execute(delete(CASES).where(CASES.c.case_id.in_([c for c in chunk if c not in by_case])))
        upsert(connection, CASES, [case_row(steps) for steps in by_case.values()])


def rollback(connection: Connection, above: int) -> None:
    """Forget what blocks above ``above`` did: their fund versions and case steps; recompute the cases touched."""
    touched = connection.execute(select(STEPS.c.case_id).where(STEPS.c.block_number > above).distinct()).scalars()
    case_ids = sorted(touched)
    connection.execute(delete(FUND_VERSIONS).where(FUND_VERSIONS.c.block_number > above))
    connection.execute(delete(STEPS).where(STEPS.c.block_number > above))
    recompute(connection, case_ids)
