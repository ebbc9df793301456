"""``credtrace protection ...``: a platform signs its fund declarations and case steps with its own keystore.

``declare-fund`` and ``case complaint|compensate|recover|close`` sign one message (EIP-712, the ProtectionRegistry's
domain from the API or, with ``--offline``, from the local deployment file) and either print it as the JSON body
``POST /v1/protection/messages`` takes (``--out`` to a file, for ``credtrace protection submit``) or, with
``--submit``, send it at once. ``summary`` and ``risks`` print what regulators see. Amounts are minor units (fen).
Case and fund ids are derived from the platform's own references (``--case QM-2026-0001``), see
:func:`node_bridge.protection.case_id`; a consumer is named only by a salted commitment.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from credtrace.cli_signing import (
    ApiKey,
    ApiUrl,
    Key,
    Nonce,
    Offline,
    Password,
    Signed,
    api_url,
    console,
    deliver,
    deployed_domain,
    exit_on,
    fresh_nonce,
    parse_time,
    print_json,
    signer_id,
    submit_signed,
)
from credtrace.client import ApiError, CredtraceClient, nonces
from credtrace.errors import CredtraceError, ValidationFailed
from credtrace.keys import load_key
from credtrace.settings import Settings, get_settings
from node_bridge import protection
from node_bridge.credit import subject_id
from node_bridge.eip712 import keccak, to_bytes, to_json
from node_bridge.protection import REGISTRY, ZERO32, Step

protection_app = typer.Typer(help="Consumer protection: funds, advance-compensation cases.", no_args_is_help=True)
case_app = typer.Typer(help="Sign a step of an advance-compensation case.", no_args_is_help=True)
protection_app.add_typer(case_app, name="case")
DAY = 86400

Platform = Annotated[str | None, typer.Option(help="Your platform's credit code (default: from the index).")]
Case = Annotated[str, typer.Option("--case", help="Your case reference (e.g. a ticket number) or a 0x case id.")]
Merchant = Annotated[str, typer.Option(help="The merchant's credit code (or 0x subject id).")]
At = Annotated[str | None, typer.Option(help="When it happened (unix or ISO-8601); default now.")]
Submit = Annotated[bool, typer.Option(help="Submit at once instead of printing the signed JSON.")]
Output = Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here (default stdout).")]
Decision = Annotated[str | None, typer.Option(help="Id of a credit record taken against the merchant.")]


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
    with exit_on(CredtraceError, ValueError, OSError):
        account = load_key(settings.keys_dir, key, password)
        message = build(settings, account.address)
        normalised = REGISTRY.normalise(kind, to_json(message))
        with CredtraceClient(api_url(settings, api), api_key) as client:
            if offline:
                domain = deployed_domain(settings, protection.CONTRACT, REGISTRY.domain)
            else:
                domain = client.protection_domain()
            signed = Signed.sign(domain, account, kind, normalised)
            if submit:  # --submit wins over --out
                deliver(signed, None, client.submit_protection)
            else:
                deliver(signed, output)


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
        organisation = signer_id(settings, platform, address)
        begins = parse_time(start, "--start") or int(time.time())
        return {
            "platform": organisation, "fundId": protection.fund_id(organisation, ref), "version": version,
            "amount": amount, "currency": currency, "custodian": custodian, "periodStart": begins,
            "periodEnd": begins + int(days * DAY), "nonce": fresh_nonce(nonce),
        }  # fmt: skip

    _emit(key, password, "FundDeclaration", build, offline, api, api_key, submit, output)


def _step(
    settings: Settings, address: str, platform: str | None, case: str, kind: Step, merchant: str, **fields: Any
) -> dict[str, Any]:
    organisation = signer_id(settings, platform, address)
    case_id = _bytes32(case, "--case") if case.startswith("0x") else protection.case_id(organisation, case)
    at = parse_time(fields.pop("at", None), "--at") or int(time.time())
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
        message["dueBy"] = parse_time(due, "--due") if due else message["at"] + int(due_days * DAY)
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
    submit_signed(files, lambda: CredtraceClient(api_url(settings, api), api_key), CredtraceClient.submit_protection)


@protection_app.command("summary")
def summary(
    platform: Annotated[str, typer.Argument(help="The platform: member id, credit code or name.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """A platform's fund, cases opened and open, paid within the promised time, recovered (regulators, auditors,
    the platform itself)."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.protection_summary(platform)
    print_json(answer)


@protection_app.command("risks")
def risks(
    grace_days: Annotated[int | None, typer.Option(help="Days allowed for recovery (default 30).")] = None,
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Merchants with repeated compensations not recovered from them, with the cases as evidence."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.protection_risks(grace_days)
    print_json(answer)


@protection_app.command("case-show")
def case_show(
    case_id: Annotated[str, typer.Argument(help="The 0x case id.")], api_key: ApiKey = None, api: ApiUrl = None
) -> None:
    """A case with its timeline and links."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.protection_case(case_id)
    print_json(answer)
