"""Rebuilding the index from the chain, and checking the live index against a scratch rebuild."""

from __future__ import annotations

from sqlalchemy import Engine, text

from node_bridge.rebuild import check, dump, rebuild
from tests.node_bridge.test_indexer import Chain, chain, govern, reorg

__all__ = ["chain"]  # the fixture, shared with the indexer tests


def test_a_rebuild_equals_the_live_index(chain: Chain, engine: Engine) -> None:
    indexer = chain.indexer(engine)
    indexer.step()
    govern(chain)
    indexer.step()
    reorg(chain, depth=2, proposals=1)
    indexer.step()
    live = dump(engine)
    assert rebuild(engine, chain.w3, chain.deployment, chain.settings) == len(live["chain_event"])
    assert dump(engine) == live
    assert check(engine, chain.w3, chain.deployment, chain.settings) == []


def test_check_compares_up_to_the_live_checkpoint(chain: Chain, engine: Engine) -> None:
    chain.indexer(engine).step()
    govern(chain)  # on chain, not indexed yet: the index is behind, not wrong
    assert check(engine, chain.w3, chain.deployment, chain.settings) == []


def test_check_reports_rows_altered_by_hand(chain: Chain, engine: Engine) -> None:
    chain.indexer(engine).step()
    qilu, qilu_key = chain.member("qilu-mall")
    member = "0x" + qilu.hex()
    assert check(engine, chain.w3, chain.deployment, chain.settings) == []
    with engine.begin() as connection:
        connection.execute(text("UPDATE member SET name = 'Forged Ltd.' WHERE id = :id"), {"id": member})
    differences = check(engine, chain.w3, chain.deployment, chain.settings)
    assert differences == [f"member {member}: name 'Forged Ltd.' here, 'Qilu Mall E-commerce Co., Ltd.' on chain"]

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM member_key WHERE address = :a"), {"a": qilu_key.address})
        connection.execute(
            text("INSERT INTO chain_parameter (name, value, updated_block) VALUES ('quorum', '9', 1)"),
        )
    differences = check(engine, chain.w3, chain.deployment, chain.settings)
    assert len(differences) == 3
    assert f"key {qilu_key.address}: row missing here (on chain: member_id='{member}'" in differences[1]
    assert differences[2] == "parameter quorum: extra row here, not on chain (value='9', updated_block=1)"
