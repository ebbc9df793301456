"""Accepting member-signed messages for a registry: check what its contract will check, then queue them.

This is the write path of every registry described by a :class:`node_bridge.signed.SignedRegistry` (logistics
credit, consumer protection, payments, supervision); credit records have their own (``api/credit_writes.py``),
which shares the batch conventions defined here. A batch is accepted whole or not at all: the first message that
fails names its position and field (``messages[3].signature``). For each message:

1. the JSON is normalised to the type's fields (:meth:`SignedRegistry.normalise`);
2. the signer is recovered and must be an active key of an active member, signing for the organisation the message
   names in its ``signer_field``, holding one of the type's roles (403 otherwise);
3. the registry's own ``check`` runs (state rules: a step out of order, a recovery larger than the compensation...),
   seeing the messages before it in the batch;
4. each (organisation, nonce) is used once.

A type whose ``signer_field`` is a ``bytes32[]`` is signed by each organisation it names (a joint decision): the
signer's organisation must be one of them, and each signature is accepted and queued under its own id,
``keccak256(digest ‖ organisation)`` (the digest stays the message's id; the registry's ``check`` recomputes it).

Accepted messages are kept as signed (``signed_submission``) and queued (``outbox``) in the caller's SQL transaction;
the same signed message submitted again gives the same id and no second row. :func:`pending` reads them back for the
registries' state rules and views; :func:`deployed_domain` gives the domain their signatures name.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import RowMapping, Table, insert, select, tuple_
from sqlmodel import Session

from api.signers import Signers
from credtrace.errors import Conflict, CredtraceError, NotAuthorised, NotFound, ValidationFailed
from node_bridge.consortium import Role
from node_bridge.deploy import Deployment
from node_bridge.eip712 import Domain, keccak, recover, to_bytes, to_json
from node_bridge.models import OutboxEntry, OutboxStatus, SignedSubmission, utcnow
from node_bridge.outbox import record_hex
from node_bridge.projections import chunks, table_of
from node_bridge.signed import SignedRegistry

SUBMISSIONS = table_of(SignedSubmission)
OUTBOX = table_of(OutboxEntry)
MAX_BATCH = 1000
NOT_FAILED = (OutboxStatus.ACCEPTED, OutboxStatus.SUBMITTED, OutboxStatus.CONFIRMED)
"""Outbox states of a message that is or will be on chain (a failed one never counted)."""
ON_ITS_WAY = (OutboxStatus.ACCEPTED, OutboxStatus.SUBMITTED)
"""Outbox states of a message not mined yet (once mined, the index tells)."""
MISSING_CONTRACT = "the deployment on chain {chain_id} has no {contract}: run `credtrace deploy`"


@dataclass(frozen=True)
class SignedMessage:
    """One message as submitted: its EIP-712 type, the message (JSON values) and the 65-byte signature."""

    type: str
    message: Mapping[str, Any]
    signature: str


@dataclass(frozen=True)
class Accepted:
    id: str
    type: str
    signer: str
    status: str


@dataclass(frozen=True)
class Checked:
    """A message that passed the generic checks: what a registry's ``check`` is given."""

    id: bytes
    type: str
    message: dict[str, Any]
    signature: bytes
    signer: str
    organisation: str
    roles: Role

    @property
    def hex_id(self) -> str:
        return record_hex(self.id)


@dataclass(frozen=True)
class Placement:
    """Where a registry's ``check`` files a message: the subject it concerns and the entity it acts on (a case,
    a firm, a fund), both 0x-hex or None; kept on ``signed_submission`` to find pending messages by them."""

    subject: str | None = None
    target: str | None = None


Check = Callable[[Session, Checked, Sequence[Checked]], Placement]
"""A registry's state rules: raise a 4xx error naming the field, or say where the message is filed."""


def accept(
    session: Session,
    registry: SignedRegistry,
    domain: Domain,
    items: Sequence[SignedMessage],
    check: Check,
    *,
    field_prefix: str | None = "messages",
) -> list[Accepted]:
    """Check and queue signed messages for ``registry``; raises on the first bad one, naming ``<prefix>[i].<field>``.

    With ``field_prefix`` None (a single message, not a batch), errors name the field alone.
    """
    check_batch_size(items, field_prefix)
    signers = Signers(session)
    checked: list[Checked] = []
    placed: dict[bytes, Placement] = {}
    order: list[bytes] = []
    for index, item in enumerate(items):
        with positioned(field_prefix, index):
            one = _verify(registry, domain, signers, item)
            if one.id not in placed:
                placed[one.id] = check(session, one, checked)
                checked.append(one)
        order.append(one.id)
    earlier = earlier_status(session, list(placed))
    fresh = [(index, one) for index, one in enumerate(checked) if one.hex_id not in earlier]
    check_nonces(session, [(i, one.organisation, str(one.message["nonce"])) for i, one in fresh], field_prefix)
    queue(session, [_queued(registry, one, placed[one.id]) for _, one in fresh])
    by_id = {one.id: one for one in checked}
    return [
        Accepted(record_hex(i), by_id[i].type, by_id[i].signer, earlier.get(record_hex(i), "accepted")) for i in order
    ]


