"""``credtrace protection ...``: a platform signs its fund declarations and case steps with its own keystore.

``declare-fund`` and ``case complaint|compensate|recover|close`` sign one message (EIP-712, the ProtectionRegistry's
domain from the API or, with ``--offline``, from the local deployment file) and either print it as the JSON body
``POST /v1/protection/messages`` takes (``--out`` to a file, for ``credtrace protection submit``) or, with
``--submit``, send it at once. ``summary`` and ``risks`` print what regulators see. Amounts are minor units (fen).
Case and fund ids are derived from the platform's own references (``--case QM-2026-0001``), see
:func:`node_bridge.protection.case_id`; a consumer is named only by a salted commitment.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from credtrace.cli_records import ApiKey, ApiUrl, _api_url, _issuer, _time
from credtrace.client import ApiError, CredtraceClient, nonces
from credtrace.errors import CredtraceError, ValidationFailed
from credtrace.keys import load_key
from credtrace.settings import Settings, get_settings
from node_bridge import protection
from node_bridge.credit import subject_id
from node_bridge.eip712 import Domain, keccak, to_bytes
from node_bridge.protection import REGISTRY, ZERO32, Step
from node_bridge.signed import to_json

protection_app = typer.Typer(help="Consumer protection: funds, advance-compensation cases.", no_args_is_help=True)
case_app = typer.Typer(help="Sign a step of an advance-compensation case.", no_args_is_help=True)
protection_app.add_typer(case_app, name="case")
console = Console(stderr=True)
DAY = 86400

Key = Annotated[str, typer.Option(help="Keystore name in <data dir>/keys/.")]
Password = Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="CREDTRACE_KEY_PASSWORD")]
Platform = Annotated[str | None, typer.Option(help="Your platform's credit code (default: from the index).")]
Case = Annotated[str, typer.Option("--case", help="Your case reference (e.g. a ticket number) or a 0x case id.")]
Merchant = Annotated[str, typer.Option(help="The merchant's credit code (or 0x subject id).")]
At = Annotated[str | None, typer.Option(help="When it happened (unix or ISO-8601); default now.")]
Nonce = Annotated[int | None, typer.Option(help="Unique per organisation (default: from the clock).")]
Offline = Annotated[bool, typer.Option(help="Take the domain from the local deployment file.")]
Submit = Annotated[bool, typer.Option(help="Submit at once instead of printing the signed JSON.")]
Output = Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here (default stdout).")]
Decision = Annotated[str | None, typer.Option(help="Id of a credit record taken against the merchant.")]


def _offline_domain(settings: Settings) -> Domain:
    from node_bridge.deploy import Deployment

    files = sorted(settings.deployments_dir.glob("*.json"))
    if len(files) != 1:
        raise ValidationFailed(
            "--offline", f"needs exactly one deployment in {settings.deployments_dir}, found {len(files)}"
        )
    deployment = Deployment.model_validate_json(files[0].read_text())
    return REGISTRY.domain(deployment.chain_id, deployment.contracts[protection.CONTRACT].address)


def _bytes32(value: str | None, field: str) -> bytes:
    if not value:
        return ZERO32
    raw = to_bytes(value, field)
    if len(raw) != 32:
        raise ValidationFailed(field, f"must be 32 bytes, got {len(raw)}")
    return raw


def _emit(
    key: str, password: str, kind: str, build: Any, offline: bool, api: str | None, api_key: str | None,
    submit: bool, output: Path | None,
) -> None:  # fmt: skip
    """Sign the message ``build(platform id)`` makes; print it, write it or submit it."""
    settings = get_settings()
    try:
        account = load_key(settings.keys_dir, key, password)
        message = build(settings, account.address)
        normalised = REGISTRY.normalise(kind, to_json(message))
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            domain = _offline_domain(settings) if offline else client.protection_domain()
            signature = domain.sign(account, kind, normalised)
            body = {"type": kind, "message": to_json(normalised), "signature": "0x" + signature.hex()}
            if submit:
                for item in client.submit_protection([body]):
                    typer.echo(f"{item['id']} {item['type']} {item['status']}")
                return
    except (CredtraceError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    text = json.dumps(body, indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n")
        console.print(f"{kind} 0x{domain.digest(kind, normalised).hex()} signed into {output}")
    else:
        typer.echo(text)


@protection_app.command("declare-fund")
def declare_fund(
    key: Key,
    password: Password,
    ref: Annotated[str, typer.Option(help="Your reference of the fund (its id derives from it).")],
    amount: Annotated[int, typer.Option(help="Fund size in minor units of the currency (fen for CNY).")],
    custodian: Annotated[str, typer.Option(help="The bank or trust holding the fund.")],
    version: Annotated[int, typer.Option(help="1 to declare, then the next version for each update.")] = 1,
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "CNY",
    start: Annotated[str | None, typer.Option(help="Start of the period (unix or ISO-8601); default now.")] = None,
    days: Annotated[float, typer.Option(help="Length of the period in days.")] = 365,
    platform: Platform = None,
    nonce: Nonce = None,
    offline: Offline = False,
    submit: Submit = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Output = None,
) -> None:
    """Declare (version 1) or update (the next version) your consumer-protection fund."""

    def build(settings: Settings, address: str) -> dict[str, Any]:
        organisation = _issuer(settings, platform, address)
        begins = _time(start, "--start") or int(time.time())
        return {
            "platform": organisation, "fundId": protection.fund_id(organisation, ref), "version": version,
            "amount": amount, "currency": currency, "custodian": custodian, "periodStart": begins,
            "periodEnd": begins + int(days * DAY), "nonce": next(nonces()) if nonce is None else nonce,
        }  # fmt: skip

    _emit(key, password, "FundDeclaration", build, offline, api, api_key, submit, output)


def _step(
    settings: Settings, address: str, platform: str | None, case: str, kind: Step, merchant: str, **fields: Any
) -> dict[str, Any]:
    organisation = _issuer(settings, platform, address)
    case_id = _bytes32(case, "--case") if case.startswith("0x") else protection.case_id(organisation, case)
    at = _time(fields.pop("at", None), "--at") or int(time.time())
    message = {
        "platform": organisation, "caseId": case_id, "step": int(kind), "merchant": subject_id(merchant),
        "consumer": ZERO32, "amount": 0, "dueBy": 0, "traceCode": ZERO32, "decision": ZERO32, "at": at,
        "nonce": next(nonces()),
    }  # fmt: skip
    message.update({k: v for k, v in fields.items() if v is not None})
    return message


@case_app.command("complaint")
def complaint(
    key: Key,
    password: Password,
    case: Case,
    merchant: Merchant,
    claimed: Annotated[int, typer.Option(help="The amount the consumer claims, in minor units.")],
    due: Annotated[str | None, typer.Option(help="Promised pay-by time (unix or ISO-8601).")] = None,
    due_days: Annotated[float, typer.Option(help="Promised pay-by time in days from --at, if no --due.")] = 7,
    consumer: Annotated[str | None, typer.Option(help="The consumer's salted commitment (0x).")] = None,
    consumer_ref: Annotated[
        str | None, typer.Option(help="Your own reference of the consumer: committed with a fresh salt (printed).")
    ] = None,
    trace_path: Annotated[str | None, typer.Option(help="The order's GS1 Digital Link path (/01/…/21/…).")] = None,
    at: At = None,
    platform: Platform = None,
    offline: Offline = False,
    submit: Submit = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Output = None,
) -> None:
    """Open a case: a consumer's complaint against a merchant, the claim and the pay-by time you promise."""

    def build(settings: Settings, address: str) -> dict[str, Any]:
        if consumer and consumer_ref:
            raise ValidationFailed("--consumer", "give --consumer or --consumer-ref, not both")
        commitment = _bytes32(consumer, "--consumer")
        if consumer_ref:
            salt = secrets.token_bytes(32)
            commitment = protection.consumer_commitment(salt, consumer_ref)
            console.print(f"consumer salt (keep it with the case, it is the only link to the consumer): 0x{salt.hex()}")
        message = _step(
            settings, address, platform, case, Step.COMPLAINT, merchant, at=at, amount=claimed, consumer=commitment,
            traceCode=keccak(trace_path.encode()) if trace_path else None,
        )  # fmt: skip
        message["dueBy"] = _time(due, "--due") if due else message["at"] + int(due_days * DAY)
        return message

    _emit(key, password, "CaseStep", build, offline, api, api_key, submit, output)


