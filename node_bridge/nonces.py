"""The chain side of the relayer (:mod:`node_bridge.relayer`): nonces, batches, sending, and what became of
each signed transaction.

The relayer signs each transaction once, records its raw bytes and nonce, and only then sends it, so the same
bytes can be sent again. It hands out nonces itself: the next after its own records or the node's pending
count, whichever is ahead. After a node restart that lost blocks our records are ahead of the node: the lost
transactions are found :attr:`TxFate.VANISHED` and sent again, lowest nonce first.

Receipts are read as raw JSON-RPC: web3's formatting of a receipt with a hundred logs costs ~20 ms of CPU.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import Web3RPCError
from web3.types import RPCEndpoint

from credtrace.errors import ChainUnavailable
from credtrace.settings import Settings
from node_bridge import abi
from node_bridge.chain import connect

log = logging.getLogger(__name__)

BATCH_SELECTOR = keccak(text="batch(bytes[])")[:4]
BATCH_CALL_FAILED = "0x" + keccak(text="BatchCallFailed(uint256,bytes)").hex()


def encode_batch(calls: list[bytes]) -> bytes:
    """Calldata of ``batch(bytes[] calls)`` (``contracts/utils/BatchCall.sol``), each call a full encoded call."""
    return BATCH_SELECTOR + abi.encode(["bytes[]"], [calls])


def render_error(name: str, args: tuple[Any, ...]) -> str:
    """``Name(arg, ...)``: bytes as 0x-hex, addresses checksummed, e.g. ``NotActiveRegulator(0xAb…)``."""
    return f"{name}({', '.join(_render(arg) for arg in args)})"


def _render(arg: Any) -> str:
    if isinstance(arg, bytes):
        return "0x" + arg.hex()
    if isinstance(arg, str) and Web3.is_address(arg):
        return Web3.to_checksum_address(arg)
    return str(arg)


@dataclass(frozen=True)
class Receipt:
    """What the relayer needs of a receipt: success, block, target and the calls ``batch`` reported failed."""

    ok: bool
    block_number: int
    block_hash: str
    to: str
    failures: dict[int, bytes]
    """Index → revert data of each failed call (``BatchCallFailed``); empty data means it ran out of gas."""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Receipt:
        to = str(raw.get("to") or "").lower()
        failures = {}
        for entry in raw["logs"]:
            topics = entry["topics"]
            if len(topics) == 2 and topics[0] == BATCH_CALL_FAILED and entry["address"].lower() == to:
                reason = abi_decode(["bytes"], bytes.fromhex(entry["data"][2:]))[0]
                failures[int(topics[1], 16)] = bytes(reason)
        return cls(int(raw["status"], 16) == 1, int(raw["blockNumber"], 16), raw["blockHash"], to, failures)


def connect_when_up(settings: Settings, stop: threading.Event, max_backoff: float) -> Web3 | None:
    """A connection to the configured chain once it answers (retried with capped backoff); None if stopped first."""
    backoff = 0.1
    while True:
        try:
            return connect(settings)
        except ChainUnavailable as exc:
            log.warning("waiting for the chain error=%s retry_in=%.1fs", exc, backoff)
            if stop.wait(backoff):
                return None
            backoff = min(backoff * 2, max_backoff)


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    """One JSON-RPC call without web3's result formatting; an error answer raises :class:`Web3RPCError`."""
    response = w3.provider.make_request(RPCEndpoint(method), list(params))
    if response.get("error"):
        raise Web3RPCError(f"{method}: {response['error']}", rpc_response=response)
    return response.get("result")


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    gas_limit: int


def block_at(w3: Web3, tag: int | str = "latest") -> Block | None:
    """A block's number, hash and gas limit (``tag``: a number or ``"latest"``); None if the node has no such block."""
    raw = rpc(w3, "eth_getBlockByNumber", hex(tag) if isinstance(tag, int) else tag, False)
    return Block(int(raw["number"], 16), raw["hash"], int(raw["gasLimit"], 16)) if raw else None


def receipt_or_none(w3: Web3, tx_hash: str) -> Receipt | None:
    raw = rpc(w3, "eth_getTransactionReceipt", tx_hash)
    return Receipt.from_json(raw) if raw else None


def is_known(w3: Web3, tx_hash: str) -> bool:
    """True if the node has the transaction, mined or in its pool."""
    return rpc(w3, "eth_getTransactionByHash", tx_hash) is not None


class TxFate(enum.Enum):
    """What became of a transaction we signed, as far as the node knows."""

    MINED = "mined"
    """It has a receipt."""
    WAITING = "waiting"
    """The node holds it and has not mined it yet."""
    VANISHED = "vanished"
    """The node does not know it and its nonce is still free: send the same raw bytes again."""
    REPLACED = "replaced"
    """The node does not know it and the sender's nonce moved past it: it can never be mined."""


