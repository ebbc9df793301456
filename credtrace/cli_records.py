"""``credtrace record sign|submit|show``: a department signs offline with its own keystore, then submits.

``sign`` writes the signed message as JSON (the body ``POST /v1/records`` takes); nothing leaves the machine
until ``submit``. The EIP-712 domain comes from the local deployment file (``--offline``) or from the API.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from credtrace.client import ApiError, CredtraceClient, nonces
from credtrace.errors import CredtraceError, ValidationFailed
from credtrace.keys import load_key
from credtrace.settings import Settings, get_settings
from node_bridge import credit
from node_bridge.credit import Kind, Relation, Tier

record_app = typer.Typer(help="Signed credit records: sign offline, submit, show.", no_args_is_help=True)
console = Console(stderr=True)

ApiKey = Annotated[
    str | None, typer.Option(envvar="CREDTRACE_API_KEY", help="Your member API key (Bearer).", show_default=False)
]
ApiUrl = Annotated[str | None, typer.Option(help="API base URL (default: this machine's API).")]


def _api_url(settings: Settings, api: str | None) -> str:
    return api or f"http://{settings.api_host}:{settings.api_port}"


def _offline_domain(settings: Settings) -> credit.CreditDomain:
    """The domain of the deployment recorded in the data directory (one chain)."""
    from node_bridge.deploy import Deployment

    files = sorted(settings.deployments_dir.glob("*.json"))
    if len(files) != 1:
        raise ValidationFailed(
            "--offline", f"needs exactly one deployment in {settings.deployments_dir}, found {len(files)}"
        )
    deployment = Deployment.model_validate_json(files[0].read_text())
    return credit.CreditDomain(deployment.chain_id, deployment.contracts[credit.CONTRACT].address)


def _issuer(settings: Settings, issuer: str | None, address: str) -> bytes:
    """The signing organisation: given (credit code or 0x id), or found for the key in the local index."""
    from node_bridge.consortium import member_id

    if issuer:
        return credit.to_bytes(issuer, "--issuer") if issuer.startswith("0x") else member_id(issuer)
    from node_bridge.models import MemberKey
    from node_bridge.store import open_store, session_scope

    engine = open_store(settings.database)
    try:
        with session_scope(engine) as session:
            key = session.get(MemberKey, address)
    finally:
        engine.dispose()
    if key is None:
        raise ValidationFailed("--issuer", f"key {address} is not in the local index; give --issuer (credit code)")
    return bytes.fromhex(key.member_id[2:])


def _time(value: str | None, field: str) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(field, f"{value!r} is neither unix seconds nor an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValidationFailed(field, f"{value!r} needs a time zone, e.g. 2026-12-05T00:00:00+08:00")
    return int(parsed.timestamp())


def _enum(kind: type[Any], value: str, field: str) -> Any:
    try:
        return kind[value.upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(m.name.lower() for m in kind)
        raise ValidationFailed(field, f"{value!r} is not one of {choices}") from None


@record_app.command("sign")
def sign(
    key: Annotated[str, typer.Option(help="Keystore name in <data dir>/keys/.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="CREDTRACE_KEY_PASSWORD")],
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
    nonce: Annotated[int | None, typer.Option(help="Unique per organisation (default: from the clock).")] = None,
    offline: Annotated[bool, typer.Option(help="Take the domain from the local deployment file.")] = False,
    api: ApiUrl = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write the signed JSON here (default stdout).")] = None,
) -> None:
    """Sign a credit record (or, with --revokes/--repairs, a closure of one) with your own key."""
    settings = get_settings()
    try:
        account = load_key(settings.keys_dir, key, password)
        organisation = _issuer(settings, issuer, account.address)
        the_nonce = next(nonces()) if nonce is None else nonce
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
                _enum(Kind, kind, "--kind"), subject, organisation, legal_basis,
                tier=_enum(Tier, tier, "--tier"), measures=measures, document_hash=digest,
                effective_at=_time(effective, "--effective"), public_days=public_days, valid_days=valid_days,
                relation=_enum(Relation, relation, "--relation"),
                refers_to=credit.to_bytes(refers_to, "--refers-to") if refers_to else credit.ZERO32, nonce=the_nonce,
            )  # fmt: skip
        domain = _offline_domain(settings) if offline else CredtraceClient(_api_url(settings, api)).domain
        signature = domain.sign(account, primary, message)
    except (CredtraceError, ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    body = {"type": primary, "message": credit.to_json(message), "signature": "0x" + signature.hex()}
    text = json.dumps(body, indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n")
        console.print(f"{primary} {('0x' + domain.digest(primary, message).hex())} signed into {output}")
    else:
        typer.echo(text)


@record_app.command("submit")
def submit(
    files: Annotated[list[Path], typer.Argument(help="Signed JSON files from `credtrace record sign`.")],
    api_key: ApiKey = None,
    api: ApiUrl = None,
) -> None:
    """Submit signed messages to the API; prints each id and where to follow it."""
    settings = get_settings()
    try:
        bodies = [json.loads(path.read_text()) for path in files]
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            accepted = client.submit(bodies)
    except (ApiError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    for item in accepted:
        typer.echo(f"{item['id']} {item['type']} {item['status']}")


@record_app.command("show")
def show(record_id: str, api_key: ApiKey = None, api: ApiUrl = None) -> None:
    """A record's write status, lifecycle state, fields and transaction."""
    settings = get_settings()
    try:
        with CredtraceClient(_api_url(settings, api), api_key) as client:
            typer.echo(json.dumps(client.record(record_id), indent=2, ensure_ascii=False))
    except ApiError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
