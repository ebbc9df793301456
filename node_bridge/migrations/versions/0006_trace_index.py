"""traceability on chain: committed code batches and anchored roots (indexer)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_chain_code_batch",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("producer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("gtin", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("lot", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_trace_chain_code_batch_block_number"), "trace_chain_code_batch", ["block_number"], unique=False
    )
    op.create_index(op.f("ix_trace_chain_code_batch_producer"), "trace_chain_code_batch", ["producer"], unique=False)
    op.create_table(
        "trace_chain_anchor",
        sa.Column("index", sa.BigInteger(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("previous_root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("first_time", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.BigInteger(), nullable=False),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("index"),
    )
    op.create_index(op.f("ix_trace_chain_anchor_block_number"), "trace_chain_anchor", ["block_number"], unique=False)
    op.create_index(op.f("ix_trace_chain_anchor_root"), "trace_chain_anchor", ["root"], unique=False)


def downgrade() -> None:
    op.drop_table("trace_chain_anchor")
    op.drop_table("trace_chain_code_batch")
