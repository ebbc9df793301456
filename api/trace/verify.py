"""Signed checkpoint events before the database: a TraceEvent's JSON normalised to the values that are signed, its
EIP-712 digest (the event's id) and the key that signed it.

This is pure CPU work, about 70 µs an event on these machines, most of it the secp256k1 recovery; one Python
process checks some 14,000 events a second at most, and the rest of accepting them (standing, custody, SQL) needs
time too. So :class:`Verifier` splits a big batch over a pool of worker processes, one per core by default
(``trace_verify_workers``) and at a lower CPU priority (``trace_verify_niceness``), while the request's thread
waits; small batches are checked in the calling thread, where a pool's round trip would cost more than it saves.
Either way the first bad event (lowest index) is the one reported, as :class:`BadEvent`. What needs the database
(the signer's standing and roles, the codes' custody) stays with the caller, :mod:`api.trace.events`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from api.lifespan import tune_gc
from api.trace.products import MAX_TEXT
from credtrace.errors import ValidationFailed
from node_bridge import trace
from node_bridge.eip712 import JSON_SAFE_INT, hex32, recover, to_bytes, to_int, to_text
from node_bridge.trace import ZERO32, Disposition, Step, TraceDomain

log = logging.getLogger("api.trace.verify")
EVENT_FIELDS = {f["name"]: f["type"] for f in trace.EIP712_TYPES["TraceEvent"]}
OPTIONAL_EVENT_FIELDS = {"parent": ZERO32, "geo": "", "corrects": ZERO32}
PARALLEL_FROM = 200
"""Events in a batch from which a pool (if any) checks it; below, the calling thread does."""
NICENESS = 10
"""How far below the API process the workers' CPU priority is (``nice``), by default. When every core is busy, the
request thread that writes accepted events under the write lock (the narrowest part of the path to anchored) and
the consumer scans run first, and the workers, which check the next batches meanwhile, take the CPU left over."""


class Verified(NamedTuple):
    """A well-formed event and the address that signed it, in the forms the database stores (hex, names, JSON).

    ``id`` is the EIP-712 digest; ``message`` the signed message as canonical JSON (ids rather than Digital Link
    paths, numbers rather than names); ``signature`` 0x-hex. Made where the work is done (a worker process), so
    the request's thread only moves strings (a tuple: cheap to send back).
    """

    id: str
    signer: str
    actor: str
    step: int
    codes: list[str]
    parent: str | None
    corrects: str | None
    time: int
    location: str
    geo: str
    disposition: str
    nonce: str
    message: str
    signature: str


class BadEvent(Exception):
    """Event ``index`` of a batch is malformed or its signature does not recover; ``error`` names the field."""

    def __init__(self, index: int, error: ValidationFailed) -> None:
        super().__init__(index, error.field, error.reason)
        self.index = index
        self.error = error

    def __reduce__(self) -> tuple[Any, ...]:  # crosses the process boundary: rebuilt from plain values
        return _bad_event, (self.index, self.error.field, self.error.reason)


def _bad_event(index: int, field: str, reason: str) -> BadEvent:
    return BadEvent(index, ValidationFailed(field, reason))


# one event


def _code_ref(value: Any, field_name: str) -> bytes:
    """A code id from 0x-hex or a GS1 Digital Link path."""
    if isinstance(value, str) and value.startswith("/"):
        return trace.code_id(digital_link_of(value, field_name))
    raw = to_bytes(value, field_name)
    if len(raw) != 32:
        raise ValidationFailed(field_name, f"must be a 32-byte code id or a Digital Link path, got {len(raw)} bytes")
    return raw


def digital_link_of(path: str, field_name: str) -> str:
    gtin, lot, serial = trace.parse_digital_link(path, field_name)
    return trace.digital_link(gtin, lot, serial)


def _enum(kind: type[Step] | type[Disposition], value: Any, field_name: str) -> int:
    if isinstance(value, str) and not value.isdigit():
        try:
            return int(kind[value.upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in kind)
            raise ValidationFailed(field_name, f"{value!r} is not one of {names}") from None
    number = to_int(value, field_name)
    if number not in kind._value2member_map_:
        raise ValidationFailed(field_name, f"{number} is not a {kind.__name__.lower()} (0-{len(kind) - 1})")
    return number


def normalise_event(message: Mapping[str, Any]) -> dict[str, Any]:
    """A TraceEvent as JSON (codes and parent as 0x ids or Digital Link paths; step and disposition as numbers or
    names) as the Python values that are signed; errors name the field (``codes[2]``)."""
    if not isinstance(message, Mapping):
        raise ValidationFailed("message", "must be an object")
    if unknown := sorted(set(message) - set(EVENT_FIELDS)):
        raise ValidationFailed(unknown[0], "is not a field of TraceEvent")
    out: dict[str, Any] = {}
    for name in EVENT_FIELDS:
        value = message.get(name)
        if value is None:
            if name not in OPTIONAL_EVENT_FIELDS:
                raise ValidationFailed(name, "is missing")
            out[name] = OPTIONAL_EVENT_FIELDS[name]
            continue
        if name == "actor":
            raw = to_bytes(value, name)
            if len(raw) != 32:
                raise ValidationFailed(name, f"must be a 32-byte member id, got {len(raw)} bytes")
            out[name] = raw
        elif name in ("parent", "corrects"):
            out[name] = _code_ref(value, name) if name == "parent" else to_bytes(value, name)
            if len(out[name]) != 32:
                raise ValidationFailed(name, "must be 32 bytes")
        elif name == "codes":
            if not isinstance(value, list):
                raise ValidationFailed(name, "must be a list of code ids or Digital Link paths")
            out[name] = [_code_ref(v, f"codes[{j}]") for j, v in enumerate(value)]
        elif name == "step":
            out[name] = _enum(Step, value, name)
        elif name == "disposition":
            out[name] = _enum(Disposition, value, name)
        elif name in ("time", "nonce"):
            out[name] = to_int(value, name)
            if not 0 <= out[name] < 2 ** (64 if name == "time" else 256):
                raise ValidationFailed(name, "is out of range")
        else:
            out[name] = to_text(value, name, MAX_TEXT)
    trace.check_event(out)
    return out


def verify_event(domain: TraceDomain, message: Mapping[str, Any], signature: str) -> Verified:
    """One event normalised, hashed and its signer recovered; ValidationFailed naming the field."""
    values = normalise_event(message)
    raw = to_bytes(signature, "signature")
    digest = domain.digest("TraceEvent", values)
    signer = recover(digest, raw)
    # the signed message as JSON, as node_bridge.eip712.to_json gives it (tests hold them equal), from the hex
    # forms needed anyway: a generic pass over the values costs as much again
    shown = {name: hex32(values[name]) for name in ("actor", "parent", "corrects")}
    codes = [hex32(c) for c in values["codes"]]
    nonce = values["nonce"]
    signed = orjson.dumps({
        "actor": shown["actor"], "step": values["step"], "codes": codes, "parent": shown["parent"],
        "time": values["time"], "location": values["location"], "geo": values["geo"],
        "disposition": values["disposition"], "corrects": shown["corrects"],
        "nonce": str(nonce) if nonce > JSON_SAFE_INT else nonce,
    }).decode()  # fmt: skip
    return Verified(
        id=hex32(digest),
        signer=signer,
        actor=shown["actor"],
        step=values["step"],
        codes=codes,
        parent=shown["parent"] if values["parent"] != ZERO32 else None,
        corrects=shown["corrects"] if values["corrects"] != ZERO32 else None,
        time=values["time"],
        location=values["location"],
        geo=values["geo"],
        disposition=Disposition(values["disposition"]).name.lower(),
        nonce=str(nonce),
        message=signed,
        signature=hex32(raw),
    )


# a batch


Item = tuple[Mapping[str, Any], str]
"""(message as JSON, signature as 0x-hex)."""


def verify_events(domain: TraceDomain, items: Sequence[Item], start: int = 0) -> list[Verified]:
    """Each event checked in order; BadEvent for the first bad one (``start`` is the index of ``items[0]``)."""
    out = []
    for offset, (message, signature) in enumerate(items):
        try:
            out.append(verify_event(domain, message, signature))
        except ValidationFailed as exc:
            raise BadEvent(start + offset, exc) from None
    return out


@lru_cache(maxsize=8)
def _domain(chain_id: int, address: str) -> TraceDomain:
    return TraceDomain(chain_id, address)


def _verify_part(chain_id: int, address: str, items: Sequence[Item], start: int) -> list[Verified]:
    """What a worker process runs: one part of a batch."""
    return verify_events(_domain(chain_id, address), items, start)


def _ready() -> int:
    return os.getpid()


def _worker_started(niceness: int) -> None:
    tune_gc()  # as in the API process: a batch allocates tens of thousands of objects
    if niceness:
        os.nice(niceness)


class Verifier:
    """Checks batches of signed events, big ones over ``workers`` processes (0: always in the calling thread),
    which run ``niceness`` below the calling process's CPU priority (see :data:`NICENESS`).

    The pool starts at the first big batch (or :meth:`start`), restarts if a worker dies, and stops with
    :meth:`close`. Worker processes are spawned, not forked: the API process runs threads.
    """

    def __init__(
        self, workers: int | None = None, parallel_from: int = PARALLEL_FROM, niceness: int = NICENESS
    ) -> None:
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.parallel_from = parallel_from
        self.niceness = niceness
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=context, initializer=_worker_started, initargs=(self.niceness,)
                )
            return self._pool

    def start(self) -> None:
        """Start the workers now and wait until each has imported this module (about a second)."""
        if self.workers:
            pool = self._executor()
            for future in [pool.submit(_ready) for _ in range(self.workers)]:
                future.result()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def verify(self, domain: TraceDomain, items: Sequence[Item]) -> list[Verified]:
        """Each event normalised, hashed and its signer recovered, in order; BadEvent for the first bad one."""
        if self.workers < 1 or len(items) < self.parallel_from:
            return verify_events(domain, items)
        size = -(-len(items) // self.workers)
        pool = self._executor()
        try:
            futures: list[Future[list[Verified]]] = [
                pool.submit(_verify_part, domain.chain_id, domain.verifying_contract, items[i : i + size], i)
                for i in range(0, len(items), size)
            ]
            out: list[Verified] = []
            for future in futures:  # in order: the first BadEvent raised is the lowest index
                out.extend(future.result())
            return out
        except BrokenProcessPool:  # a worker died (killed, out of memory): a new pool next time, this batch here
            log.warning("a signature worker died; checking this batch in the request thread")
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            return verify_events(domain, items)