def _verify(registry: SignedRegistry, domain: Domain, signers: Signers, item: SignedMessage) -> Checked:
    kind = registry.type(item.type)
    message = registry.normalise(item.type, item.message)
    signature = to_bytes(item.signature, "signature")
    digest = domain.digest(item.type, message)
    signer = recover(digest, signature)
    standing = signers.standing(signer)
    if standing is None:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of an active member (or the message was signed for "
            f"another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    organisation, roles = standing
    named_value = message[kind.signer_field]
    if isinstance(named_value, list):  # a message several organisations sign (a joint decision): one of them
        if organisation not in {"0x" + v.hex() for v in named_value}:
            raise NotAuthorised(
                f"{kind.signer_field}: signer {signer} signs for {organisation}, which the message does not name"
            )
        digest = keccak(digest + bytes.fromhex(organisation[2:]))  # each signature its own submission
    elif organisation != (named := "0x" + named_value.hex()):
        raise NotAuthorised(
            f"{kind.signer_field}: the message names {named} but signer {signer} signs for {organisation}"
        )
    if not roles & kind.roles:
        needed = " or ".join(str(r.name) for r in Role if r & kind.roles)
        raise NotAuthorised(f"signature: a {item.type} needs a {needed} signer; {signer} is not one")
    return Checked(digest, item.type, message, signature, signer, organisation, Role(roles))


def at_position(field_prefix: str | None, index: int, exc: ValidationFailed | Conflict) -> ValidationFailed | Conflict:
    """The same error with its field placed in the batch: ``messages[3].nonce``."""
    if field_prefix is None:
        return exc
    prefix = f"{field_prefix}[{index}]"
    if isinstance(exc, Conflict):
        return Conflict(f"{prefix}.{exc.field}", exc.error, exc.reason)
    return ValidationFailed(f"{prefix}.{exc.field}", exc.reason)


def check_batch_size(items: Sized, field_prefix: str | None) -> None:
    """A batch holds 1 to :data:`MAX_BATCH` messages (the routes' models say so too; other callers rely on this)."""
    if not items:
        raise ValidationFailed(field_prefix or "body", "is empty")
    if len(items) > MAX_BATCH:
        raise ValidationFailed(field_prefix or "body", f"holds {len(items)} messages; at most {MAX_BATCH}")


@contextmanager
def positioned(field_prefix: str | None, index: int) -> Iterator[None]:
    """Errors raised checking message ``index`` of a batch name its place: ``messages[3].nonce`` (4xx all)."""
    try:
        yield
    except (ValidationFailed, Conflict) as exc:
        raise at_position(field_prefix, index, exc) from None
    except (NotAuthorised, NotFound) as exc:
        raise exc if field_prefix is None else type(exc)(f"{field_prefix}[{index}].{exc}") from None


def earlier_status(session: Session, ids: list[bytes]) -> dict[str, str]:
    """Outbox status of the ids already accepted."""
    keys = [record_hex(i) for i in ids]
    found: dict[str, str] = {}
    for chunk in chunks(keys, 500):
        for key, status in session.execute(select(OUTBOX.c.id, OUTBOX.c.status).where(OUTBOX.c.id.in_(chunk))):
            found[key] = status
    return found


def pending(
    session: Session,
    type_names: Sequence[str],
    *,
    target: str | None = None,
    subject: str | None = None,
    status: Collection[str] | None = None,
) -> Sequence[RowMapping]:
    """Accepted messages of these types (oldest first) filed under ``target`` and/or ``subject``, as signed; with
    ``status``, only those whose outbox status is one of these (:data:`NOT_FAILED`, :data:`ON_ITS_WAY`)."""
    query = select(SUBMISSIONS).where(SUBMISSIONS.c.type.in_(list(type_names))).order_by(SUBMISSIONS.c.created_at)
    if status is not None:
        query = query.join(OUTBOX, OUTBOX.c.id == SUBMISSIONS.c.id).where(OUTBOX.c.status.in_(list(status)))
    if target is not None:
        query = query.where(SUBMISSIONS.c.target == target)
    if subject is not None:
        query = query.where(SUBMISSIONS.c.subject == subject)
    return session.execute(query).mappings().all()


DomainT = TypeVar("DomainT", bound=Domain)
_DOMAINS: dict[tuple[str, int, str], Domain] = {}


def deployed_domain(
    deployment: Deployment,
    contract: str,
    build: Callable[[int, str], DomainT],
    *,
    missing: Callable[[str], CredtraceError] = NotFound,
    message: str = MISSING_CONTRACT,
) -> DomainT:
    """The EIP-712 domain of ``contract`` as deployed, ``build(chain_id, address)``: built once per chain and address,
    as its type hashes are worked out when it is built and every signed write needs them.

    A deployment without the contract (made before it existed) raises ``missing`` with ``message`` (a format string
    of ``chain_id`` and ``contract``).
    """
    if contract not in deployment.contracts:
        raise missing(message.format(chain_id=deployment.chain_id, contract=contract))
    key = (contract, deployment.chain_id, deployment.contracts[contract].address)
    if key not in _DOMAINS:
        _DOMAINS[key] = build(deployment.chain_id, key[2])
    return cast(DomainT, _DOMAINS[key])


def _queued(registry: SignedRegistry, one: Checked, place: Placement) -> Queued:
    kind = registry.type(one.type)
    return Queued(
        one.hex_id, one.type, one.organisation, str(one.message["nonce"]), place.subject, place.target, one.signer,
        one.message, one.signature, registry.contract, kind.function,
        registry.calldata(one.type, one.message, one.signature),
    )  # fmt: skip


def check_nonces(
    session: Session, used: Sequence[tuple[int, str, str]], field_prefix: str | None, tables: Sequence[Table] = ()
) -> None:
    """Each (organisation, nonce) of ``used`` ((position, organisation, nonce) per fresh message) once: within the
    batch, among accepted submissions, and in ``tables`` (with ``issuer`` and ``nonce`` columns) besides."""

    def prefix(index: int) -> str:
        return "nonce" if field_prefix is None else f"{field_prefix}[{index}].nonce"

    pairs: dict[tuple[str, str], int] = {}
    for index, organisation, nonce in used:
        pair = (organisation, nonce)
        if pair in pairs:
            raise Conflict(prefix(index), "NonceUsed", f"nonce {pair[1]} of {pair[0]} is used twice")
        pairs[pair] = index
    for chunk in chunks(list(pairs), 300):
        for table in (SUBMISSIONS, *tables):
            found = session.execute(
                select(table.c.issuer, table.c.nonce).where(tuple_(table.c.issuer, table.c.nonce).in_(chunk))
            ).first()
            if found is not None:
                reason = f"{found[0]} already used nonce {found[1]} for another message (a replay?)"
                raise Conflict(prefix(pairs[(found[0], found[1])]), "NonceUsed", reason)


@dataclass(frozen=True)
class Queued:
    """One accepted message as ``signed_submission`` keeps it and ``outbox`` sends it."""

    id: str
    type: str
    issuer: str
    nonce: str
    subject: str | None
    target: str | None
    signer: str
    message: dict[str, Any]
    signature: bytes
    contract: str
    function: str
    calldata: bytes


def queue(session: Session, fresh: Sequence[Queued]) -> None:
    """Keep the messages as signed and queue them, in the caller's transaction. They are stamped a microsecond
    apart in batch order: the relayer sends by (created_at, id), so a record comes before its closure and a case's
    steps land in the order they were checked."""
    if not fresh:
        return
    base = utcnow()
    stamps = [base + timedelta(microseconds=i) for i in range(len(fresh))]
    session.execute(
        insert(SUBMISSIONS),
        [
            {
                "id": q.id, "type": q.type, "issuer": q.issuer, "nonce": q.nonce, "subject": q.subject,
                "target": q.target, "signer": q.signer, "message": to_json(q.message),
                "signature": "0x" + q.signature.hex(), "created_at": now,
            }
            for q, now in zip(fresh, stamps, strict=True)
        ],
    )  # fmt: skip
    session.execute(
        insert(OUTBOX),
        [
            {
                "id": q.id, "contract": q.contract, "function": q.function, "calldata": q.calldata,
                "status": "accepted", "attempts": 0, "created_at": now, "updated_at": now,
            }
            for q, now in zip(fresh, stamps, strict=True)
        ],
    )  # fmt: skip