def unmined_fate(w3: Web3, tx_hash: str, nonce: int, mined_nonce: Callable[[], int]) -> TxFate:
    """The fate of our transaction ``tx_hash`` that had no receipt a moment ago.

    ``mined_nonce`` reads the sender's ``latest`` transaction count (asked only if the node does not hold the
    transaction). A nonce below it is used: by this transaction if it was mined meanwhile, else by another one.
    """
    if is_known(w3, tx_hash):
        return TxFate.WAITING
    if nonce < mined_nonce():
        return TxFate.MINED if receipt_or_none(w3, tx_hash) else TxFate.REPLACED
    return TxFate.VANISHED


class NonceBook:
    """Hands out one sender's nonces without asking the node for each transaction.

    :meth:`sync` once per round; :meth:`peek` gives the nonce to sign with and :meth:`advance` consumes it only
    once the signed transaction is recorded, so a failed SQL commit leaves no gap. The node's count is read at
    the first sync and after :attr:`stale` was set (another transaction took one of our nonces, or the node
    refused one of ours).
    """

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(address)
        self.stale = True
        self._next: int | None = None

    def sync(self, recorded_max: int | None) -> None:
        """Move past ``recorded_max`` (the highest nonce we recorded) and, if stale, to the node's pending count."""
        floor = self._next or 0
        if self.stale or self._next is None:
            self.stale = False
            floor = max(floor, self.w3.eth.get_transaction_count(self.address, "pending"))
        self._next = floor if recorded_max is None else max(floor, recorded_max + 1)

    def mark_stale(self) -> None:
        self.stale = True

    def peek(self) -> int:
        if self._next is None:
            raise RuntimeError("NonceBook.sync() must run before the first nonce is taken")
        return self._next

    def advance(self) -> None:
        self._next = self.peek() + 1


class ChainWatch:
    """The node's head, and whether the highest block we relied on is still there: if it is, so is every block
    before it; if not (node restarted from older state, reorg), the caller re-checks its mined transactions."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3
        self.head = Block(0, "", 30_000_000)
        self._tip: Block | None = None

    def refresh(self) -> bool:
        """Read the head; True if nothing we saw changed. After False, :meth:`accept` once the caller checked."""
        head = block_at(self.w3)
        if head is None:
            raise ChainUnavailable("the node has no latest block")
        self.head, tip = head, self._tip
        if tip is None or tip.number > head.number:
            return False
        seen = head if tip.number == head.number else block_at(self.w3, tip.number)
        if seen is None or seen.hash != tip.hash:
            return False
        self._tip = head
        return True

    def accept(self) -> None:
        self._tip = self.head

    def saw(self, number: int, block_hash: str) -> None:
        """A block we rely on (it holds one of our receipts)."""
        if self._tip is None or number > self._tip.number:
            self._tip = Block(number, block_hash, 0)


class Broadcaster:
    """Hands raw transactions to the node from one thread, in order, while the caller goes on (so the node's
    work overlaps the caller's); remembers when each was last sent or checked, to ask the node only now and then.
    A failed send is logged and ``on_failure`` called: a later look at the transaction settles it."""

    def __init__(self, w3: Web3, on_failure: Callable[[], None], recheck_after: float = 1.0) -> None:
        self.w3 = w3
        self.on_failure = on_failure
        self.recheck_after = recheck_after
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="relayer-send")
        self._seen: dict[str, float] = {}
        self._queued: set[str] = set()

    def send(self, tx_hash: str, raw: bytes) -> None:
        self._queued.add(tx_hash)
        self._pool.submit(self._send_now, tx_hash, raw)

    def _send_now(self, tx_hash: str, raw: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # nothing may escape a pool thread unseen
            self.on_failure()
            log.info("send failed tx=%s error=%s", tx_hash, exc)
        finally:
            self._seen[tx_hash] = time.monotonic()
            self._queued.discard(tx_hash)

    def due(self, tx_hash: str) -> bool:
        """True, restarting its clock, if ``tx_hash`` is not waiting to be sent and was last sent or checked over
        ``recheck_after`` ago."""
        now = time.monotonic()
        if tx_hash in self._queued or now - self._seen.get(tx_hash, 0.0) < self.recheck_after:
            return False
        self._seen[tx_hash] = now
        return True

    def forget(self, tx_hash: str) -> None:
        self._seen.pop(tx_hash, None)

    def close(self) -> None:
        """Wait for the sends queued so far, then stop the thread."""
        self._pool.shutdown(wait=True)