@case_app.command("compensate")
def compensate(
    key: Key,
    password: Password,
    case: Case,
    merchant: Merchant,
    amount: Annotated[int, typer.Option(help="What you paid the consumer, in minor units.")],
    decision: Decision = None,
    at: At = None,
    platform: Platform = None,
    offline: Offline = False,
    submit: Submit = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Output = None,
) -> None:
    """Record that you compensated the consumer first (once per case, after the complaint)."""

    def build(settings: Settings, address: str) -> dict[str, Any]:
        return _step(
            settings, address, platform, case, Step.COMPENSATED, merchant, at=at, amount=amount,
            decision=_bytes32(decision, "--decision"),
        )  # fmt: skip

    _emit(key, password, "CaseStep", build, offline, api, api_key, submit, output)


@case_app.command("recover")
def recover(
    key: Key,
    password: Password,
    case: Case,
    merchant: Merchant,
    amount: Annotated[int, typer.Option(help="What you recovered from the merchant now, in minor units.")],
    decision: Decision = None,
    at: At = None,
    platform: Platform = None,
    offline: Offline = False,
    submit: Submit = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Output = None,
) -> None:
    """Record a recovery from the merchant (may repeat; never more in total than you paid)."""

    def build(settings: Settings, address: str) -> dict[str, Any]:
        return _step(
            settings, address, platform, case, Step.RECOVERED, merchant, at=at, amount=amount,
            decision=_bytes32(decision, "--decision"),
        )  # fmt: skip

    _emit(key, password, "CaseStep", build, offline, api, api_key, submit, output)


