"""What the CLI's signing commands share: who signs, under which EIP-712 domain, and where the signed JSON goes.

Every workflow's CLI (``record``, ``logistics``, ``protection``, ``payments``, ``supervision``) signs messages
locally with a member's keystore (the key never leaves the machine), then writes the signed JSON body to ``--out``,
prints it, or submits it through the API with the member's API key; each also reads answers back as JSON. The steps
are the same for all of them, so they live here once: the API URL and key options, the signing organisation
(:func:`signer_id`), the domain of a registry in the local deployment file for ``--offline`` signing
(:func:`deployed_domain`), the signed body (:class:`Signed`), its delivery (:func:`deliver`, :func:`submit_signed`)
and a user's mistake or an API refusal shown as one red line and exit status 1 (:func:`exit_on`).

The workflow modules still build their own :class:`~credtrace.client.CredtraceClient` and call their own
``get_settings`` (the helpers take the client or settings), so one workflow's client can be swapped on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from credtrace.client import ApiError, CredtraceClient, nonces
from credtrace.errors import ValidationFailed
from credtrace.settings import Settings
from node_bridge.eip712 import Domain, to_bytes, to_json

console = Console(stderr=True)
"""Messages for the person at the terminal (stderr), so stdout stays the signed JSON or the answer, for pipes."""

ApiKey = Annotated[
    str | None, typer.Option(envvar="CREDTRACE_API_KEY", help="Your member API key (Bearer).", show_default=False)
]
ApiUrl = Annotated[str | None, typer.Option(help="API base URL (default: this machine's API).")]
Key = Annotated[str, typer.Option(help="Keystore name in <data dir>/keys/.")]
Password = Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="CREDTRACE_KEY_PASSWORD")]
Nonce = Annotated[int | None, typer.Option(help="Unique per organisation (default: from the clock).")]
Offline = Annotated[bool, typer.Option(help="Take the domain from the local deployment file.")]

Accepted = list[dict[str, Any]]
"""What the API answers for submitted messages: one item (``id``, ``type``, ``status``…) per message."""


def api_url(settings: Settings, api: str | None) -> str:
    """``--api``, or the API this machine serves (``credtrace up``)."""
    return api or f"http://{settings.api_host}:{settings.api_port}"


@contextmanager
def exit_on(*errors: type[Exception]) -> Iterator[None]:
    """Turn the expected ``errors`` (a bad option, an unreadable file, the API's refusal) into ``error: …`` in red
    and exit status 1: they are the user's to fix, so no traceback."""
    try:
        yield
    except errors as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def fresh_nonce(nonce: int | None) -> int:
    """``--nonce``, or one from the clock (see :func:`credtrace.client.nonces`)."""
    return next(nonces()) if nonce is None else nonce


def member_bytes(value: str, field: str) -> bytes:
    """A member id given as 0x-hex, or derived from an organisation's credit code as the consortium derives it."""
    from node_bridge.consortium import member_id

    return to_bytes(value, field) if value.startswith("0x") else member_id(value)


def signer_id(settings: Settings, given: str | None, address: str, field: str = "--issuer") -> bytes:
    """The signing organisation: given (credit code or 0x id, ``field`` names the option in errors), or found for
    the key's ``address`` in the local index, so a member's own machine need not be told who it is."""
    if given:
        return member_bytes(given, field)
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


def parse_time(value: str | None, field: str) -> int | None:
    """A time option as unix seconds: given as unix seconds, or ISO-8601 with a zone (a zoneless time is ambiguous
    across the consortium's machines, so it is refused)."""
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


def parse_enum(kind: type[Any], value: str, field: str) -> Any:
    """An enum option by member name, case-insensitive, ``-`` for ``_``; errors list the choices."""
    try:
        return kind[value.upper().replace("-", "_")]
    except KeyError:
        choices = ", ".join(m.name.lower() for m in kind)
        raise ValidationFailed(field, f"{value!r} is not one of {choices}") from None


def deployed_domain(settings: Settings, contract: str, domain: Callable[[int, str], Domain]) -> Domain:
    """The EIP-712 domain of ``contract`` in the deployment recorded in the data directory, for ``--offline``
    signing (no API, no chain); ``domain(chain_id, address)`` builds it. Exactly one deployment must be there, or
    which chain to sign for would be a guess."""
    from node_bridge.deploy import Deployment

    files = sorted(settings.deployments_dir.glob("*.json"))
    if len(files) != 1:
        raise ValidationFailed(
            "--offline", f"needs exactly one deployment in {settings.deployments_dir}, found {len(files)}"
        )
    deployment = Deployment.model_validate_json(files[0].read_text())
    if contract not in deployment.contracts:
        raise ValidationFailed("--offline", f"the deployment in {files[0]} has no {contract}")
    return domain(deployment.chain_id, deployment.contracts[contract].address)


@dataclass(frozen=True)
class Signed:
    """One message signed with a member's key; ``extra`` is sent beside it, unsigned (e.g. a note's text)."""

    type: str
    message: Mapping[str, Any]
    signature: bytes
    id: str
    """The message's EIP-712 digest (0x-hex): the id the API and the chain give it."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def sign(
        cls, domain: Domain, account: LocalAccount, type_name: str, message: Mapping[str, Any], **extra: Any
    ) -> Signed:
        signature = domain.sign(account, type_name, message)
        return cls(type_name, message, signature, "0x" + domain.digest(type_name, message).hex(), extra)

    @property
    def body(self) -> dict[str, Any]:
        """The JSON body the API's write routes take (and ``--out`` writes)."""
        return {"type": self.type, "message": to_json(self.message), "signature": "0x" + self.signature.hex(),
                **self.extra}  # fmt: skip


def accepted_line(item: Mapping[str, Any]) -> str:
    """One accepted message as printed: its id (to follow it), type and status."""
    return f"{item['id']} {item['type']} {item['status']}"


def print_accepted(accepted: Accepted, line: Callable[[Mapping[str, Any]], str] = accepted_line) -> None:
    for item in accepted:
        typer.echo(line(item))


def print_json(answer: Any) -> None:
    """An API answer on stdout as indented JSON (non-ASCII kept readable: names and texts are often Chinese)."""
    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))


def deliver(
    signed: Signed,
    output: Path | None,
    send: Callable[[Sequence[Mapping[str, Any]]], Accepted] | None = None,
    *,
    label: str | None = None,
    line: Callable[[Mapping[str, Any]], str] = accepted_line,
) -> None:
    """Where a signed message goes: written to ``output`` (to review, or submit later), else submitted with ``send``
    and each accepted item printed, else (a command that only signs) printed on stdout. ``label`` names the message
    in the line saying where it was written (default: its type)."""
    if output is not None:
        output.write_text(json.dumps(signed.body, indent=2, ensure_ascii=False) + "\n")
        console.print(f"{label or signed.type} {signed.id} signed into {output}")
    elif send is None:
        print_json(signed.body)
    else:
        print_accepted(send([signed.body]), line)


def submit_signed(
    files: Sequence[Path],
    connect: Callable[[], CredtraceClient],
    send: Callable[[CredtraceClient, Sequence[Mapping[str, Any]]], Accepted],
    line: Callable[[Mapping[str, Any]], str] = accepted_line,
) -> None:
    """The ``submit`` commands: send the signed JSON files (``--out`` of the signing commands), in order, with the
    client ``connect`` opens and its submit method ``send``; print each accepted item."""
    with exit_on(ApiError, OSError, ValueError):
        bodies = [json.loads(path.read_text()) for path in files]
        with connect() as client:
            accepted = send(client, bodies)
    print_accepted(accepted, line)
