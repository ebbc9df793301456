"""Raw JSON-RPC over web3's provider, for the hot paths (the indexer): no middleware, no formatters.

Transport failures become :class:`~credtrace.errors.ChainUnavailable`; an error answer becomes :class:`RpcError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from web3 import Web3

from credtrace.errors import ChainUnavailable

HEADER_BATCH = 200


@dataclass(frozen=True)
class Header:
    number: int
    hash: str
    parent_hash: str
    timestamp: int

    @classmethod
    def from_rpc(cls, block: dict[str, Any]) -> Header:
        return cls(int(block["number"], 16), block["hash"], block["parentHash"], int(block["timestamp"], 16))

    def row(self, chain_id: int) -> dict[str, Any]:
        return {
            "chain_id": chain_id, "number": self.number, "hash": self.hash,
            "parent_hash": self.parent_hash, "timestamp": self.timestamp,
        }  # fmt: skip


class Rpc:
    """Raw JSON-RPC over web3's provider: no middleware, no formatters; transport failures → ChainUnavailable."""

    def __init__(self, w3: Web3) -> None:
        self.provider = w3.provider

    def call(self, method: str, params: Sequence[Any]) -> Any:
        try:
            response = self.provider.make_request(method, list(params))  # type: ignore[arg-type]
        except (requests.RequestException, OSError, ValueError) as exc:  # ValueError: an answer that is not JSON
            raise ChainUnavailable(f"{method}: the node did not answer ({exc.__class__.__name__}: {exc})") from exc
        if "error" in response:
            raise RpcError(method, response["error"])
        return response["result"]

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one JSON-RPC batch (sequentially if the provider cannot batch)."""
        make_batch = getattr(self.provider, "make_batch_request", None)
        if make_batch is None or len(calls) == 1:
            return [self.call(method, params) for method, params in calls]
        try:
            responses = make_batch([(method, list(params)) for method, params in calls])
        except (requests.RequestException, OSError, ValueError) as exc:
            raise ChainUnavailable(f"batch of {len(calls)} calls: the node did not answer ({exc})") from exc
        if not isinstance(responses, list):
            raise RpcError(calls[0][0], responses.get("error", responses))
        for (method, _), response in zip(calls, responses, strict=True):
            if "error" in response:
                raise RpcError(method, response["error"])
        return [response["result"] for response in responses]

    def headers(self, numbers: Iterable[int]) -> dict[int, Header | None]:
        """Headers by number (None for a block the node does not have), in batches."""
        wanted = sorted(set(numbers))
        found: dict[int, Header | None] = {}
        for start in range(0, len(wanted), HEADER_BATCH):
            chunk = wanted[start : start + HEADER_BATCH]
            blocks = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in chunk])
            found.update((n, Header.from_rpc(b) if b else None) for n, b in zip(chunk, blocks, strict=True))
        return found

    def header(self, number: int | str) -> Header | None:
        block = self.call("eth_getBlockByNumber", [hex(number) if isinstance(number, int) else number, False])
        return Header.from_rpc(block) if block else None


class RpcError(ChainUnavailable):
    """The node answered a JSON-RPC error."""

    def __init__(self, method: str, error: Any) -> None:
        message = error.get("message", error) if isinstance(error, dict) else error
        super().__init__(f"{method}: the node answered an error: {message}")
        self.error = error
