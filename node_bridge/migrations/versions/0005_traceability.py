"""traceability: products, lots, codes, signed events, anchor batches, scans (node_bridge/trace_models.py)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trace_anchor_batch",
        sa.Column("index", sa.BigInteger(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("previous_root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("first_time", sa.BigInteger(), nullable=False),
        sa.Column("last_time", sa.BigInteger(), nullable=False),
        sa.Column("anchor_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("closed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("index"),
    )
    op.create_table(
        "trace_code",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("path", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("lot_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("batch_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("leaf_index", sa.Integer(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("parent", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("last_event", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("path"),
    )
    op.create_index(op.f("ix_trace_code_batch_id"), "trace_code", ["batch_id"], unique=False)
    op.create_index(op.f("ix_trace_code_lot_id"), "trace_code", ["lot_id"], unique=False)
    op.create_index(op.f("ix_trace_code_parent"), "trace_code", ["parent"], unique=False)
    op.create_table(
        "trace_code_batch",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("lot_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("producer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=132), nullable=True),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("signed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_trace_code_batch_lot_id"), "trace_code_batch", ["lot_id"], unique=False)
    op.create_table(
        "trace_event",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("location", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("geo", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("disposition", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("parent", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("corrects", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=132), nullable=False),
        sa.Column("accepted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("batch", sa.BigInteger(), nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("actor", "nonce", name="uq_trace_event_actor_nonce"),
    )
    op.create_index(op.f("ix_trace_event_accepted_at"), "trace_event", ["accepted_at"], unique=False)
    op.create_index(op.f("ix_trace_event_actor"), "trace_event", ["actor"], unique=False)
    op.create_index(op.f("ix_trace_event_batch"), "trace_event", ["batch"], unique=False)
    op.create_index(op.f("ix_trace_event_corrects"), "trace_event", ["corrects"], unique=False)
    op.create_index(op.f("ix_trace_event_time"), "trace_event", ["time"], unique=False)
    op.create_table(
        "trace_event_code",
        sa.Column("code_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.PrimaryKeyConstraint("code_id", "event_id"),
    )
    op.create_index(op.f("ix_trace_event_code_event_id"), "trace_event_code", ["event_id"], unique=False)
    op.create_table(
        "trace_lot",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("gtin", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=False),
        sa.Column("lot", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("producer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("produced_on", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("best_before", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("recalled_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("recall_event", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_trace_lot_gtin"), "trace_lot", ["gtin"], unique=False)
    op.create_index(op.f("ix_trace_lot_producer"), "trace_lot", ["producer"], unique=False)
    op.create_table(
        "trace_product",
        sa.Column("gtin", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=False),
        sa.Column("producer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("gtin"),
    )
    op.create_index(op.f("ix_trace_product_producer"), "trace_product", ["producer"], unique=False)
    op.create_table(
        "trace_scan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("scanned_at", sa.BigInteger(), nullable=False),
        sa.Column("region", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("geo", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
        sa.Column("verdict", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_trace_scan_code_id"), "trace_scan", ["code_id"], unique=False)
    op.create_index(op.f("ix_trace_scan_scanned_at"), "trace_scan", ["scanned_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_trace_scan_scanned_at"), table_name="trace_scan")
    op.drop_index(op.f("ix_trace_scan_code_id"), table_name="trace_scan")
    op.drop_table("trace_scan")
    op.drop_index(op.f("ix_trace_product_producer"), table_name="trace_product")
    op.drop_table("trace_product")
    op.drop_index(op.f("ix_trace_lot_producer"), table_name="trace_lot")
    op.drop_index(op.f("ix_trace_lot_gtin"), table_name="trace_lot")
    op.drop_table("trace_lot")
    op.drop_index(op.f("ix_trace_event_code_event_id"), table_name="trace_event_code")
    op.drop_table("trace_event_code")
    op.drop_index(op.f("ix_trace_event_time"), table_name="trace_event")
    op.drop_index(op.f("ix_trace_event_corrects"), table_name="trace_event")
    op.drop_index(op.f("ix_trace_event_batch"), table_name="trace_event")
    op.drop_index(op.f("ix_trace_event_actor"), table_name="trace_event")
    op.drop_index(op.f("ix_trace_event_accepted_at"), table_name="trace_event")
    op.drop_table("trace_event")
    op.drop_index(op.f("ix_trace_code_batch_lot_id"), table_name="trace_code_batch")
    op.drop_table("trace_code_batch")
    op.drop_index(op.f("ix_trace_code_parent"), table_name="trace_code")
    op.drop_index(op.f("ix_trace_code_lot_id"), table_name="trace_code")
    op.drop_index(op.f("ix_trace_code_batch_id"), table_name="trace_code")
    op.drop_table("trace_code")
    op.drop_table("trace_anchor_batch")
