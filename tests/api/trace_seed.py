"""Traceability data written straight into the tables, with real EIP-712 signatures: for scan tests and the page test.

Members, their keys, a product, a lot, codes and signed checkpoint events, and batches of events with their Merkle
root (on chain, as the indexer records it, when the ``trace_chain_anchor`` table exists).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, MetaData, Table, insert, inspect, update

from node_bridge.consortium import Role, member_id
from node_bridge.merkle import MerkleTree
from node_bridge.models import CreditRecordRow, IndexedBlock, IndexerCheckpoint, Member, MemberKey
from node_bridge.projections import table_of
from node_bridge.trace import Disposition, Step, TraceDomain, code_id, digital_link
from node_bridge.trace_models import AnchorBatch, Lot, Product, TraceCode, TraceEventCode, TraceEventRow

DOMAIN = TraceDomain(31337, "0x" + "7a" * 20)
GTIN = "06901234567892"  # GTIN-13 6901234567892 padded
LOT = "L2026-11"
USCCS = {"producer": "91370602987123462D", "seller": "91370100321654988D", "carrier": "913706007891234538"}
ROLES = {"producer": Role.PRODUCER, "seller": Role.PLATFORM, "carrier": Role.LOGISTICS}
NAMES = {"producer": "Yantai Orchard Apple Cooperative", "seller": "Qilu Mall E-commerce Co., Ltd.",
         "carrier": "Jiaodong Express Logistics Co., Ltd."}  # fmt: skip
DISPOSITIONS = {
    Step.COMMISSION: Disposition.ACTIVE, Step.PACK: Disposition.IN_PROGRESS, Step.SHIP: Disposition.IN_TRANSIT,
    Step.RECEIVE: Disposition.SELLABLE, Step.SELL: Disposition.SOLD, Step.DELIVER: Disposition.DELIVERED,
    Step.RETURN: Disposition.RETURNED, Step.RECALL: Disposition.RECALLED,
}  # fmt: skip
_BATCHES = itertools.count(1)


def hex32(raw: bytes) -> str:
    return "0x" + raw.hex()


@dataclass
class TraceSeed:
    engine: Engine
    accounts: dict[str, LocalAccount] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)
    nonce: Any = field(default_factory=lambda: itertools.count(1))
    serial: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        members, keys = [], []
        for role, uscc in USCCS.items():
            account = Account.create()
            self.accounts[role] = account
            self.members[role] = hex32(member_id(uscc))
            members.append({"id": self.members[role], "name": NAMES[role], "roles": int(ROLES[role]),
                            "status": "active", "admitted_block": 1, "updated_block": 1})  # fmt: skip
            keys.append({"address": account.address, "member_id": self.members[role], "active": True,
                         "added_block": 1})  # fmt: skip
        with self.engine.begin() as connection:
            connection.execute(insert(table_of(Member)), members)
            connection.execute(insert(table_of(MemberKey)), keys)
            connection.execute(insert(table_of(Product)).values(
                gtin=GTIN, producer=self.members["producer"], name="Yantai Fuji apple juice 1 L",
                description="NFC apple juice, 100% Fuji apples"))  # fmt: skip
            connection.execute(insert(table_of(Lot)).values(
                id=f"{GTIN}/{LOT}", gtin=GTIN, lot=LOT, producer=self.members["producer"], produced_on="2026-11-20",
                best_before="2027-05-20"))  # fmt: skip

    def code(self) -> str:
        """A new issued code's Digital Link path."""
        path = digital_link(GTIN, LOT, f"S{next(self.serial):07d}X")
        with self.engine.begin() as connection:
            connection.execute(insert(table_of(TraceCode)).values(
                id=hex32(code_id(path)), path=path, lot_id=f"{GTIN}/{LOT}", batch_id="0x" + "00" * 32,
                leaf_index=0, state="issued"))  # fmt: skip
        return path

    def event(
        self, role: str, step: Step, paths: list[str], at: int | None = None, geo: str = "", location: str = "",
        signer: LocalAccount | None = None, corrects: str | None = None, tamper: bool = False,
    ) -> str:  # fmt: skip
        """Sign and store one event about ``paths`` by ``role``'s member; its id."""
        message: dict[str, Any] = {
            "actor": self.members[role], "step": int(step), "codes": [hex32(code_id(p)) for p in paths],
            "parent": "0x" + "00" * 32, "time": at or int(time.time()) - 60, "location": location or f"{role}-site",
            "geo": geo, "disposition": int(DISPOSITIONS[step]), "corrects": corrects or "0x" + "00" * 32,
            "nonce": next(self.nonce),
        }  # fmt: skip
        digest = DOMAIN.digest("TraceEvent", message)
        account = signer or self.accounts[role]
        signature = DOMAIN.sign(account, "TraceEvent", message)
        if tamper:  # the message changed after signing: the digest no longer matches the id
            message = {**message, "location": "somewhere else"}
        event_id = hex32(digest)
        with self.engine.begin() as connection:
            connection.execute(insert(table_of(TraceEventRow)).values(
                id=event_id, actor=self.members[role], signer=self.accounts[role].address, step=step.slug,
                time=message["time"], location=message["location"], geo=geo,
                disposition=DISPOSITIONS[step].name.lower(), corrects=corrects, nonce=str(message["nonce"]),
                message=message, signature="0x" + signature.hex()))  # fmt: skip
            connection.execute(insert(table_of(TraceEventCode)),
                               [{"code_id": hex32(code_id(p)), "event_id": event_id, "time": message["time"]}
                                for p in paths])  # fmt: skip
            state = {Step.SELL: "sold", Step.DELIVER: "delivered", Step.RECALL: "recalled"}.get(step, step.slug)
            for p in paths:
                connection.execute(update(table_of(TraceCode)).where(table_of(TraceCode).c.id == hex32(code_id(p)))
                                   .values(state=state, holder=self.members[role], last_event=event_id))  # fmt: skip
        return event_id

    def chain_story(self, path: str, start: int | None = None) -> list[str]:
        """commission → ship → receive → sell → deliver of ``path``, an hour apart, from ``start``."""
        t = start or int(time.time()) - 6 * 3600
        steps = [("producer", Step.COMMISSION, "37.46,121.45"), ("carrier", Step.SHIP, "37.46,121.45"),
                 ("seller", Step.RECEIVE, "36.67,117.02"), ("seller", Step.SELL, "36.67,117.02"),
                 ("carrier", Step.DELIVER, "36.65,117.12")]  # fmt: skip
        return [self.event(r, s, [path], at=t + i * 3600, geo=g) for i, (r, s, g) in enumerate(steps)]

    def anchor(self, event_ids: list[str], on_chain: bool = True, wrong_root: bool = False) -> int:
        """Put ``event_ids`` in a new batch (leaf order as given) and, ``on_chain``, record its root as the chain's."""
        batch = next(_BATCHES) + int(time.time()) % 100_000 * 1000
        tree = MerkleTree([bytes.fromhex(i[2:]) for i in event_ids])
        events = table_of(TraceEventRow)
        with self.engine.begin() as connection:
            for index, event_id in enumerate(event_ids):
                connection.execute(update(events).where(events.c.id == event_id).values(batch=batch, leaf_index=index))
            connection.execute(insert(table_of(AnchorBatch)).values(
                index=batch, root=hex32(tree.root), size=tree.size, previous_root="0x" + "00" * 32, first_time=0,
                last_time=0, anchor_id="0x" + batch.to_bytes(32, "big").hex()))  # fmt: skip
            if on_chain:
                chain = chain_anchor_table(connection)
                assert chain is not None, "trace_chain_anchor table missing"
                root = hex32(bytes(32) if wrong_root else tree.root)
                values = {"root": root, "size": tree.size, "tx_hash": "0x" + "ab" * 32, "block_number": 7}
                for name in ("index", "batch", "batch_index"):
                    if name in chain.c:
                        values[name] = batch
                values = {k: v for k, v in values.items() if k in chain.c}
                for column in chain.c:  # fill what else the indexer's table requires with plausible values
                    if column.name not in values and not column.nullable and column.default is None:
                        values[column.name] = _plausible(column)
                connection.execute(insert(chain).values(**values))
        return batch

    def blacklist(self, role: str, now: int) -> None:
        """An active blacklist record on ``role``'s credit code, as the indexer would have written it."""
        uscc = USCCS[role]
        subject = "0x" + uscc.encode().ljust(32, b"\0").hex()
        with self.engine.begin() as connection:
            block = 1_000_000 + int(time.time() * 1000) % 1_000_000
            connection.execute(insert(table_of(CreditRecordRow)).values(
                id=hex32(block.to_bytes(32, "big")), kind="blacklist", subject=subject, subject_code=uscc,
                issuer="0x" + "11" * 32, signer="0x" + "11" * 20, legal_basis="test", tier="severe", measures=0,
                document_hash="0x" + "22" * 32, effective_at=now - 3600, public_until=now + 86400,
                valid_until=now + 86400, relation="none", nonce="1", block_number=block, block_time=now,
                tx_hash="0x" + "33" * 32, log_index=0))  # fmt: skip
            connection.execute(insert(table_of(IndexedBlock)).values(
                chain_id=31337, number=block, hash=hex32(block.to_bytes(32, "big")), parent_hash="0x",
                timestamp=now))  # fmt: skip
            checkpoints = table_of(IndexerCheckpoint)
            connection.execute(checkpoints.delete())
            connection.execute(insert(checkpoints).values(
                chain_id=31337, block_number=block, block_hash=hex32(block.to_bytes(32, "big")),
                block_timestamp=now))  # fmt: skip


def chain_anchor_table(connection: Any) -> Table | None:
    if not inspect(connection).has_table("trace_chain_anchor"):
        return None
    return Table("trace_chain_anchor", MetaData(), autoload_with=connection)


def _plausible(column: Any) -> Any:
    kind = str(column.type).upper()
    if "INT" in kind:
        return 1
    if "BOOL" in kind:
        return True
    if "CHAR" in kind or "TEXT" in kind:
        return "0x" + "00" * 32 if (column.type.length or 66) >= 66 else "0x" + "00" * 20
    return None
