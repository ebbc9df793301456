"""The embedded tier: an in-process EVM (py-evm through eth-tester) that answers reverts as a real node does.

web3's ``EthereumTesterProvider`` raises ``TransactionFailed("execution reverted: b'...'")`` from ``eth_call``
and ``eth_estimateGas``; a node answers a JSON-RPC error whose ``data`` is the revert data, from which web3
raises ``ContractCustomError`` and :mod:`node_bridge.transactions` decodes the custom error. This provider
gives the node's answer, so code and tests behave alike on every tier.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.providers.eth_tester.defaults import API_ENDPOINTS
from web3.types import RPCEndpoint, RPCResponse


class _RevertData(Exception):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.data = data


def _keep_revert_data(delegate: Callable[..., Any]) -> Callable[..., Any]:
    def endpoint(tester: Any, params: Any) -> Any:
        try:
            return delegate(tester, params)
        except TransactionFailed as exc:
            raw = exc.args[0].args[0] if isinstance(exc.args[0], Exception) else exc.args[0]
            if isinstance(raw, str) and raw[:2] in {"b'", 'b"'}:
                raw = ast.literal_eval(raw)
            if isinstance(raw, bytes):
                raise _RevertData(raw) from exc
            raise

    return endpoint


class RevertDataTesterProvider(EthereumTesterProvider):
    """eth-tester provider whose ``eth_call``/``eth_estimateGas`` reverts carry their data like a node's."""

    def __init__(self) -> None:
        endpoints = {namespace: dict(methods) for namespace, methods in API_ENDPOINTS.items()}
        for method in ("call", "estimateGas"):
            endpoints["eth"][method] = _keep_revert_data(endpoints["eth"][method])
        super().__init__(api_endpoints=endpoints)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except _RevertData as exc:
            error = {"code": 3, "message": "execution reverted", "data": "0x" + exc.data.hex()}
            return {"jsonrpc": "2.0", "id": 0, "error": error}  # type: ignore[typeddict-item]


def in_process_web3() -> Web3:
    """A fresh in-process EVM; its first account is funded and unlocked."""
    return Web3(RevertDataTesterProvider())
