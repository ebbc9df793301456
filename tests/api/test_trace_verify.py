"""Checking signed trace events' shape and signatures over worker processes (api/trace/verify.py): real spawned
processes, the same answers as the request's thread, the first bad event named, a dead worker survived."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from eth_account import Account

from api.trace.verify import NICENESS, BadEvent, Verifier, verify_events
from node_bridge.eip712 import reference_digest, to_json
from node_bridge.trace import ZERO32, TraceDomain

DOMAIN = TraceDomain(31337, "0x" + "22" * 20)
ACCOUNT = Account.create()
ACTOR = "0x" + "ab" * 32


def events(count: int) -> list[tuple[dict[str, Any], str]]:
    out = []
    for n in range(count):
        message = {"actor": bytes.fromhex(ACTOR[2:]), "step": 0, "codes": [os.urandom(32)], "parent": ZERO32,
                   "time": int(time.time()), "location": "site-1", "geo": "", "disposition": 0, "corrects": ZERO32,
                   "nonce": n + 1}  # fmt: skip
        out.append((to_json(message), "0x" + DOMAIN.sign(ACCOUNT, "TraceEvent", message).hex()))
    return out


@pytest.fixture(scope="module")
def pool() -> Iterator[Verifier]:
    verifier = Verifier(workers=2, parallel_from=50)
    verifier.start()
    yield verifier
    verifier.close()


def test_a_pool_answers_exactly_as_the_request_thread(pool: Verifier) -> None:
    items = events(301)
    parallel = pool.verify(DOMAIN, items)
    assert parallel == verify_events(DOMAIN, items)
    assert {v.signer for v in parallel} == {ACCOUNT.address}
    assert [v.nonce for v in parallel] == [str(n + 1) for n in range(301)]  # in the order sent
    typed = DOMAIN.typed_data("TraceEvent", items[200][0])
    assert parallel[200].id == "0x" + reference_digest(typed).hex()  # eth-account's digest, not ours
    assert [orjson.loads(v.message) for v in parallel] == [message for message, _ in items]  # stored as signed


def test_the_first_bad_event_is_named_whichever_worker_checks_it(pool: Verifier) -> None:
    items = events(120)
    late = list(items)
    late[110] = ({**late[110][0], "codes": ["/01/123/10/L1/21/X"]}, late[110][1])  # in the second worker's half
    with pytest.raises(BadEvent) as raised:
        pool.verify(DOMAIN, late)
    assert (raised.value.index, raised.value.error.field) == (110, "codes[0]")
    early = list(late)
    early[7] = (early[7][0], early[7][1][:-2])  # 64 bytes: no v
    with pytest.raises(BadEvent) as raised:
        pool.verify(DOMAIN, early)
    assert (raised.value.index, raised.value.error.field) == (7, "signature")


def priorities(verifier: Verifier, expected: int) -> list[int]:
    """Each worker process's CPU priority, once all are ``expected`` or after 10 s (a worker still starting)."""
    assert verifier._pool is not None
    deadline = time.monotonic() + 10
    while True:
        seen = [os.getpriority(os.PRIO_PROCESS, pid) for pid in verifier._pool._processes]
        if set(seen) == {expected} or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def test_the_workers_run_below_the_callers_cpu_priority(pool: Verifier) -> None:
    pool.verify(DOMAIN, events(60))
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert priorities(pool, min(19, mine + NICENESS)) == [min(19, mine + NICENESS)] * 2
    level = Verifier(workers=1, parallel_from=1, niceness=0)
    try:
        level.start()
        assert priorities(level, mine) == [mine]
    finally:
        level.close()


def test_small_batches_stay_in_the_calling_thread() -> None:
    verifier = Verifier(workers=2, parallel_from=50)
    assert len(verifier.verify(DOMAIN, events(49))) == 49
    assert verifier._pool is None  # no process was started for them


def test_a_killed_worker_costs_no_batch(pool: Verifier) -> None:
    items = events(100)
    expected = verify_events(DOMAIN, items)
    assert pool._pool is not None
    for pid in list(pool._pool._processes):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    assert pool.verify(DOMAIN, items) == expected  # checked in this thread when the pool is broken
    assert pool.verify(DOMAIN, items) == expected  # and by a new pool after
    assert pool._pool is not None
