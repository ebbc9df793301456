"""Traceability writes through the API, the relayer, the TraceRegistry on anvil, the indexer and the anchorer.

Proofs are checked by an RFC 6962 implementation written here (recursive MTH and PATH of section 2.1, not
node_bridge.merkle) against the roots the contract anchored; signatures are made with eth-account's own typed-data
encoder where it matters, so the API's typed data is the standard one.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, insert
from sqlmodel import Session, select

from api import trace as trace_writes
from api.ratelimit import PublicRateLimiter
from api.trace import new_serials
from credtrace.demo import DEMO_PASSWORD
from credtrace.errors import Conflict
from credtrace.keys import load_key
from node_bridge.anchorer import Anchorer, Closed
from node_bridge.consortium import Role
from node_bridge.custody import CodeState, State, StepNotAllowed, transition
from node_bridge.eip712 import reference_digest
from node_bridge.models import Member, MemberKey
from node_bridge.projections import table_of
from node_bridge.trace import ZERO32, Disposition, Step, TraceDomain, code_id, gtin_check_digit
from node_bridge.trace_models import CodeBatch, TraceCode

from .conftest import CreditWorld

PRODUCER, CARRIER, SELLER, REGULATOR = "yantai-orchard", "jiaodong-express", "qilu-mall", "market-regulation"
_GTINS = itertools.count(1)


# an independent RFC 6962 (section 2.1)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = split(len(leaves))
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = split(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def root_from(leaf: bytes, m: int, n: int, audit: Sequence[bytes]) -> bytes:
    """The root PATH(m, D[n]) leads to from leaf hash ``leaf``, recursing on the same split as MTH."""
    if n == 1:
        assert not audit, "an audit path longer than the tree is deep"
        return leaf
    assert audit, "an audit path shorter than the tree is deep"
    k = split(n)
    *below, sibling = audit
    if m < k:
        return sha(b"\x01" + root_from(leaf, m, k, below) + sibling)
    return sha(b"\x01" + sibling + root_from(leaf, m - k, n - k, below))


# the world


def valid_gtin13() -> str:
    body = f"690{int(time.time()) % 10**6:06d}{next(_GTINS):03d}"
    return body + gtin_check_digit(body)


@dataclass
class TraceWorld:
    w: CreditWorld
    anchorer: Anchorer
    nonce: Any = field(default_factory=lambda: itertools.count(int(time.time() * 1000)))
    accounts: dict[str, LocalAccount] = field(default_factory=dict)

    def account(self, name: str) -> LocalAccount:
        if name not in self.accounts:
            self.accounts[name] = self.w.key(name)
        return self.accounts[name]

    @property
    def domain(self) -> TraceDomain:
        address = self.w.deployment.contracts["TraceRegistry"].address
        return TraceDomain(self.w.deployment.chain_id, address)

    def member(self, name: str) -> str:
        return "0x" + self.w.orgs[name].hex()

    def post(self, caller: str, url: str, body: Any) -> Any:
        return self.w.client.post(url, json=body, headers=self.w.headers(caller))

    def get(self, url: str, caller: str | None = PRODUCER) -> Any:
        return self.w.client.get(url, headers=self.w.headers(caller) if caller else None)

    def lot_with_codes(self, count: int, lot: str = "L1") -> tuple[str, list[str]]:
        """A new product and lot of the demo producer with ``count`` codes, signed (not yet committed)."""
        gtin = valid_gtin13()
        assert self.post(PRODUCER, "/v1/trace/products", {"gtin": gtin, "name": "Fuji apples 5 kg"}).status_code == 201
        body = {"gtin": gtin, "lot": lot, "produced_on": "2026-11-20"}
        assert self.post(PRODUCER, "/v1/trace/lots", body).status_code == 201
        issued = self.post(PRODUCER, f"/v1/trace/lots/{gtin}/{lot}/codes", {"count": count})
        assert issued.status_code == 201, issued.text
        batch = issued.json()
        paths: list[str] = []
        while len(paths) < count:
            page = self.get(f"{batch['codes_url']}?limit=10000&offset={len(paths)}").json()
            paths += page["paths"]
        # the root is RFC 6962 over the code ids in leaf order, and the typed data is standard EIP-712
        assert batch["root"] == "0x" + mth([code_id(p) for p in paths]).hex()
        typed = batch["typed_data"]
        assert "0x" + reference_digest(typed).hex() == batch["id"]
        signed = Account.sign_typed_data(self.account(PRODUCER).key, full_message=typed)
        answer = self.post(PRODUCER, batch["signature_url"], {"signature": signed.signature.to_0x_hex()})
        assert answer.status_code == 202 and answer.json()["status"] == "accepted", answer.text
        return batch["id"], paths

    def event(self, signer: str, step: Step, codes: Sequence[str], **fields: Any) -> dict[str, Any]:
        message: dict[str, Any] = {
            "actor": self.member(signer), "step": int(step), "codes": [self.ref(c) for c in codes],
            "parent": "0x" + ZERO32.hex(), "time": int(time.time()) - 5, "location": "urn:epc:id:sgln:6901234.00001.0",
            "geo": "37.46,121.44", "disposition": int(DISPOSITIONS[step]), "corrects": "0x" + ZERO32.hex(),
            "nonce": next(self.nonce),
        }  # fmt: skip
        message.update(fields)
        return message

    @staticmethod
    def ref(code: str) -> str:
        return "0x" + code_id(code).hex() if code.startswith("/") else code

    def signed(self, signer: str | LocalAccount, message: dict[str, Any], fast: bool = False) -> dict[str, Any]:
        """Signed with eth-account's typed-data encoder (not ours), or with ``fast`` by our hasher."""
        account = self.account(signer) if isinstance(signer, str) else signer
        if fast:
            signature = "0x" + self.domain.sign(account, "TraceEvent", _values({"message": message})).hex()
            return {"message": message, "signature": signature}
        typed = self.domain.typed_data("TraceEvent", message)
        signature = Account.sign_typed_data(account.key, full_message=typed).signature.to_0x_hex()
        return {"message": message, "signature": signature}

    def submit(self, *events: dict[str, Any], caller: str = PRODUCER) -> Any:
        body = events[0] if len(events) == 1 else {"events": list(events)}
        return self.post(caller, "/v1/trace/events", body)

    def accept(self, signer: str, step: Step, codes: Sequence[str], **fields: Any) -> str:
        response = self.submit(self.signed(signer, self.event(signer, step, codes, **fields)))
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def anchor(self, limit: int | None = None) -> Closed:
        closed = self.anchorer.close_batch(limit)
        assert closed is not None
        return closed

    def anchored_roots(self) -> dict[int, bytes]:
        """index -> root, as the TraceRegistry's BatchAnchored events say."""
        registry = self.w.deployment.contract(self.w.w3, "TraceRegistry")
        logs = registry.events.BatchAnchored.get_logs(from_block=0)
        return {int(log["args"]["index"]): bytes(log["args"]["root"]) for log in logs}

    def verify(self, event_id: str, roots: dict[int, bytes], leaves: Sequence[bytes] | None = None) -> dict[str, Any]:
        """The API's proof of an event, checked independently against the anchored root."""
        response = self.get(f"/v1/trace/events/{event_id}/proof", caller=None)
        assert response.status_code == 200, response.text
        proof = response.json()
        leaf = sha(b"\x00" + bytes.fromhex(event_id[2:]))
        assert proof["leaf_hash"] == "0x" + leaf.hex()
        audit = [bytes.fromhex(h[2:]) for h in proof["audit_path"]]
        root = roots[proof["anchor"]["index"]]
        assert proof["root"] == "0x" + root.hex()
        assert root_from(leaf, proof["leaf_index"], proof["tree_size"], audit) == root
        if leaves is not None:
            assert audit == path(proof["leaf_index"], leaves)
            assert mth(leaves) == root
        assert proof["anchor"]["contract"] == self.w.deployment.contracts["TraceRegistry"].address
        assert proof["anchor"]["tx_hash"].startswith("0x") and proof["anchor"]["block_number"] > 0
        return proof


