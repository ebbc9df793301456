"""online payment management: settlement account bindings, relations, payment signals and alerts (indexer)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_HEX = sqlmodel.sql.sqltypes.AutoString


def _chain_columns() -> list[sa.Column]:
    """Where the event is: block, time, transaction and log index."""
    return [
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _HEX(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "payment_binding",
        sa.Column("id", _HEX(length=66), nullable=False),
        sa.Column("payment", _HEX(length=66), nullable=False),
        sa.Column("subject", _HEX(length=66), nullable=False),
        sa.Column("subject_code", _HEX(length=18), nullable=True),
        sa.Column("account_hash", _HEX(length=66), nullable=False),
        sa.Column("bound_at", sa.BigInteger(), nullable=False),
        sa.Column("nonce", _HEX(length=80), nullable=False),
        sa.Column("signer", _HEX(length=42), nullable=False),
        *_chain_columns(),
        sa.Column("unbound_by", _HEX(length=66), nullable=True),
        sa.Column("unbound_at", sa.BigInteger(), nullable=True),
        sa.Column("unbound_block", sa.BigInteger(), nullable=True),
        sa.Column("unbound_tx", _HEX(length=66), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("payment", "subject", "account_hash", "block_number", "unbound_block"):
        op.create_index(op.f(f"ix_payment_binding_{column}"), "payment_binding", [column], unique=False)
    op.create_table(
        "payment_signal",
        sa.Column("id", _HEX(length=66), nullable=False),
        sa.Column("payment", _HEX(length=66), nullable=False),
        sa.Column("merchant", _HEX(length=66), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("refund_bps", sa.Integer(), nullable=False),
        sa.Column("chargeback_bps", sa.Integer(), nullable=False),
        sa.Column("nonce", _HEX(length=80), nullable=False),
        sa.Column("signer", _HEX(length=42), nullable=False),
        *_chain_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("payment", "merchant", "block_number"):
        op.create_index(op.f(f"ix_payment_signal_{column}"), "payment_signal", [column], unique=False)
    op.create_table(
        "payment_relation",
        sa.Column("id", _HEX(length=66), nullable=False),
        sa.Column("declarant", _HEX(length=66), nullable=False),
        sa.Column("subject_a", _HEX(length=66), nullable=False),
        sa.Column("subject_b", _HEX(length=66), nullable=False),
        sa.Column("signer", _HEX(length=42), nullable=False),
        *_chain_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("subject_a", "subject_b", "block_number"):
        op.create_index(op.f(f"ix_payment_relation_{column}"), "payment_relation", [column], unique=False)
    op.create_table(
        "payment_alert",
        sa.Column("id", _HEX(length=66), nullable=False),
        sa.Column("kind", _HEX(length=32), nullable=False),
        sa.Column("account_hash", _HEX(length=66), nullable=False),
        sa.Column("subject", _HEX(length=66), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("bindings", sa.JSON(), nullable=False),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.Column("raised_by", _HEX(length=66), nullable=False),
        *_chain_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("kind", "account_hash", "subject", "block_number"):
        op.create_index(op.f(f"ix_payment_alert_{column}"), "payment_alert", [column], unique=False)


def downgrade() -> None:
    op.drop_table("payment_alert")
    op.drop_table("payment_relation")
    op.drop_table("payment_signal")
    op.drop_table("payment_binding")
