"""``credtrace supervision …``: a department signs case entries and joint decisions with its own keystore.

Each writing verb (``open``, ``refer``, ``acknowledge``, ``evidence``, ``finding``, ``link-decision``, ``close``,
``joint-sign``) signs one EIP-712 message locally (the key never leaves the machine) and submits it through the API
with the department's API key; ``--out FILE`` writes the signed body instead, for review or a later
``credtrace supervision submit FILE``. Texts (summary, description, finding) are sent beside the entry; only their
keccak256 is signed and goes on chain. ``show`` and ``overdue`` read the case file and the dashboard.

A case is named by its reference (``SDAMR-2026-0017``, hashed into the case id) or by its 0x id.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from credtrace.cli_signing import (
    ApiKey,
    ApiUrl,
    Password,
    Signed,
    api_url,
    console,
    deliver,
    exit_on,
    fresh_nonce,
    member_bytes,
    parse_enum,
    parse_time,
    print_json,
    signer_id,
    submit_signed,
)
from credtrace.client import ApiError, CredtraceClient
from credtrace.errors import CredtraceError, ValidationFailed
from credtrace.keys import load_key
from credtrace.settings import get_settings
from node_bridge import credit
from node_bridge.credit import Kind, Tier
from node_bridge.eip712 import to_bytes, to_json
from node_bridge.supervision import REGISTRY, ZERO32, Action, case_id, note_hash

supervision_app = typer.Typer(
    help="Inter-department supervision: cases, referrals, evidence, findings, joint decisions.", no_args_is_help=True
)

Key = Annotated[str, typer.Option(help="Your department's keystore name in <data dir>/keys/.")]
Case = Annotated[str, typer.Option("--case", help="The case reference (e.g. SDAMR-2026-0017) or its 0x id.")]
Department = Annotated[
    str | None, typer.Option(help="Your department's credit code (default: the key's member in the local index).")
]
Out = Annotated[Path | None, typer.Option("--out", help="Write the signed body here instead of submitting it.")]
Nonce = Annotated[int | None, typer.Option(help="Unique per department (default: from the clock).")]


def _entry(
    action: Action,
    key: str,
    password: str,
    case: str,
    department: str | None,
    text: str | None,
    out: Path | None,
    api: str | None,
    api_key: str | None,
    nonce: int | None,
    **fields: Any,
) -> None:
    """Sign one case entry with ``key`` and submit it (or write it to ``out``)."""
    settings = get_settings()
    with exit_on(ApiError, CredtraceError, ValueError, OSError):
        account = load_key(settings.keys_dir, key, password)
        message = {
            "department": signer_id(settings, department, account.address), "caseId": case_id(case),
            "action": int(action), "subject": ZERO32, "counterpart": ZERO32, "deadline": 0, "documentHash": ZERO32,
            "noteHash": note_hash(text) if text else ZERO32, "ref": ZERO32, "at": int(time.time()),
            "nonce": fresh_nonce(nonce),
        }  # fmt: skip
        message.update(fields)
        with CredtraceClient(api_url(settings, api), api_key) as client:
            extra = {"text": text} if text else {}
            signed = Signed.sign(client.supervision_domain(), account, "CaseEntry", message, **extra)
            suffix = f"(case 0x{case_id(case).hex()})"
            deliver(signed, out, client.supervision_submit, label=action.slug,
                    line=lambda item: f"{item['id']} {action.slug} {item['status']} {suffix}")  # fmt: skip


@supervision_app.command("open")
def open_case(
    key: Key,
    password: Password,
    case: Case,
    subject: Annotated[str, typer.Option(help="The subject: a credit code, or a 0x commitment.")],
    summary: Annotated[str | None, typer.Option(help="What the case is about (kept off chain).")] = None,
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Open a case on a subject (your department is its opener)."""
    _entry(Action.OPEN, key, password, case, department, summary, out, api, api_key, nonce,
           subject=credit.subject_id(subject))  # fmt: skip