@case_app.command("close")
def close(
    key: Key,
    password: Password,
    case: Case,
    merchant: Merchant,
    at: At = None,
    platform: Platform = None,
    offline: Offline = False,
    submit: Submit = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Output = None,
) -> None:
    """Close a case: after compensation or recovery, or a complaint rejected or withdrawn."""

    def build(settings: Settings, address: str) -> dict[str, Any]:
        return _step(settings, address, platform, case, Step.CLOSED, merchant, at=at)

    _emit(key, password, "CaseStep", build, offline, api, api_key, submit, output)


@protection_app.command("submit")
def submit_files(
    files: Annotated[list[Path], typer.Argument(help="Signed JSON files, in the order the steps happened.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Submit signed fund declarations and case steps; prints each id and status."""
    settings = get_settings()
    try:
        bodies = [json.loads(path.read_text()) for path in files]
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            accepted = client.submit_protection(bodies)
    except (ApiError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for item in accepted:
        typer.echo(f"{item['id']} {item['type']} {item['status']}")


def _print(call: Any) -> None:
    settings = get_settings()
    try:
        typer.echo(json.dumps(call(settings), indent=2, ensure_ascii=False))
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@protection_app.command("summary")
def summary(
    platform: Annotated[str, typer.Argument(help="The platform: member id, credit code or name.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """A platform's fund, cases opened and open, paid within the promised time, recovered (regulators, auditors,
    the platform itself)."""

    def call(settings: Settings) -> dict[str, Any]:
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            return client.protection_summary(platform)

    _print(call)


@protection_app.command("risks")
def risks(
    grace_days: Annotated[int | None, typer.Option(help="Days allowed for recovery (default 30).")] = None,
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Merchants with repeated compensations not recovered from them, with the cases as evidence."""

    def call(settings: Settings) -> dict[str, Any]:
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            return client.protection_risks(grace_days)

    _print(call)


@protection_app.command("case-show")
def case_show(
    case_id: Annotated[str, typer.Argument(help="The 0x case id.")], api_key: ApiKey = None, api: ApiUrl = None
) -> None:
    """A case with its timeline and links."""

    def call(settings: Settings) -> dict[str, Any]:
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            return client.protection_case(case_id)

    _print(call)
