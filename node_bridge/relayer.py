"""The relayer: turns accepted outbox rows into batched transactions and follows them until confirmed.

Each round (:meth:`Relayer.step`):

1. blocks: if a block holding one of our transactions is gone (node restarted from older state, reorg), that
   transaction goes back to pending and its rows back to submitted;
2. pending transactions: mined → rows confirmed, or failed with the decoded custom error (a call that failed
   without reason ran out of gas and is retried); vanished → the same raw bytes are sent again, in nonce order;
   replaced (its nonce went to another transaction; seen twice, a second apart) → its rows go back to accepted;
3. submit: up to ``relayer_batch_size`` accepted rows of one contract become one ``batch(calls)`` transaction,
   signed, recorded and its rows marked submitted in one SQL transaction, and only then sent.

A row is re-encoded only when the transaction carrying it can no longer be mined, so a record lands once.
Run it with ``python -m node_bridge.relayer`` (settings from ``CREDTRACE_*``).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, bindparam, func, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, col, select
from web3 import Web3
from web3.exceptions import TimeExhausted

from credtrace.errors import ChainUnavailable
from credtrace.settings import Settings
from node_bridge import nonces
from node_bridge.deploy import Deployment
from node_bridge.models import OutboxEntry, OutboxStatus, RelayTransaction, RelayTxStatus, utcnow
from node_bridge.store import session_scope
from node_bridge.transactions import decode_revert

log = logging.getLogger("node_bridge.relayer")  # also when run as __main__

TRANSIENT_ERRORS = (ChainUnavailable, requests.RequestException, OSError, TimeExhausted, OperationalError)
"""An unreachable node or a busy database: the loop backs off and tries again."""
MAX_BACKOFF = 5.0
UNMINED: dict[str, Any] = {"status": RelayTxStatus.PENDING, "block_number": None, "block_hash": None, "mined_at": None}
OUTBOX = SQLModel.metadata.tables["outbox"]  # Core statements where the ORM's per-row cost shows


def _set_tx(session: Session, tx_hash: str, **values: Any) -> None:
    session.exec(update(RelayTransaction).where(col(RelayTransaction.tx_hash) == tx_hash).values(**values))


def _set_rows(session: Session, carrier: str, statuses: Iterable[OutboxStatus], **values: Any) -> None:
    """Update the rows transaction ``carrier`` carries that are in one of ``statuses``."""
    session.exec(
        update(OutboxEntry)
        .where(col(OutboxEntry.tx_hash) == carrier, col(OutboxEntry.status).in_(list(statuses)))
        .values(updated_at=utcnow(), **values)
    )


class Relayer:
    """Drains the outbox of one store through one sender account; see the module docstring."""

    max_attempts = 5
    """Sends of a row whose call keeps running out of gas, before it is failed."""
    max_inflight = 16
    """Transactions sent and not yet mined, at most."""
    gas_per_call = 400_000
    """Gas a batch offers per call, doubled for each earlier out-of-gas attempt; capped by the block gas limit."""
    gas_base = 100_000

    def __init__(
        self, engine: Engine, w3: Web3, deployment: Deployment, sender_account: LocalAccount, settings: Settings
    ) -> None:
        self.engine = engine
        self.w3 = w3
        self.account = sender_account
        self.settings = settings
        self.contracts = {name: deployment.contract(w3, name) for name in deployment.contracts}
        self._abi_at: dict[str, Any] = {c.address.lower(): c.abi for c in self.contracts.values()}
        self.nonce_book = nonces.NonceBook(w3, sender_account.address)
        self.watch = nonces.ChainWatch(w3)
        self.broadcaster = nonces.Broadcaster(w3, on_failure=self.nonce_book.mark_stale)
        self.inflight = 0
        self._followed = False  # pending transactions were read once: later, ``inflight`` counts them
        self._receipts_at: str | None = None  # head at the last receipt poll: no new block, no new receipt
        self._chain_id: int | None = None
        self._replaced: set[str] = set()  # seen replaced once: requeued if still so at the next look

    def step(self) -> int:
        """One round (blocks, pending transactions, new batches); returns how many rows changed status."""
        changed = self._check_blocks()
        changed += self._follow_pending()
        return changed + self._submit()

    def run(self, stop: threading.Event) -> None:
        """Step until ``stop`` is set; node and database outages back off exponentially (capped), never crash."""
        backoff = 0.0
        while not stop.is_set():
            try:
                changed = self.step()
            except Exception as exc:
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF)
                if isinstance(exc, TRANSIENT_ERRORS):
                    log.warning("relayer unavailable error=%s retry_in=%.1fs", type(exc).__name__, backoff)
                else:
                    log.exception("relayer round failed retry_in=%.1fs", backoff)
                stop.wait(backoff)
                continue
            backoff = 0.0
            if not changed:
                stop.wait(min(self.settings.poll_interval, 0.02) if self.inflight else self.settings.poll_interval)
        self.close()

    def close(self) -> None:
        """Wait for the sends queued so far, then stop the sending thread."""
        self.broadcaster.close()

    # 1. blocks that vanished

    def _check_blocks(self) -> int:
        if self.watch.refresh():
            return 0
        changed, since = 0, self.watch.head.number - self.settings.reorg_window
        with session_scope(self.engine) as session:
            mined = session.exec(
                select(RelayTransaction).where(
                    RelayTransaction.status == RelayTxStatus.MINED,
                    col(RelayTransaction.block_number) >= since,
                )
            ).all()
            for tx in mined:
                receipt = nonces.receipt_or_none(self.w3, tx.tx_hash)
                if receipt is not None and receipt.block_hash == tx.block_hash:
                    continue
                log.warning("block vanished tx=%s block=%s rows=%d", tx.tx_hash, tx.block_number, tx.size)
                _set_tx(session, tx.tx_hash, **UNMINED)
                done = (OutboxStatus.CONFIRMED, OutboxStatus.FAILED)
                _set_rows(session, tx.tx_hash, done, status=OutboxStatus.SUBMITTED, block_number=None, error=None)
                self.broadcaster.forget(tx.tx_hash)
                changed += tx.size
        self.watch.accept()
        self._receipts_at = None
        self._followed = self._followed and not changed  # transactions went back to pending: read them again
        return changed

    # 2. pending transactions

    def _follow_pending(self) -> int:
        if self._followed and not self.inflight:
            return 0  # none of ours is pending (an idle round reads nothing here)
        with session_scope(self.engine) as session:
            ours = RelayTransaction.sender == self.account.address, RelayTransaction.status == RelayTxStatus.PENDING
            pending = session.exec(select(RelayTransaction).where(*ours).order_by(col(RelayTransaction.nonce))).all()
        self.inflight, self._followed = len(pending), True
        if not pending:
            return 0
        mined_nonce = functools.cache(lambda: self.w3.eth.get_transaction_count(self.account.address, "latest"))
        head = self.watch.head
        changed, blocked, resending = 0, head.hash == self._receipts_at, False
        for tx in pending:
            receipt = None if blocked else nonces.receipt_or_none(self.w3, tx.tx_hash)
            if receipt is not None:
                if receipt.block_number + self.settings.confirmations <= head.number:
                    changed += self._apply_receipt(tx, receipt)
                    self.inflight -= 1
                continue
            blocked = True  # a later nonce cannot be mined before this one, unless this one was replaced
            if not self.broadcaster.due(tx.tx_hash) and not resending:
                continue  # sent or checked a moment ago
            fate = nonces.unmined_fate(self.w3, tx.tx_hash, tx.nonce, mined_nonce)
            if fate is nonces.TxFate.REPLACED and tx.tx_hash not in self._replaced:
                self._replaced.add(tx.tx_hash)  # look again later: the node may be storing it right now
            elif fate is nonces.TxFate.REPLACED:
                changed += self._requeue(tx)
                self.inflight -= 1
                blocked = False
            elif fate is nonces.TxFate.VANISHED:
                resending = True  # every later nonce must follow this one to the node
                self._resend(tx)
        self._receipts_at = head.hash
        return changed

    def _apply_receipt(self, tx: RelayTransaction, receipt: nonces.Receipt) -> int:
        block, block_hash = receipt.block_number, receipt.block_hash
        failures = receipt.failures if receipt.ok else dict.fromkeys(range(tx.size), b"")
        abi = self._abi_at.get(receipt.to, [])
        now = utcnow()
        with session_scope(self.engine) as session:
            mined = {"status": RelayTxStatus.MINED, "block_hash": block_hash, "mined_at": now}
            _set_tx(session, tx.tx_hash, block_number=block, **mined)
            carried = (col(OutboxEntry.tx_hash) == tx.tx_hash, col(OutboxEntry.status) == OutboxStatus.SUBMITTED)
            failed = select(OutboxEntry).where(*carried, col(OutboxEntry.batch_index).in_(list(failures)))
            for row in session.exec(failed).all() if failures else []:
                reason = failures[row.batch_index or 0]
                if reason:
                    error = nonces.render_error(*decode_revert(abi, reason))
                    row.status, row.error, row.block_number, row.updated_at = OutboxStatus.FAILED, error, block, now
                elif row.attempts >= self.max_attempts:
                    row.status, row.error, row.updated_at = OutboxStatus.FAILED, "OutOfGas()", now
                else:  # out of gas: goes out again in a later batch
                    row.status, row.tx_hash, row.batch_index, row.updated_at = OutboxStatus.ACCEPTED, None, None, now
            session.flush()
            _set_rows(session, tx.tx_hash, [OutboxStatus.SUBMITTED], status=OutboxStatus.CONFIRMED, block_number=block)
        self.watch.saw(block, block_hash)
        self.broadcaster.forget(tx.tx_hash)
        self._replaced.discard(tx.tx_hash)
        log.info("batch mined tx=%s block=%d rows=%d failed=%d", tx.tx_hash, block, tx.size, len(failures))
        return tx.size

    def _requeue(self, tx: RelayTransaction) -> int:
        self.nonce_book.mark_stale()  # another transaction took this nonce
        log.warning("tx replaced tx=%s nonce=%d rows=%d: back to accepted", tx.tx_hash, tx.nonce, tx.size)
        with session_scope(self.engine) as session:
            _set_tx(session, tx.tx_hash, status=RelayTxStatus.REPLACED)
            _set_rows(session, tx.tx_hash, [OutboxStatus.SUBMITTED], status=OutboxStatus.ACCEPTED, tx_hash=None)
        self.broadcaster.forget(tx.tx_hash)
        self._replaced.discard(tx.tx_hash)
        return tx.size

    def _resend(self, tx: RelayTransaction) -> None:
        log.warning("tx vanished tx=%s nonce=%d: sending the same bytes again", tx.tx_hash, tx.nonce)
        with session_scope(self.engine) as session:
            _set_tx(session, tx.tx_hash, sends=RelayTransaction.sends + 1)
        self.broadcaster.send(tx.tx_hash, tx.raw)

    # 3. new batches

    def _submit(self) -> int:
        if self.inflight >= self.max_inflight:
            return 0
        accepted = select(OUTBOX.c.contract).where(OUTBOX.c.status == OutboxStatus.ACCEPTED).distinct()
        with self.engine.connect() as connection:  # Core: an idle round is this one query
            names = connection.execute(accepted).scalars().all()
        if unknown := [name for name in names if name not in self.contracts]:
            return self._fail_unknown(unknown)
        if not names:
            return 0
        with session_scope(self.engine) as session:
            recorded = session.exec(
                select(func.max(RelayTransaction.nonce)).where(RelayTransaction.sender == self.account.address)
            ).one()
        self.nonce_book.sync(recorded)
        if self._chain_id is None:
            self._chain_id = self.w3.eth.chain_id
        gas_price = self.w3.eth.gas_price if self.settings.gas_price is None else self.settings.gas_price
        fit = (self.watch.head.gas_limit - self.gas_base) // self.gas_per_call  # calls that fit in a block
        size = max(1, min(self.settings.relayer_batch_size, fit))
        changed = 0
        for name in names:
            while self.inflight < self.max_inflight and (sent := self._submit_batch(name, size, gas_price)):
                changed += sent
                self.inflight += 1
        return changed

    def _fail_unknown(self, names: list[str]) -> int:
        log.error("no deployed contract named %s: its rows fail", names)
        rows = col(OutboxEntry.status) == OutboxStatus.ACCEPTED, col(OutboxEntry.contract).in_(names)
        with session_scope(self.engine) as session:
            failed = {"status": OutboxStatus.FAILED, "error": "UnknownContract()", "updated_at": utcnow()}
            return int(session.exec(update(OutboxEntry).where(*rows).values(failed)).rowcount)

    def _submit_batch(self, name: str, size: int, gas_price: int) -> int:
        contract = self.contracts[name]
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(OutboxEntry.id, OutboxEntry.calldata, OutboxEntry.attempts)
                .where(OutboxEntry.status == OutboxStatus.ACCEPTED, OutboxEntry.contract == name)
                .order_by(col(OutboxEntry.created_at), col(OutboxEntry.id))
                .limit(size)
            ).all()
            if not rows:
                return 0
            now = utcnow()
            nonce = self.nonce_book.peek()
            budget = sum(2 ** min(r[2], 8) for r in rows)  # a call that ran out of gas gets twice the gas each time
            tx: dict[str, Any] = {
                "to": contract.address,
                "data": nonces.encode_batch([r[1] for r in rows]),
                "value": 0,
                "gas": min(self.watch.head.gas_limit, self.gas_base + self.gas_per_call * budget),
                "gasPrice": gas_price,
                "nonce": nonce,
                "chainId": self._chain_id,
            }
            signed = self.account.sign_transaction(tx)
            tx_hash, raw = signed.hash.to_0x_hex(), bytes(signed.raw_transaction)
            sender = self.account.address
            session.add(RelayTransaction(tx_hash=tx_hash, sender=sender, nonce=nonce, raw=raw, size=len(rows), sends=1))
            submitted = {"status": OutboxStatus.SUBMITTED, "tx_hash": tx_hash, "error": None, "updated_at": now}
            mark = update(OUTBOX).where(OUTBOX.c.id == bindparam("row")).values(submitted)
            mark = mark.values(batch_index=bindparam("at"), attempts=OUTBOX.c.attempts + 1)
            session.exec(mark, params=[{"row": r[0], "at": i} for i, r in enumerate(rows)])
        self.nonce_book.advance()
        log.info("batch sent tx=%s nonce=%d contract=%s rows=%d", tx_hash, nonce, name, len(rows))
        self.broadcaster.send(tx_hash, raw)
        return len(rows)


def main() -> None:
    """Relay until SIGTERM or SIGINT, with settings from ``CREDTRACE_*``."""
    from credtrace.service import start_service
    from credtrace.system import operator_account
    from node_bridge.deploy import load_deployment
    from node_bridge.store import open_store

    settings, stop = start_service(log.name)
    w3 = nonces.connect_when_up(settings, stop, MAX_BACKOFF)
    if w3 is None:
        return
    deployment = load_deployment(w3, settings.deployments_dir)
    if deployment is None:
        raise SystemExit(f"no deployment for this chain in {settings.deployments_dir}: run `credtrace deploy` first")
    relayer = Relayer(open_store(settings.database), w3, deployment, operator_account(settings), settings)
    log.info("relayer started sender=%s batch_size=%d", relayer.account.address, settings.relayer_batch_size)
    relayer.run(stop)
    log.info("relayer stopped")


if __name__ == "__main__":
    main()
