"""Records and their evaluation: a subject's status at a unix time from its open records.

Semantics (the same as the CreditRegistry's ``isRedListed`` / ``isBlacklisted`` / ``recordState`` views): a record
is *active* at unix time ``t`` when ``effective_at <= t < valid_until`` and it was not revoked or repaired by then;
it is in its *notice* window while ``t < effective_at``. A subject is red-listed when it has an active ``red_list``
record, blacklisted when it has an active ``blacklist`` record. ``measures_due`` is, over the active records, the
union of the catalogue's rule measures for each record's (kind, tier) and the measures its own ``measures`` bits
name (:mod:`credtrace.measures`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from api.status.subjects import Subject
from credtrace.measures import Catalogue

LIST_FLAGS = {"red_list": 1, "blacklist": 2}
RED, BLACK = 1, 2


class Entry(NamedTuple):
    """A record as status answers show it, prepared once: its JSON is serialised when it is loaded."""

    id: str
    subject: str
    flag: int
    effective_at: int
    valid_until: int
    mask: int
    order: tuple[int, int]
    view: orjson.Fragment
    """Every field shown in a status answer (the list it is in, ``records`` or ``notice``, says its state)."""
    ref: orjson.Fragment
    """``{id, kind, tier, block_number, log_index, tx_hash}``: the record and the transaction that carried it."""


def _fragment(value: Any) -> orjson.Fragment:
    """Pre-serialised JSON, copied to its exact size (``orjson.dumps`` keeps a buffer of several KB)."""
    return orjson.Fragment(bytes(memoryview(orjson.dumps(value))))


class Views:
    """Builds answers: memoised JSON pieces of the catalogue, entries from rows, and the evaluation itself."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._slugs: dict[int, list[str]] = {}
        self._slug_json: dict[int, orjson.Fragment] = {}
        self._measures: dict[int, dict[str, Any]] = {}

    def slugs(self, mask: int) -> list[str]:
        found = self._slugs.get(mask)
        if found is None:
            found = self._slugs[mask] = [m.slug for m in self.catalogue.describe(mask)]
        return found

    def slug_json(self, mask: int) -> orjson.Fragment:
        found = self._slug_json.get(mask)
        if found is None:
            found = _fragment(self.slugs(mask))
            if len(self._slug_json) < 65536:
                self._slug_json[mask] = found
        return found

    def measure(self, code: int) -> dict[str, Any]:
        found = self._measures.get(code)
        if found is None:
            found = self._measures[code] = self.catalogue.by_code(code).model_dump(exclude={"description"})
        return found

    def entry(self, row: Sequence[Any]) -> Entry:
        """An :class:`Entry` from a row of :data:`COLUMNS`."""
        (record_id, subject, kind, tier, issuer, legal_basis, measures, effective_at, public_until, valid_until,
         block_number, tx_hash, log_index, _closed_block) = row  # fmt: skip
        mask = self.catalogue.due_mask(kind, tier, measures)
        ref = {"id": record_id, "kind": kind, "tier": tier, "block_number": block_number, "log_index": log_index,
               "tx_hash": tx_hash}  # fmt: skip
        view = {
            **ref, "issuer": issuer, "legal_basis": legal_basis, "measures": self.slugs(mask),
            "effective_at": effective_at, "public_until": public_until, "valid_until": valid_until,
        }  # fmt: skip
        return Entry(
            record_id, subject, LIST_FLAGS.get(kind, 0), effective_at, valid_until, mask, (block_number, log_index),
            _fragment(view), _fragment(ref),
        )  # fmt: skip

    def _clear(self, subject: Subject, full: bool) -> dict[str, Any]:
        """The status of a subject without open records."""
        answer: dict[str, Any] = {"subject": subject.id, "subject_code": subject.code, "red_listed": False,
                  "blacklisted": False, "records": [], "notice": [], "measures_due": []}  # fmt: skip
        if full:
            answer["proof"] = {"red_list": [], "blacklist": []}
        return answer

    def evaluate(self, subject: Subject, entries: Sequence[Entry], now: int, full: bool = True) -> dict[str, Any]:
        """The status of ``subject`` at unix time ``now`` from its open records (closed ones must be left out).

        ``full``: records with every field, measures_due with names and the records behind each, and the proof;
        otherwise (batch, compact) records as references and measures_due as slugs.
        """
        if not entries:
            return self._clear(subject, full)
        active: list[Entry] = []
        notice: list[Entry] = []
        red = black = False
        union = 0
        for entry in entries:
            if entry.valid_until <= now:
                continue
            if entry.effective_at > now:
                notice.append(entry)
                continue
            active.append(entry)
            if entry.flag == RED:
                red = True
            elif entry.flag == BLACK:
                black = True
            union |= entry.mask
        if not full:
            return {
                "subject": subject.id, "subject_code": subject.code, "red_listed": red, "blacklisted": black,
                "records": [e.ref for e in active], "notice": [e.ref for e in notice],
                "measures_due": self.slug_json(union),
            }  # fmt: skip
        due = []
        code = 0
        while union >> code:
            if union >> code & 1:
                due.append({**self.measure(code), "records": [e.id for e in active if e.mask >> code & 1]})
            code += 1
        return {
            "subject": subject.id,
            "subject_code": subject.code,
            "red_listed": red,
            "blacklisted": black,
            "records": [e.view for e in active],
            "notice": [e.view for e in notice],
            "measures_due": due,
            "proof": {
                "red_list": [e.ref for e in active if e.flag == RED],
                "blacklist": [e.ref for e in active if e.flag == BLACK],
            },
        }
