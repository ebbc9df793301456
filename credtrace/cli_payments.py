"""``credtrace payments``: a payment institution's side of C11 (hash-account, bind-account, unbind-account, relate,
signal, alerts, merchant).

The account number is typed at a hidden prompt (or read from ``CREDTRACE_ACCOUNT``), normalised and hashed here
with the consortium's account pepper (``CREDTRACE_ACCOUNT_PEPPER`` or ``<data dir>/account-pepper``); only the hash
is printed, signed or sent, and errors about the number never repeat it. Messages are signed with the member's own
keystore and submitted through the API (``--out`` writes the signed JSON instead, nothing leaves the machine).
"""

from __future__ import annotations

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
    deliver,
    deployed_domain,
    exit_on,
    fresh_nonce,
    print_json,
    signer_id,
)
from credtrace.client import ApiError, CredtraceClient
from credtrace.errors import CredtraceError, ValidationFailed
from credtrace.keys import load_key
from credtrace.settings import Settings, get_settings
from node_bridge.eip712 import to_bytes, to_json
from node_bridge.payments import (
    BINDING,
    CONTRACT,
    REGISTRY,
    RELATION,
    SIGNAL,
    UNBINDING,
    account_hash,
    check_bps,
    check_month,
    load_account_pepper,
)

payment_app = typer.Typer(
    help="Online payment management: account hashes, bindings, monthly signals, alerts.", no_args_is_help=True
)
Payment = Annotated[
    str | None, typer.Option(help="Your organisation's credit code or 0x member id (default: from the index).")
]
Out = Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here instead of submitting it.")]


def _hash_of(settings: Settings, account: str | None, account_hash_hex: str | None) -> bytes:
    if account_hash_hex:
        value = to_bytes(account_hash_hex, "--account-hash")
        if len(value) != 32:
            raise ValidationFailed("--account-hash", f"must be 32 bytes, got {len(value)}")
        return value
    if account is None:
        account = typer.prompt("Settlement account number", hide_input=True)
    return account_hash(load_account_pepper(settings), account, "--account")


def _sign_and_send(
    settings: Settings, kind: str, type_name: str, message: dict[str, Any], key: str, password: str,
    offline: bool, api: str | None, api_key: str | None, output: Path | None,
) -> None:  # fmt: skip
    """Fill in the signing organisation, sign with ``key``, then submit to ``/v1/payments/{kind}`` (or write to
    ``output``)."""
    account = load_key(settings.keys_dir, key, password)
    field = REGISTRY.type(type_name).signer_field
    message[field] = signer_id(settings, message.get(field), account.address, "--payment")
    normalised = REGISTRY.normalise(type_name, to_json(message))
    with CredtraceClient(api_url(settings, api), api_key) as client:
        domain = deployed_domain(settings, CONTRACT, REGISTRY.domain) if offline else client.payment_domain()
        signed = Signed.sign(domain, account, type_name, normalised)
        deliver(signed, output, lambda bodies: client.submit_payments(kind, bodies))


@payment_app.command("hash-account")
def hash_account(
    account: Annotated[
        str | None,
        typer.Option(envvar="CREDTRACE_ACCOUNT", help="The account number (default: asked, hidden)."),
    ] = None,
) -> None:
    """Print the on-chain hash of a settlement account (HMAC-SHA256 under the consortium's account pepper)."""
    settings = get_settings()
    with exit_on(CredtraceError):
        typer.echo("0x" + _hash_of(settings, account, None).hex())


@payment_app.command("bind-account")
def bind_account(
    key: Key,
    password: Password,
    subject: Annotated[str, typer.Option(help="The merchant: credit code, or 0x commitment of a natural person.")],
    account: Annotated[
        str | None, typer.Option(envvar="CREDTRACE_ACCOUNT", help="The account number (default: asked, hidden).")
    ] = None,
    account_hash_hex: Annotated[
        str | None, typer.Option("--account-hash", help="The account's hash, if computed already.")
    ] = None,
    bound_at: Annotated[int | None, typer.Option(help="Unix seconds the binding holds from (default now).")] = None,
    payment: Payment = None,
    nonce: Nonce = None,
    offline: Offline = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Out = None,
) -> None:
    """Bind a merchant's settlement account to its subject: only the account's hash is signed and sent."""
    settings = get_settings()
    with exit_on(CredtraceError, OSError, ValueError):
        message: dict[str, Any] = {
            "payment": payment, "subject": subject, "accountHash": _hash_of(settings, account, account_hash_hex),
            "boundAt": int(time.time()) if bound_at is None else bound_at,
            "nonce": fresh_nonce(nonce),
        }  # fmt: skip
        _sign_and_send(settings, "bindings", BINDING.name, message, key, password, offline, api, api_key, output)


