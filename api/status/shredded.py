"""Natural persons whose salt was shredded: 410 (:class:`Gone`, via :func:`credtrace.persons.ensure_not_shredded`)
for a single subject, a ``Gone`` item in a batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlmodel import Session

from api.status.index import IN_CHUNK, PERSONS
from api.status.subjects import Subject
from credtrace import persons
from credtrace.errors import Gone
from node_bridge.projections import chunks


def gone_of(session: Session, subject: Subject) -> Gone | None:
    """The one place that asks :mod:`credtrace.persons` whether a natural person was shredded (410)."""
    if not subject.is_person:
        return None
    try:
        persons.ensure_not_shredded(session, subject.id)
    except Gone as exc:
        return exc
    return None


def shredded_among(session: Session | Connection, commitments: Sequence[str]) -> set[str]:
    """Which of ``commitments`` the ``person`` table marks shredded (one query per 500, not one per subject)."""
    found: set[str] = set()
    unique = list(dict.fromkeys(commitments))
    for chunk in chunks(unique, IN_CHUNK):
        query = select(PERSONS.c.commitment).where(PERSONS.c.commitment.in_(chunk), PERSONS.c.shredded_at.is_not(None))
        found.update(str(c).lower() for c in session.execute(query).scalars())
    return found


def gone_item(subject: Subject, exc: Gone) -> dict[str, Any]:
    """A batch result for a shredded subject (the batch goes on; a single request answers 410)."""
    return {"subject": subject.id, "subject_code": None, "error": "Gone", "message": str(exc)}
