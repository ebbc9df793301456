"""Subject status (C4, C9): red list, blacklist, active records and the measures due, now or as of a block or time;
platform compliance; the public lists.

Two ways to answer a status:

- **Now** (no ``at``): from the in-memory :class:`StatusCache`, one per API process; no SQL
  (:mod:`api.status.cache`).
- **As of** ``at`` (:func:`parse_at`): from SQL (:mod:`api.status.as_of`).

Both evaluate a subject's records the same way (:mod:`api.status.evaluation` says what *active*, *notice* and
``measures_due`` mean). :mod:`api.status.subjects` parses subjects; a shredded natural person gets 410
(:mod:`api.status.shredded`). :mod:`api.status.index` holds the tables read and the indexer checkpoint;
:mod:`api.status.platform_compliance` the platforms' compliance; :mod:`api.status.public_lists` the public lists.
"""

from api.status.as_of import MAX_TIME, At, Cut, parse_at, parse_time, resolve, rows_as_of, status_as_of
from api.status.cache import FREEZE_AT, SHREDDED_POLL_SECONDS, StatusCache, install
from api.status.evaluation import BLACK, LIST_FLAGS, RED, Entry, Views
from api.status.index import (
    BLOCKS,
    CHECKPOINTS,
    IN_CHUNK,
    MEMBERS,
    PERSONS,
    RECEIPTS,
    RECORDS,
    Checkpoint,
    read_checkpoint,
)
from api.status.platform_compliance import compliance
from api.status.public_lists import public_list
from api.status.shredded import gone_item
from api.status.subjects import Subject, parse_subject

__all__ = [
    "BLACK",
    "BLOCKS",
    "CHECKPOINTS",
    "FREEZE_AT",
    "IN_CHUNK",
    "LIST_FLAGS",
    "MAX_TIME",
    "MEMBERS",
    "PERSONS",
    "RECEIPTS",
    "RECORDS",
    "RED",
    "SHREDDED_POLL_SECONDS",
    "At",
    "Checkpoint",
    "Cut",
    "Entry",
    "StatusCache",
    "Subject",
    "Views",
    "compliance",
    "gone_item",
    "install",
    "parse_at",
    "parse_subject",
    "parse_time",
    "public_list",
    "read_checkpoint",
    "resolve",
    "rows_as_of",
    "status_as_of",
]