@supervision_app.command("refer")
def refer(
    key: Key,
    password: Password,
    case: Case,
    to: Annotated[str, typer.Option(help="The department referred to: its credit code or 0x member id.")],
    days: Annotated[float, typer.Option(help="Days it has to acknowledge.")] = 7,
    note: Annotated[str | None, typer.Option(help="What is asked of it (kept off chain).")] = None,
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Refer the case to another department, to acknowledge within ``--days``."""
    _entry(Action.REFER, key, password, case, department, note, out, api, api_key, nonce,
           counterpart=member_bytes(to, "--to"), deadline=int(time.time() + days * 86400))  # fmt: skip


@supervision_app.command("acknowledge")
def acknowledge(
    key: Key,
    password: Password,
    case: Case,
    referral: Annotated[str, typer.Option(help="The referral's entry id (see `credtrace supervision show`).")],
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Acknowledge a referral made to your department (late if past its deadline); you are then on the case."""
    _entry(Action.ACKNOWLEDGE, key, password, case, department, None, out, api, api_key, nonce,
           ref=to_bytes(referral, "--referral"))  # fmt: skip


@supervision_app.command("evidence")
def evidence(
    key: Key,
    password: Password,
    case: Case,
    document: Annotated[Path, typer.Option(help="The evidence document; its SHA-256 is signed, it stays with you.")],
    description: Annotated[str, typer.Option(help="What it shows (kept off chain).")],
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Add evidence: the hash of a document and its description."""
    digest = hashlib.sha256(document.read_bytes()).digest()
    _entry(Action.EVIDENCE, key, password, case, department, description, out, api, api_key, nonce,
           documentHash=digest)  # fmt: skip


@supervision_app.command("finding")
def finding(
    key: Key,
    password: Password,
    case: Case,
    text: Annotated[str, typer.Option(help="The finding (kept off chain).")],
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Record a finding."""
    _entry(Action.FINDING, key, password, case, department, text, out, api, api_key, nonce)


@supervision_app.command("link-decision")
def link_decision(
    key: Key,
    password: Password,
    case: Case,
    decision: Annotated[str, typer.Option(help="A credit record id on the case's subject, or a joint decision id.")],
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Link a decision taken under the case."""
    _entry(Action.LINK_DECISION, key, password, case, department, None, out, api, api_key, nonce,
           ref=to_bytes(decision, "--decision"))  # fmt: skip


@supervision_app.command("close")
def close(
    key: Key,
    password: Password,
    case: Case,
    summary: Annotated[str | None, typer.Option(help="The closing summary (kept off chain).")] = None,
    department: Department = None,
    out: Out = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Close the case (its opening department only); nothing is recorded on it after."""
    _entry(Action.CLOSE, key, password, case, department, summary, out, api, api_key, nonce)


@supervision_app.command("joint-sign")
def joint_sign(
    key: Key,
    password: Password,
    message: Annotated[
        Path | None, typer.Option(help="Sign this drafted decision (JSON saved by another department's --save).")
    ] = None,
    case: Annotated[str | None, typer.Option("--case", help="Draft: the case reference or 0x id.")] = None,
    subject: Annotated[str | None, typer.Option(help="Draft: the case's subject (credit code).")] = None,
    departments: Annotated[
        list[str] | None, typer.Option("--with", help="Draft: every department to sign (credit codes), repeatable.")
    ] = None,
    kind: Annotated[str, typer.Option(help="Draft: the decision's kind, e.g. blacklist.")] = "blacklist",
    tier: Annotated[str, typer.Option(help="Draft: minor, general or severe.")] = "severe",
    measures: Annotated[int, typer.Option(help="Draft: bits of the measure catalogue.")] = 0,
    document: Annotated[Path | None, typer.Option(help="Draft: the decision document (its SHA-256 is signed).")] = None,
    effective: Annotated[str | None, typer.Option(help="Draft: when it takes effect (default now).")] = None,
    valid_days: Annotated[float, typer.Option(help="Draft: days of validity (0: no end).")] = 730,
    save: Annotated[Path | None, typer.Option(help="Save the drafted message here for the other departments.")] = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    nonce: Nonce = None,
) -> None:
    """Sign a joint decision: draft it (--case, --subject, --with …, --save FILE) or sign a draft (--message FILE).

    Every named department signs the same message; it is active once all have."""
    settings = get_settings()
    with exit_on(ApiError, CredtraceError, ValueError, OSError):
        account = load_key(settings.keys_dir, key, password)
        if message is not None:
            decision = REGISTRY.normalise("JointDecision", json.loads(message.read_text()))
        else:
            if not (case and subject and departments):
                raise ValidationFailed("--case/--subject/--with", "a draft needs the case, subject and departments")
            start = parse_time(effective, "--effective") or int(time.time())
            decision = {
                "caseId": case_id(case), "subject": credit.subject_id(subject),
                "kind": int(parse_enum(Kind, kind, "--kind")), "tier": int(parse_enum(Tier, tier, "--tier")),
                "measures": measures,
                "documentHash": hashlib.sha256(document.read_bytes()).digest() if document else ZERO32,
                "effectiveAt": start, "validUntil": start + int(valid_days * 86400) if valid_days else 0,
                "departments": [member_bytes(d, "--with") for d in departments],
                "nonce": fresh_nonce(nonce),
            }  # fmt: skip
        if save:
            save.write_text(json.dumps(to_json(decision), indent=2) + "\n")
            console.print(f"draft saved to {save}: the other departments run `joint-sign --message {save}`")
        with CredtraceClient(api_url(settings, api), api_key) as client:
            signed = Signed.sign(client.supervision_domain(), account, "JointDecision", decision)
            accepted = client.joint_sign(signed.body)
    typer.echo(f"{accepted['decision_id']} signature {accepted['id']} {accepted['status']}")


@supervision_app.command("submit")
def submit(
    files: Annotated[list[Path], typer.Argument(help="Signed entries written with --out.")],
    api: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Submit signed case entries written earlier with ``--out``."""
    settings = get_settings()
    submit_signed(files, lambda: CredtraceClient(api_url(settings, api), api_key), CredtraceClient.supervision_submit,
                  line=lambda item: f"{item['id']} {item['status']}")  # fmt: skip


@supervision_app.command("show")
def show(
    case: Annotated[str | None, typer.Argument(help="A case reference or 0x id; none lists your cases.")] = None,
    api: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """A case's shared timeline (JSON), or the list of the cases you may see."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.case("0x" + case_id(case).hex()) if case else client.cases()
    print_json(answer)


@supervision_app.command("overdue")
def overdue(api: ApiUrl = None, api_key: ApiKey = None) -> None:
    """Referrals not acknowledged by their deadline, on the cases you may see."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.overdue()
    table = Table("case", "subject", "referred by", "to", "overdue (days)")
    for item in answer["overdue"]:
        table.add_row(item["case"][:12] + "…", item["subject_code"] or item["subject"][:12] + "…",
                      item["by"]["name"], item["to"]["name"], f"{item['overdue_seconds'] / 86400:.1f}")  # fmt: skip
    Console().print(table)
