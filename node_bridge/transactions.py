"""Signing and sending transactions from a local key, with custom errors decoded on revert.

The sender's key is the operator's (it pays gas, which is 0 on anvil and on a permissioned Besu network);
who is *allowed* to write is decided by the EIP-712 signatures the contracts check, not by the sender.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxReceipt, Wei

from credtrace.errors import ContractReverted
from node_bridge.compiler import Artifact


def error_selectors(abi: Sequence[dict[str, Any]]) -> dict[bytes, tuple[str, list[str]]]:
    """Map 4-byte selectors of an ABI's custom errors to (name, argument types)."""
    selectors = {}
    for item in abi:
        if item.get("type") == "error":
            types = [_abi_type(inp) for inp in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            selectors[keccak(text=signature)[:4]] = (item["name"], types)
    return selectors


def _abi_type(inp: dict[str, Any]) -> str:
    if inp["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in inp["components"]) + ")" + inp["type"][5:]
    return str(inp["type"])


def decode_revert(abi: Sequence[dict[str, Any]], data: str | bytes | None) -> tuple[str, tuple[Any, ...]]:
    """Decode revert data into (error name, arguments); unknown data gives ``("Reverted", (hex,))``."""
    raw = HexBytes(data or b"")
    if len(raw) >= 4:
        known = error_selectors(abi).get(bytes(raw[:4]))
        if known:
            name, types = known
            return name, tuple(abi_decode(types, bytes(raw[4:])))
        if bytes(raw[:4]) == keccak(text="Error(string)")[:4]:
            return "Error", tuple(abi_decode(["string"], bytes(raw[4:])))
    return "Reverted", (raw.hex(),)


class Sender:
    """Builds, signs and sends transactions from one local account, tracking its nonce."""

    def __init__(self, w3: Web3, account: LocalAccount, gas_price: int | None = None) -> None:
        """``gas_price`` None asks the node; 0 suits anvil and a free-gas permissioned network."""
        self.w3 = w3
        self.account = account
        self.gas_price = gas_price
        self._nonce: int | None = None

    def next_nonce(self) -> int:
        pending = self.w3.eth.get_transaction_count(self.account.address, "pending")
        self._nonce = pending if self._nonce is None else max(self._nonce, pending)
        return self._nonce

    def _send(self, tx: dict[str, Any], abi: Sequence[dict[str, Any]]) -> TxReceipt:
        tx.setdefault("chainId", self.w3.eth.chain_id)
        tx["gasPrice"] = self.w3.eth.gas_price if self.gas_price is None else self.gas_price
        tx["from"] = self.account.address
        tx["nonce"] = self.next_nonce()
        if "gas" not in tx:
            try:
                tx["gas"] = int(self.w3.eth.estimate_gas(tx) * 1.2) + 20_000  # type: ignore[arg-type]
            except (ContractCustomError, ContractLogicError) as exc:
                raise ContractReverted(*decode_revert(abi, exc.data)) from exc  # type: ignore[arg-type]
        signed = self.account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        self._nonce = tx["nonce"] + 1
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise ContractReverted("Reverted", (), tx_hash.to_0x_hex())
        return receipt

    def deploy(self, artifact: Artifact, *args: Any) -> tuple[Contract, TxReceipt]:
        """Deploy a compiled contract; returns the contract bound to its address and the receipt."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        creation = {"data": factory.constructor(*args).data_in_transaction, "value": 0}
        receipt = self._send(creation, artifact.abi)
        address = receipt["contractAddress"]
        assert address is not None
        return self.w3.eth.contract(address=address, abi=artifact.abi), receipt

    def transact_raw(self, to: str, data: bytes, abi: Sequence[dict[str, Any]], gas: int | None = None) -> TxReceipt:
        """Send ready-made calldata to ``to`` (whose ``abi`` decodes a revert).

        Give ``gas`` for a ``batch``: estimation finds the least gas at which the batch itself succeeds, which may
        be so little that the calls inside it run out of gas and are merely reported as failed.
        """
        tx: dict[str, Any] = {"to": to, "data": data, "value": 0}
        if gas is not None:
            tx["gas"] = gas
        return self._send(tx, abi)

    def transact(self, call: ContractFunction) -> TxReceipt:
        """Send a contract call; a revert raises :class:`ContractReverted` naming the custom error."""
        tx = {"to": call.address, "data": call._encode_transaction_data(), "value": 0}
        return self._send(tx, call.contract_abi)  # type: ignore[arg-type]


def fund(w3: Web3, address: str, wei: int = 10**21) -> None:
    """Give ``address`` ether from the node's first unlocked account (in-process EVM and anvil only)."""
    source = w3.eth.accounts[0]
    tx_hash = w3.eth.send_transaction({"from": source, "to": Web3.to_checksum_address(address), "value": Wei(wei)})
    w3.eth.wait_for_transaction_receipt(tx_hash)