DISPOSITIONS = {
    Step.COMMISSION: Disposition.ACTIVE, Step.PACK: Disposition.IN_PROGRESS, Step.UNPACK: Disposition.ACTIVE,
    Step.SHIP: Disposition.IN_TRANSIT, Step.RECEIVE: Disposition.SELLABLE, Step.TRANSFORM: Disposition.ACTIVE,
    Step.SELL: Disposition.SOLD, Step.DELIVER: Disposition.DELIVERED, Step.RETURN: Disposition.RETURNED,
    Step.RECALL: Disposition.RECALLED, Step.DESTROY: Disposition.DESTROYED,
}  # fmt: skip


@pytest.fixture
def trace_world(credit_world: CreditWorld) -> TraceWorld:
    w = credit_world
    w.client.app.state.rate_limiter = PublicRateLimiter("100000/minute")  # type: ignore[attr-defined]
    regulator = load_key(w.settings.keys_dir, REGULATOR, DEMO_PASSWORD)
    address = w.deployment.contracts["TraceRegistry"].address
    domain = TraceDomain(w.deployment.chain_id, address)
    anchorer = Anchorer(w.relayer.engine, domain, regulator, w.settings)
    while anchorer.close_batch() is not None:  # what the demo left waiting goes first
        pass
    return TraceWorld(w, anchorer)