@payment_app.command("unbind-account")
def unbind_account(
    key: Key,
    password: Password,
    subject: Annotated[str, typer.Option(help="The merchant the account is bound to.")],
    account: Annotated[
        str | None, typer.Option(envvar="CREDTRACE_ACCOUNT", help="The account number (default: asked, hidden).")
    ] = None,
    account_hash_hex: Annotated[
        str | None, typer.Option("--account-hash", help="The account's hash, if computed already.")
    ] = None,
    unbound_at: Annotated[int | None, typer.Option(help="Unix seconds the binding ends (default now).")] = None,
    payment: Payment = None,
    nonce: Nonce = None,
    offline: Offline = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Out = None,
) -> None:
    """End a binding your organisation made (the account was closed or changed)."""
    settings = get_settings()
    with exit_on(CredtraceError, OSError, ValueError):
        message: dict[str, Any] = {
            "payment": payment, "subject": subject, "accountHash": _hash_of(settings, account, account_hash_hex),
            "unboundAt": int(time.time()) if unbound_at is None else unbound_at,
            "nonce": fresh_nonce(nonce),
        }  # fmt: skip
        _sign_and_send(settings, "unbindings", UNBINDING.name, message, key, password, offline, api, api_key, output)


@payment_app.command("relate")
def relate(
    key: Key,
    password: Password,
    subject: Annotated[str, typer.Option(help="One subject: credit code or 0x commitment.")],
    related: Annotated[str, typer.Option(help="The other subject of the same group.")],
    declarant: Annotated[
        str | None, typer.Option(help="Your organisation's credit code or 0x member id (default: from the index).")
    ] = None,
    nonce: Nonce = None,
    offline: Offline = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Out = None,
) -> None:
    """Declare two subjects one group under one real-name controller (PAYMENT or REGULATOR): an account they
    share then raises no shared_account alert."""
    settings = get_settings()
    with exit_on(CredtraceError, OSError, ValueError):
        message: dict[str, Any] = {"declarant": declarant, "subject": subject, "related": related,
                                   "nonce": fresh_nonce(nonce)}  # fmt: skip
        _sign_and_send(settings, "relations", RELATION.name, message, key, password, offline, api, api_key, output)


@payment_app.command("signal")
def signal(
    key: Key,
    password: Password,
    merchant: Annotated[str, typer.Option(help="The merchant: credit code or 0x commitment.")],
    month: Annotated[int, typer.Option(help="The month, YYYYMM.")],
    orders: Annotated[int, typer.Option(help="Orders settled that month.")],
    refund_bps: Annotated[int, typer.Option(help="Refund rate, basis points of orders (0-10000).")],
    chargeback_bps: Annotated[int, typer.Option(help="Chargeback rate, basis points of orders (0-10000).")],
    payment: Payment = None,
    nonce: Nonce = None,
    offline: Offline = False,
    api: ApiUrl = None,
    api_key: ApiKey = None,
    output: Out = None,
) -> None:
    """File a merchant's monthly refund and chargeback aggregates."""
    settings = get_settings()
    with exit_on(CredtraceError, OSError, ValueError):
        check_month(month, "--month")
        check_bps(refund_bps, "--refund-bps")
        check_bps(chargeback_bps, "--chargeback-bps")
        message: dict[str, Any] = {
            "payment": payment, "merchant": merchant, "month": month, "orders": orders, "refundBps": refund_bps,
            "chargebackBps": chargeback_bps, "nonce": fresh_nonce(nonce),
        }  # fmt: skip
        _sign_and_send(settings, "signals", SIGNAL.name, message, key, password, offline, api, api_key, output)


@payment_app.command("alerts")
def alerts(
    kind: Annotated[str | None, typer.Option(help="shared_account or blacklist_reappearance.")] = None,
    subject: Annotated[str | None, typer.Option(help="Only alerts involving this subject.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    api: ApiUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Alerts with their evidence (REGULATOR, PAYMENT and AUDITOR members), as JSON."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        found = client.payment_alerts(kind=kind, subject=subject, limit=limit)
    print_json(found)


@payment_app.command("merchant")
def merchant(subject: str, api: ApiUrl = None, api_key: ApiKey = None) -> None:
    """A merchant's bindings, monthly signals, payment violations and alerts, as JSON."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.payment_merchant(subject)
    print_json(answer)
