"""The local anvil tier: one node per data directory, clean stop, state kept across restarts."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from credtrace.errors import ChainUnavailable
from node_bridge.chain import AnvilNode
from node_bridge.in_process import in_process_web3
from tests.conftest import free_port


def _anvil_processes(port: int) -> int:
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"anvil") and str(port).encode() in args:
            count += 1
    return count


def test_start_twice_reuses_the_running_node(anvil_node: AnvilNode) -> None:
    first = anvil_node.start()
    pid = anvil_node.pid()
    second = anvil_node.start()
    assert anvil_node.pid() == pid
    assert first.eth.chain_id == second.eth.chain_id == 31337
    assert _anvil_processes(anvil_node.port) == 1


def test_gas_is_free_and_the_node_is_bound_to_loopback(anvil_w3: Web3, anvil_node: AnvilNode) -> None:
    assert anvil_w3.eth.get_block("latest")["baseFeePerGas"] == 0
    unfunded = Account.create()
    tx = {"to": unfunded.address, "value": 0, "gas": 21_000, "gasPrice": 0, "nonce": 0, "chainId": 31337}
    tx_hash = anvil_w3.eth.send_raw_transaction(unfunded.sign_transaction(tx).raw_transaction)
    assert anvil_w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    assert "--host 127.0.0.1" in " ".join(anvil_node.command())


def test_stop_is_clean_and_restart_keeps_blocks_receipts_and_logs(anvil_node: AnvilNode, anvil_w3: Web3) -> None:
    sender = anvil_w3.eth.accounts[0]
    tx_hash = anvil_w3.eth.send_transaction({"from": sender, "to": sender, "value": 1})
    receipt = anvil_w3.eth.wait_for_transaction_receipt(tx_hash)
    head = anvil_w3.eth.block_number

    assert anvil_node.stop() is True
    assert anvil_node.pid() is None
    assert not anvil_node.is_running()
    assert anvil_node.stop() is False

    w3 = anvil_node.start()
    assert w3.eth.block_number == head
    again = w3.eth.get_transaction_receipt(tx_hash)
    assert again["blockHash"] == receipt["blockHash"]
    assert w3.eth.get_block(head)["hash"] == anvil_w3.eth.get_block(head)["hash"]


def test_a_port_taken_by_another_node_is_refused(tmp_path, anvil_node: AnvilNode, anvil_w3: Web3) -> None:  # type: ignore[no-untyped-def]
    intruder = AnvilNode(tmp_path / "other", port=anvil_node.port)
    with pytest.raises(ChainUnavailable, match="did not start"):
        intruder.start()


def test_in_process_evm_is_available() -> None:
    w3 = in_process_web3()
    assert w3.eth.block_number == 0
    assert len(w3.eth.accounts) > 0


def test_separate_data_directories_run_separate_nodes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    nodes = [AnvilNode(tmp_path / name, port=free_port()) for name in ("a", "b")]
    try:
        chains = [node.start() for node in nodes]
        chains[0].provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert [w3.eth.block_number for w3 in chains] == [1, 0]
    finally:
        for node in nodes:
            node.stop()