# tests


def test_products_lots_and_codes(trace_world: TraceWorld) -> None:
    t = trace_world
    gtin = valid_gtin13()
    bad = gtin[:-1] + str((int(gtin[-1]) + 1) % 10)
    response = t.post(PRODUCER, "/v1/trace/products", {"gtin": bad, "name": "apples"})
    assert response.status_code == 422 and response.json()["detail"]["field"] == "gtin", response.text
    assert "check digit" in response.text
    assert t.post(SELLER, "/v1/trace/products", {"gtin": gtin, "name": "apples"}).status_code == 403
    created = t.post(PRODUCER, "/v1/trace/products", {"gtin": gtin, "name": "apples"})
    assert created.status_code == 201 and created.json()["gtin"] == "0" + gtin
    assert t.post(PRODUCER, "/v1/trace/products", {"gtin": "0" + gtin, "name": "again"}).status_code == 409
    assert t.post(PRODUCER, "/v1/trace/lots", {"gtin": gtin, "lot": "a/b"}).status_code == 422
    unknown = t.post(PRODUCER, f"/v1/trace/lots/{gtin}/NOPE/codes", {"count": 3})
    assert unknown.status_code == 404, unknown.text
    assert t.post(PRODUCER, "/v1/trace/lots", {"gtin": gtin, "lot": "L7"}).status_code == 201
    too_many = t.post(PRODUCER, f"/v1/trace/lots/{gtin}/L7/codes", {"count": 100_001})
    assert too_many.status_code == 422

    batch = t.post(PRODUCER, f"/v1/trace/lots/{gtin}/L7/codes", {"count": 3}).json()
    assert batch["status"] == "unsigned" and batch["count"] == 3
    # a signature by another key is refused, and nothing is queued
    stranger = Account.sign_typed_data(Account.create().key, full_message=batch["typed_data"])
    refused = t.post(PRODUCER, batch["signature_url"], {"signature": stranger.signature.to_0x_hex()})
    assert refused.status_code == 403 and "not an active key" in refused.text
    other = t.get(f"/v1/trace/code-batches/{batch['id']}")
    assert other.json()["status"] == "unsigned"
    signed = Account.sign_typed_data(t.w.key(PRODUCER).key, full_message=batch["typed_data"])
    accepted = t.post(PRODUCER, batch["signature_url"], {"signature": signed.signature.to_0x_hex()})
    assert accepted.status_code == 202 and accepted.json()["status"] == "accepted"
    t.w.settle()
    assert t.get(f"/v1/trace/code-batches/{batch['id']}").json()["status"] == "confirmed"
    registry = t.w.deployment.contract(t.w.w3, "TraceRegistry")
    assert registry.functions.isCommitted(bytes.fromhex(batch["id"][2:])).call()

    paths = t.get(batch["codes_url"]).json()["paths"]
    assert len(set(paths)) == 3 and all(p.startswith(f"/01/0{gtin}/10/L7/21/") for p in paths)
    code = t.get(f"/v1/trace/codes{paths[0]}").json()
    assert code["state"] == "issued" and code["url"] == f"http://127.0.0.1:8000/t{paths[0]}"
    png = t.get(f"/v1/trace/codes{paths[0]}.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    svg = t.get(f"/v1/trace/codes{paths[0]}.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text
    assert t.get(f"/v1/trace/codes{paths[0]}.png", caller=SELLER).status_code == 403
    malformed = t.get("/v1/trace/codes/01/123/10/L7/21/X.png")
    assert malformed.status_code == 422 and malformed.json()["detail"]["field"] == "path"


def test_a_custody_chain_is_signed_checked_anchored_and_proved(trace_world: TraceWorld) -> None:
    t = trace_world
    _, codes = t.lot_with_codes(6)
    items, case, spare = codes[:4], codes[4], codes[5]
    ids = [
        t.accept(PRODUCER, Step.COMMISSION, [*items, case]),
        t.accept(PRODUCER, Step.PACK, items, parent=t.ref(case)),
        t.accept(CARRIER, Step.SHIP, [case]),  # reaches the items packed in the case
        t.accept(SELLER, Step.RECEIVE, [case]),
        t.accept(SELLER, Step.UNPACK, items, parent=t.ref(case)),
        t.accept(SELLER, Step.SELL, [items[0]]),
        t.accept(CARRIER, Step.DELIVER, [items[0]]),
    ]
    # states and holders as the scan reads them
    first = t.get(f"/v1/trace/codes{items[0]}").json()
    assert (first["state"], first["holder"], first["parent"]) == ("delivered", None, None)
    second = t.get(f"/v1/trace/codes{items[2]}").json()
    assert (second["state"], second["holder"]) == ("received", t.member(SELLER))
    shipped = t.get(f"/v1/trace/events/{ids[2]}", caller=None).json()
    assert shipped["status"] == "accepted" and sorted(shipped["codes"]) == sorted(t.ref(c) for c in codes[:5])
    assert "0x" + reference_digest(shipped["typed_data"]).hex() == ids[2]  # re-verifiable as stored

    # the same signed event again: the same id, nothing new; a new one is checked against the code's state
    once = t.signed(SELLER, t.event(SELLER, Step.SELL, [items[1]]))
    first_time, second_time = t.submit(once, caller=SELLER), t.submit(once, caller=CARRIER)
    assert first_time.status_code == second_time.status_code == 202, second_time.text
    assert first_time.json()["id"] == second_time.json()["id"]
    ids.append(first_time.json()["id"])
    again = t.submit(t.signed(CARRIER, t.event(CARRIER, Step.SHIP, [spare])), caller=CARRIER)
    assert again.status_code == 409 and "is issued" in again.text  # ship before commission
    waiting = t.get(f"/v1/trace/events/{ids[0]}/proof", caller=None)
    assert waiting.status_code == 409 and "waiting for a batch" in waiting.text

    closed = t.anchor()
    assert closed.tree.size == len(ids) and closed.event_ids == ids
    pending = t.get(f"/v1/trace/events/{ids[0]}/proof", caller=None)
    assert pending.status_code == 409 and "anchored but not confirmed" in pending.text
    t.w.settle()
    registry = t.w.deployment.contract(t.w.w3, "TraceRegistry")
    roots = t.anchored_roots()
    assert registry.functions.lastRoot().call() == roots[closed.index] == closed.tree.root
    leaves = [bytes.fromhex(i[2:]) for i in ids]
    for n, event_id in enumerate(ids):
        proof = t.verify(event_id, roots, leaves)
        assert (proof["leaf_index"], proof["tree_size"]) == (n, len(ids))
    assert t.get(f"/v1/trace/events/{ids[0]}", caller=None).json()["status"] == "anchored"


def test_bad_events_get_a_4xx_naming_the_cause_and_nothing_is_anchored(trace_world: TraceWorld) -> None:
    t = trace_world
    _, codes = t.lot_with_codes(4)
    commissioned = t.accept(PRODUCER, Step.COMMISSION, codes[:3])

    def rejected(body: dict[str, Any], status: int, field: str | None, cause: str, caller: str = PRODUCER) -> None:
        response = t.post(caller, "/v1/trace/events", body)
        assert response.status_code == status, response.text
        assert cause in response.text, response.text
        if field is not None:
            assert response.json()["detail"]["field"] == field, response.text

    good = t.signed(SELLER, t.event(SELLER, Step.SELL, [codes[0]]))
    # a forged signature: made by a key no member holds, or over another message than the one sent
    forged = t.signed(Account.create(), t.event(PRODUCER, Step.SHIP, [codes[1]]))
    rejected({"events": [good, forged]}, 403, None, "events[1].signature: signer")
    tampered = t.signed(PRODUCER, t.event(PRODUCER, Step.SHIP, [codes[1]]))
    tampered["message"]["location"] = "somewhere else"
    rejected(tampered, 403, None, "is not an active key")
    # a wrong role: a platform may not commission, a producer may not deliver
    rejected(t.signed(SELLER, t.event(SELLER, Step.COMMISSION, [codes[3]])), 403, None, "needs a PRODUCER signer")
    rejected(t.signed(PRODUCER, t.event(PRODUCER, Step.DELIVER, [codes[0]])), 403, None, "PLATFORM or LOGISTICS")
    # the actor must be the signer's own organisation
    rejected(t.signed(SELLER, t.event(PRODUCER, Step.SELL, [codes[0]])), 403, None, "actor")
    # wrong states: ship before commission, sold twice
    rejected(t.signed(CARRIER, t.event(CARRIER, Step.SHIP, [codes[3]])), 409, "codes[0]", "is issued")
    sold = t.signed(SELLER, t.event(SELLER, Step.SELL, [codes[1]]))
    twice = t.signed(SELLER, t.event(SELLER, Step.SELL, [codes[1]]))
    rejected({"events": [sold, twice]}, 409, "events[1].codes[0]", "is sold")
    # malformed Digital Link or GTIN, unknown code, a time in the future
    link = t.signed(PRODUCER, t.event(PRODUCER, Step.SHIP, [codes[0]]))
    link["message"]["codes"] = ["/01/123/10/L1/21/X"]  # codes may be sent as Digital Link paths
    rejected({"events": [good, link]}, 422, "events[1].codes[0]", "Digital Link")
    bad_gtin = t.signed(PRODUCER, t.event(PRODUCER, Step.SHIP, [codes[0]]))
    gtin = codes[2][4:18]
    bad_gtin["message"]["codes"] = [codes[2].replace(gtin, gtin[:-1] + str((int(gtin[-1]) + 1) % 10))]
    rejected(bad_gtin, 422, "codes[0].gtin", "check digit")
    unknown = "0x" + hashlib.sha256(b"never issued").hexdigest()
    rejected(t.signed(PRODUCER, t.event(PRODUCER, Step.SHIP, [unknown])), 404, None, "no code")
    future = t.signed(PRODUCER, t.event(PRODUCER, Step.SHIP, [codes[0]], time=int(time.time()) + 3600))
    rejected(future, 422, "time", "ahead of the server's clock")
    # a replayed nonce, a correction of someone else's event
    replay = t.event(PRODUCER, Step.SHIP, [codes[2]])
    replay["nonce"] = t.get(f"/v1/trace/events/{commissioned}", caller=None).json()["message"]["nonce"]
    rejected(t.signed(PRODUCER, replay), 409, "nonce", "already used nonce")
    rejected(t.signed(SELLER, t.event(SELLER, Step.SELL, [codes[0]], corrects=commissioned)), 403, None, "corrects")
    # no API key, no entry
    assert t.w.client.post("/v1/trace/events", json=good).status_code == 401
    # bodies that are not signed events at all
    headers = {**t.w.headers(PRODUCER), "Content-Type": "application/json"}
    for raw, named, cause in [
        (b"{not json", "body", "is not JSON"),
        (b"[]", "body", "must be an object"),
        (b'{"events": []}', "events", "1 to 5,000"),
        (b'{"events": {"message": {}}}', "events", "must be a list"),
        (b'{"events": [1]}', "events[0]", "must be an object"),
        (b'{"events": [{"message": {}, "signature": "0x", "sig": 1}]}', "events[0].sig", "is not a field"),
        (b'{"message": {}, "signature": 7}', "signature", "0x-hex"),
        (b'{"type": "Other", "message": {}, "signature": "0x"}', "type", "TraceEvent"),
    ]:
        response = t.w.client.post("/v1/trace/events", content=raw, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["detail"]["field"] == named and cause in response.text, response.text
    too_many = orjson.dumps({"events": [good] * (trace_writes.MAX_EVENTS + 1)})
    response = t.w.client.post("/v1/trace/events", content=too_many, headers=headers)
    assert (response.status_code, response.json()["detail"]["field"]) == (422, "events")

    # nothing of a rejected request was stored: the good event of each rejected batch is unknown
    assert t.get(f"/v1/trace/events/{'0x' + t.domain.digest('TraceEvent', _values(good)).hex()}").status_code == 404
    closed = t.anchor()
    assert closed.event_ids == [commissioned]
    assert t.anchorer.close_batch() is None
    # and a correction by the same actor with the same step amends the data without moving codes
    fix = t.accept(PRODUCER, Step.COMMISSION, codes[:3], corrects=commissioned, location="urn:epc:id:sgln:6901234.1")
    assert t.get(f"/v1/trace/codes{codes[0]}").json()["last_event"] == commissioned
    assert t.get(f"/v1/trace/events/{fix}", caller=None).json()["corrects"] == commissioned


def _values(body: dict[str, Any]) -> dict[str, Any]:
    """A signed body's message as the Python values the digest takes."""
    message = dict(body["message"])
    for name in ("actor", "parent", "corrects"):
        message[name] = bytes.fromhex(message[name][2:])
    message["codes"] = [bytes.fromhex(c[2:]) for c in message["codes"]]
    return message


def test_proofs_of_trees_of_1_2_3_7_8_and_1000_events_verify_against_the_chain(trace_world: TraceWorld) -> None:
    t = trace_world
    sizes = [1, 2, 3, 7, 8, 1000]
    _, codes = t.lot_with_codes(sum(sizes))
    batches: list[tuple[Closed, list[str]]] = []
    start = 0
    for size in sizes:
        events = [
            t.signed(PRODUCER, t.event(PRODUCER, Step.COMMISSION, [c]), fast=size > 8)
            for c in codes[start : start + size]
        ]
        start += size
        ids: list[str] = []
        for chunk in range(0, size, 500):
            response = t.submit(*events[chunk : chunk + 500]) if size > 1 else t.submit(events[0])
            assert response.status_code == 202, response.text
            body = response.json()
            ids += [a["id"] for a in body["accepted"]] if "accepted" in body else [body["id"]]
        batches.append((t.anchor(), ids))
    t.w.settle()
    roots = t.anchored_roots()
    registry = t.w.deployment.contract(t.w.w3, "TraceRegistry")
    last = batches[-1][0].index
    assert registry.functions.anchoredCount().call() == last + 1
    assert registry.functions.lastRoot().call() == roots[last]
    for closed, posted in batches:
        ids = closed.event_ids  # in (accepted_at, id) order: by id among one request's events
        assert sorted(ids) == sorted(posted) and closed.tree.size == len(posted)
        leaves = [bytes.fromhex(i[2:]) for i in ids]
        assert mth(leaves) == roots[closed.index]
        checked = ids if len(ids) <= 8 else [*ids[::97], ids[-1]]
        for event_id in checked:
            proof = t.verify(event_id, roots, leaves if len(ids) <= 8 else None)
            assert proof["tree_size"] == len(ids)
        if len(ids) > 8:
            for m in (0, 511, 512, 999):
                assert t.verify(ids[m], roots)["audit_path"] == ["0x" + h.hex() for h in path(m, leaves)]


def test_custody_state_machine_rules() -> None:
    start = CodeState(State.ISSUED, None, None, None)
    with pytest.raises(StepNotAllowed, match="is issued"):
        transition(start, Step.SHIP, "p", "e0", None)
    state = transition(start, Step.COMMISSION, "p", "e1", None)
    state = transition(state, Step.PACK, "p", "e2", "case")
    assert (state.state, state.parent) == (State.COMMISSIONED, "case")
    with pytest.raises(StepNotAllowed, match="not in the parent"):
        transition(state, Step.UNPACK, "p", "e3", "other")
    state = transition(state, Step.SHIP, "l", "e3", None)
    state = transition(state, Step.RECEIVE, "m", "e4", None)
    state = transition(state, Step.SELL, "m", "e5", None)
    assert (state.state, state.holder) == (State.SOLD, "m")
    with pytest.raises(StepNotAllowed, match="is sold"):
        transition(state, Step.SELL, "m", "e6", None)
    recalled = transition(state, Step.RECALL, "r", "e6", None)
    assert (recalled.state, recalled.holder) == (State.RECALLED, "m")
    destroyed = transition(recalled, Step.DESTROY, "r", "e7", None)
    for step in Step:
        with pytest.raises(StepNotAllowed, match="is destroyed"):
            transition(destroyed, step, "p", "e8", "case")
    with pytest.raises(StepNotAllowed):
        transition(start, Step.RECALL, "r", "e9", None)  # recall only after commission


def test_serials_are_distinct_and_unguessable() -> None:
    serials = new_serials(100_000)
    assert len(set(serials)) == 100_000 and all(len(s) == 16 for s in serials)
    assert len(set("".join(serials[:1000]))) == 32  # five random bits a character


def test_bulk_issue_and_accept_on_the_database(engine: Engine) -> None:
    """Issuance and a large event batch on SQLite and PostgreSQL (COPY and executemany paths, conditional moves)."""
    domain = TraceDomain(31337, "0x" + "11" * 20)
    account = Account.create()
    producer = "0x" + "ab" * 32
    with engine.begin() as connection:
        member = {"id": producer, "name": "p", "roles": int(Role.PRODUCER), "status": "active", "admitted_block": 1,
                  "updated_block": 1}  # fmt: skip
        connection.execute(insert(table_of(Member)), [member])
        key = {"address": account.address, "member_id": producer, "active": True, "added_block": 1}
        connection.execute(insert(table_of(MemberKey)), [key])
    with Session(engine) as session:
        trace_writes.register_product(session, producer, "6901234567892", "juice")
        lot = trace_writes.register_lot(session, producer, "6901234567892", "L1")
        issued = trace_writes.issue_codes(session, domain, producer, lot, 3000)
        session.commit()
        assert issued.batch.root == "0x" + mth([code_id(p) for p in issued.paths]).hex()
        assert trace_writes.batch_paths(session, issued.batch.id, 5, 0) == issued.paths[:5]
        batch = session.get(CodeBatch, issued.batch.id)
        assert batch is not None
        batch.signature = "0x" + "00" * 65  # as if signed: accepted for commitCodes
        session.commit()
    now = int(time.time())

    def signed(step: Step, codes: Sequence[str], nonce: int) -> trace_writes.SignedEvent:
        message = {"actor": bytes.fromhex(producer[2:]), "step": int(step), "codes": [code_id(c) for c in codes],
                   "parent": ZERO32, "time": now, "location": "site", "geo": "", "disposition": 0,
                   "corrects": ZERO32, "nonce": nonce}  # fmt: skip
        signature = domain.sign(account, "TraceEvent", message)
        return trace_writes.SignedEvent(trace_writes.to_json(message), "0x" + signature.hex())

    events = [signed(Step.COMMISSION, [p], n) for n, p in enumerate(issued.paths[:2500])]
    with Session(engine) as session:
        accepted = trace_writes.accept_events(session, domain, events)
        session.commit()
    assert len({a.id for a in accepted}) == 2500
    with Session(engine) as session:
        accepted = trace_writes.accept_events(session, domain, [signed(Step.SHIP, issued.paths[:3], 9999)])
        session.commit()
        states = {c.path: c.state for c in session.exec(select(TraceCode)).all()}
    assert [states[p] for p in issued.paths[:4]] == ["in_transit"] * 3 + ["commissioned"]
    assert states[issued.paths[2600]] == "issued"
    with Session(engine) as session, pytest.raises(Conflict, match="is issued"):
        trace_writes.accept_events(session, domain, [signed(Step.SHIP, issued.paths[2600:2601], 10_000)])
