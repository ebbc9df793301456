"""The anchorer on a real database (SQLite, and PostgreSQL when configured): batches, chaining, restart safety."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from eth_abi import decode
from eth_account import Account
from sqlalchemy import Engine, func, insert
from sqlmodel import Session, select

from credtrace.settings import Settings
from node_bridge import anchorer as anchorer_module
from node_bridge import outbox, trace
from node_bridge.anchorer import Anchorer
from node_bridge.eip712 import recover
from node_bridge.models import OutboxEntry, utcnow
from node_bridge.projections import table_of
from node_bridge.trace import ZERO32, TraceDomain
from node_bridge.trace_models import AnchorBatch, TraceEventRow

DOMAIN = TraceDomain(31337, "0x" + "5e" * 20)
EVENTS = table_of(TraceEventRow)
_IDS = itertools.count(1)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1, written here independently of node_bridge.merkle."""
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def add_events(engine: Engine, count: int, *, time: int = 1_700_000_000, seconds_apart: float = 0.001) -> list[str]:
    """``count`` unbatched events with made-up ids, accepted in order."""
    base = utcnow()
    ids = [hashlib.sha256(f"event {next(_IDS)}".encode()).hexdigest() for _ in range(count)]
    rows = [
        {"id": "0x" + eid, "actor": "0x" + "aa" * 32, "signer": "0x" + "bb" * 20, "step": "ship", "time": time + n,
         "location": "site-1", "geo": "", "disposition": "in_transit", "parent": None, "corrects": None,
         "nonce": str(next(_IDS)), "message": {}, "signature": "0x",
         "accepted_at": base + timedelta(seconds=n * seconds_apart), "batch": None, "leaf_index": None}
        for n, eid in enumerate(ids)
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(EVENTS), rows)
    return ["0x" + i for i in ids]


@pytest.fixture
def anchor(engine: Engine, tmp_path: Path) -> Anchorer:
    settings = Settings(data_dir=tmp_path, anchor_max_batch=10)  # type: ignore[call-arg]
    return Anchorer(engine, DOMAIN, Account.create(), settings)


def test_batches_chain_their_roots_and_queue_one_signed_anchor_each(engine: Engine, anchor: Anchorer) -> None:
    assert anchor.close_batch() is None  # nothing waits
    first = add_events(engine, 13)
    assert anchor.waiting() == 10  # counted up to the batch limit
    one = anchor.close_batch()
    two = anchor.close_batch()
    assert anchor.close_batch() is None
    assert one is not None and two is not None
    assert (one.index, one.tree.size, two.index, two.tree.size) == (0, 10, 1, 3)
    assert one.event_ids + two.event_ids == first  # in (accepted_at, id) order
    assert one.tree.root == mth([bytes.fromhex(i[2:]) for i in first[:10]])
    with Session(engine) as session:
        batches = {b.index: b for b in session.exec(select(AnchorBatch)).all()}
        assert batches[0].previous_root == "0x" + ZERO32.hex()
        assert batches[1].previous_root == batches[0].root == "0x" + one.tree.root.hex()
        assert (batches[1].first_time, batches[1].last_time) == (1_700_000_010, 1_700_000_012)
        placed = session.execute(select(EVENTS.c.id, EVENTS.c.batch, EVENTS.c.leaf_index)).all()
        assert {eid: (b, leaf) for eid, b, leaf in placed} == {
            eid: (0 if n < 10 else 1, n % 10) for n, eid in enumerate(first)
        }
        entry = outbox.get(session, two.anchor_id)
        assert entry is not None and (entry.contract, entry.function) == ("TraceRegistry", "anchor")
    # the queued call is anchor(Anchor, signature) signed by the anchor key over the batch's Anchor message
    message = {"index": 1, "root": two.tree.root, "size": 3, "previousRoot": one.tree.root,
               "firstTime": 1_700_000_010, "lastTime": 1_700_000_012}  # fmt: skip
    assert two.anchor_id == "0x" + DOMAIN.digest("Anchor", message).hex()
    assert entry.calldata[:4] == trace.calldata("Anchor", message, b"\x00" * 65)[:4]
    (struct, signature) = decode(["(uint64,bytes32,uint64,bytes32,uint64,uint64)", "bytes"], entry.calldata[4:])
    assert tuple(struct) == trace.as_tuple("Anchor", message)
    assert recover(DOMAIN.digest("Anchor", message), signature) == anchor.account.address


def test_step_waits_for_a_full_batch_unless_forced(engine: Engine, anchor: Anchorer) -> None:
    add_events(engine, 4)
    assert anchor.step() is None
    add_events(engine, 6)
    full = anchor.step()
    assert full is not None and full.tree.size == 10
    add_events(engine, 1)
    assert anchor.step() is None
    forced = anchor.step(force=True)
    assert forced is not None and forced.tree.size == 1 and forced.index == 1


def test_the_end_of_a_burst_closes_a_batch_before_the_interval(engine: Engine, anchor: Anchorer) -> None:
    anchor.min_batch = 3
    add_events(engine, 4)
    assert anchor.step() is None  # first look: more may be coming
    quiet = anchor.step()  # none came: the burst is over
    assert quiet is not None and quiet.tree.size == 4
    add_events(engine, 2)
    assert anchor.step() is None and anchor.step() is None  # quiet, but fewer than min_batch: the interval's
    add_events(engine, 5)
    assert anchor.step() is None  # 7 now: still arriving
    later = anchor.step()
    assert later is not None and later.tree.size == 7


def test_a_crash_before_the_commit_leaves_nothing_half_done(
    engine: Engine, anchor: Anchorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = add_events(engine, 5)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("killed between steps")

    monkeypatch.setattr(anchorer_module.outbox, "enqueue", crash)
    with pytest.raises(RuntimeError):
        anchor.close_batch()
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(table_of(AnchorBatch))).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(table_of(OutboxEntry))).scalar_one() == 0
        assert session.execute(select(func.count()).where(EVENTS.c.batch.is_not(None))).scalar_one() == 0
    monkeypatch.undo()
    again = anchor.close_batch()  # after the restart the same events make batch 0
    assert again is not None and again.index == 0 and again.event_ids == ids


def test_two_anchorers_never_batch_an_event_twice(engine: Engine, anchor: Anchorer, tmp_path: Path) -> None:
    add_events(engine, 7)
    other = Anchorer(engine, DOMAIN, Account.create(), anchor.settings)
    a, b = anchor.close_batch(limit=4), other.close_batch(limit=4)
    assert a is not None and b is not None and (a.index, b.index) == (0, 1)
    assert set(a.event_ids).isdisjoint(b.event_ids) and len(a.event_ids) + len(b.event_ids) == 7
