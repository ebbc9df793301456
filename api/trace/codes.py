"""Code issuance: unguessable serials, a lot's codes and their RFC 6962 root, the ``CodeBatch`` the producer signs
(whose root then goes to the TraceRegistry through the outbox), and reading codes back."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.signers import signer_standing
from api.trace.sql import CODES, bulk_insert, db_time
from credtrace.errors import Conflict, NotAuthorised, NotFound, ValidationFailed
from node_bridge import outbox, trace
from node_bridge.consortium import Role
from node_bridge.custody import State
from node_bridge.eip712 import hex32, keccak, recover, to_bytes
from node_bridge.merkle import MerkleTree
from node_bridge.models import utcnow
from node_bridge.trace import TraceDomain
from node_bridge.trace_models import CodeBatch, Lot, TraceCode

MAX_CODES = 100_000

_SERIAL_TABLE = bytes(ord(trace.SERIAL_ALPHABET[i % 32]) for i in range(256))


def new_serials(count: int) -> list[str]:
    """``count`` distinct unguessable serials of :data:`node_bridge.trace.SERIAL_LENGTH` characters.

    Each character is 5 bits of :func:`secrets.token_bytes` (32 of the serial alphabet's letters), so a serial
    holds 80 random bits; a hundred thousand cost a few milliseconds.
    """
    size = trace.SERIAL_LENGTH
    serials: set[str] = set()
    while len(serials) < count:
        need = count - len(serials)
        text = secrets.token_bytes(need * size).translate(_SERIAL_TABLE).decode()
        serials.update(text[i : i + size] for i in range(0, need * size, size))
    return list(serials)


def code_batch_message(batch: CodeBatch, lot: Lot) -> dict[str, Any]:
    """The ``CodeBatch`` message of a batch row."""
    return {
        "producer": bytes.fromhex(batch.producer[2:]),
        "gtin": lot.gtin,
        "lot": lot.lot,
        "count": batch.count,
        "root": bytes.fromhex(batch.root[2:]),
        "nonce": int(batch.nonce),
    }


@dataclass(frozen=True)
class IssuedBatch:
    batch: CodeBatch
    message: dict[str, Any]
    paths: list[str]


def issue_codes(session: Session, domain: TraceDomain, producer: str, lot: Lot, count: int) -> IssuedBatch:
    """Generate ``count`` codes of ``lot``, their RFC 6962 root (leaf data = code id, in leaf order) and the unsigned
    ``CodeBatch``; stores codes and batch. The producer signs the batch next (:func:`sign_code_batch`)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_CODES:
        raise ValidationFailed("count", f"must be 1 to {MAX_CODES:,} codes")
    prefix = f"/01/{lot.gtin}/10/{lot.lot}/21/"
    paths = [prefix + serial for serial in new_serials(count)]
    ids = [keccak(path.encode()) for path in paths]
    root = MerkleTree(ids).root
    message = {
        "producer": bytes.fromhex(producer[2:]),
        "gtin": lot.gtin,
        "lot": lot.lot,
        "count": count,
        "root": root,
        "nonce": secrets.randbelow(2**53),
    }
    batch_id = hex32(domain.digest("CodeBatch", message))
    now = utcnow()
    batch = CodeBatch(
        id=batch_id, lot_id=lot.id, producer=producer, count=count, root=hex32(root), nonce=str(message["nonce"]),
        created_at=now,
    )  # fmt: skip
    session.add(batch)
    session.flush()
    connection = session.connection()
    stamp, issued = db_time(connection, now), State.ISSUED.value
    rows = [
        ("0x" + i.hex(), p, lot.id, batch_id, n, issued, None, None, None, stamp)
        for n, (i, p) in enumerate(zip(ids, paths, strict=True))
    ]
    try:
        bulk_insert(connection, CODES, rows)
    except IntegrityError:  # 80 random bits: a clash with an earlier serial is not expected in practice
        raise Conflict("count", "SerialClash", "a generated serial clashed with an issued one; issue again") from None
    return IssuedBatch(batch, message, paths)


def own_batch(session: Session, producer: str, batch_id: str) -> tuple[CodeBatch, Lot]:
    batch = session.get(CodeBatch, batch_id.lower())
    if batch is None:
        raise NotFound(f"no code batch {batch_id} was issued here")
    if batch.producer != producer:
        raise NotAuthorised(f"code batch {batch_id} belongs to producer {batch.producer}, not you")
    lot = session.get(Lot, batch.lot_id)
    assert lot is not None
    return batch, lot


def sign_code_batch(session: Session, domain: TraceDomain, producer: str, batch_id: str, signature: str) -> CodeBatch:
    """Attach the producer's signature to a code batch and queue ``commitCodes`` (idempotent for the same one)."""
    batch, lot = own_batch(session, producer, batch_id)
    raw = to_bytes(signature, "signature")
    message = code_batch_message(batch, lot)
    signer = recover(domain.digest("CodeBatch", message), raw)
    standing = signer_standing(session, signer)
    if standing is None or standing[0] != batch.producer:
        raise NotAuthorised(
            f"signature: signer {signer} is not an active key of producer {batch.producer} (or the batch was signed "
            f"for another chain or contract than chain {domain.chain_id}, {domain.verifying_contract})"
        )
    if not standing[1] & Role.PRODUCER:
        raise NotAuthorised(f"signature: committing codes needs a PRODUCER signer; {signer} is not one")
    if batch.signature is not None:
        return batch
    batch.signature, batch.signer, batch.signed_at = "0x" + raw.hex(), signer, utcnow()
    session.add(batch)
    outbox.enqueue(session, batch.id, trace.CONTRACT, "commitCodes", trace.calldata("CodeBatch", message, raw))
    return batch


def batch_paths(session: Session, batch_id: str, limit: int, offset: int) -> list[str]:
    rows = session.execute(
        select(CODES.c.path)
        .where(CODES.c.batch_id == batch_id)
        .order_by(CODES.c.leaf_index)
        .limit(limit)
        .offset(offset)
    )
    return [r[0] for r in rows]


def code_by_path(session: Session, path: str, field_name: str = "path") -> TraceCode:
    trace.parse_digital_link(path, field_name)
    code = session.get(TraceCode, hex32(trace.code_id(path)))
    if code is None:
        raise NotFound(f"{field_name}: no code {path} was issued here")
    return code
