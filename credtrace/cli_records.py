"""``credtrace record sign|submit|show``: a department signs offline with its own keystore, then submits.

``sign`` writes the signed message as JSON (the body ``POST /v1/records`` takes); nothing leaves the machine
until ``submit``. The EIP-712 domain comes from the local deployment file (``--offline``) or from the API.
"""

from __future__ import annotations

import hashlib
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
from node_bridge.credit import Kind, Relation, Tier

record_app = typer.Typer(help="Signed credit records: sign offline, submit, show.", no_args_is_help=True)


@record_app.command("sign")
def sign(
    key: Key,
    password: Password,
    kind: Annotated[str | None, typer.Option(help="Record kind, e.g. blacklist, red_list, commitment.")] = None,
    subject: Annotated[str | None, typer.Option(help="Credit code, or 0x commitment of a natural person.")] = None,
    legal_basis: Annotated[str | None, typer.Option(help="The legal basis of the decision.")] = None,
    tier: Annotated[str, typer.Option(help="minor, general or severe.")] = "general",
    measures: Annotated[int, typer.Option(help="Bits of the measure catalogue (GET /v1/measures).")] = 0,
    document: Annotated[Path | None, typer.Option(help="The full decision document; its SHA-256 is signed.")] = None,
    effective: Annotated[str | None, typer.Option(help="When it takes effect (unix or ISO-8601); default now.")] = None,
    public_days: Annotated[float, typer.Option(help="Days of publication from the effective time.")] = 365,
    valid_days: Annotated[float, typer.Option(help="Days of validity from the effective time.")] = 3 * 365,
    relation: Annotated[str, typer.Option(help="none, supersedes, amends or breaches_commitment.")] = "none",
    refers_to: Annotated[str | None, typer.Option(help="Id of the record the relation names.")] = None,
    revokes: Annotated[str | None, typer.Option(help="Sign a revocation of this record id instead.")] = None,
    repairs: Annotated[
        str | None, typer.Option(help="Sign a repair (credit repair) of this record id instead.")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why (revocation or repair).")] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Your organisation's credit code (default: from the index).")
    ] = None,
    nonce: Nonce = None,
    offline: Offline = False,
    api: ApiUrl = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here (default stdout).")] = None,
) -> None:
    """Sign a credit record (or, with --revokes/--repairs, a closure of one) with your own key."""
    settings = get_settings()
    with exit_on(CredtraceError, ValueError, OSError):
        account = load_key(settings.keys_dir, key, password)
        organisation = signer_id(settings, issuer, account.address)
        the_nonce = fresh_nonce(nonce)
        if revokes or repairs:
            if not reason:
                raise ValidationFailed("--reason", "a revocation or repair must say why")
            target = revokes or repairs or ""
            primary = "Revocation" if revokes else "Repair"
            message: dict[str, Any] = {
                "recordId": credit.to_bytes(target, "--revokes/--repairs"),
                "issuer": organisation,
                "reason": reason,
                "nonce": the_nonce,
            }
        else:
            if not (kind and subject and legal_basis):
                raise ValidationFailed("--kind/--subject/--legal-basis", "a record needs all three")
            primary = "CreditRecord"
            digest = hashlib.sha256(document.read_bytes()).digest() if document else credit.ZERO32
            message = CredtraceClient.new_record(
                parse_enum(Kind, kind, "--kind"), subject, organisation, legal_basis,
                tier=parse_enum(Tier, tier, "--tier"), measures=measures, document_hash=digest,
                effective_at=parse_time(effective, "--effective"), public_days=public_days, valid_days=valid_days,
                relation=parse_enum(Relation, relation, "--relation"),
                refers_to=credit.to_bytes(refers_to, "--refers-to") if refers_to else credit.ZERO32, nonce=the_nonce,
            )  # fmt: skip
        if offline:
            domain = deployed_domain(settings, credit.CONTRACT, credit.CreditDomain)
        else:
            with CredtraceClient(api_url(settings, api)) as client:
                domain = client.domain
        deliver(Signed.sign(domain, account, primary, message), output)


@record_app.command("submit")
def submit(
    files: Annotated[list[Path], typer.Argument(help="Signed JSON files from `credtrace record sign`.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Submit signed messages to the API; prints each id and where to follow it."""
    settings = get_settings()
    submit_signed(files, lambda: CredtraceClient(api_url(settings, api), api_key), CredtraceClient.submit)


@record_app.command("show")
def show(record_id: str, api_key: ApiKey = None, api: ApiUrl = None) -> None:
    """A record's write status, lifecycle state, fields and transaction."""
    settings = get_settings()
    with exit_on(ApiError), CredtraceClient(api_url(settings, api), api_key) as client:
        answer = client.record(record_id)
    print_json(answer)
