"""consumer protection: funds and advance-compensation cases (indexer)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _string(length: int | None = None) -> sa.types.TypeEngine[str]:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _chain_columns() -> list[sa.Column[object]]:
    """Where the chain recorded the event: signer, block, time, transaction, log."""
    return [
        sa.Column("signer", _string(42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _string(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "protection_fund_version",
        sa.Column("id", _string(66), nullable=False),
        sa.Column("fund_id", _string(66), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("platform", _string(66), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", _string(3), nullable=False),
        sa.Column("custodian", _string(), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("nonce", _string(80), nullable=False),
        *_chain_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("fund_id", "platform", "block_number"):
        op.create_index(op.f(f"ix_protection_fund_version_{column}"), "protection_fund_version", [column], unique=False)
    op.create_table(
        "protection_case_step",
        sa.Column("id", _string(66), nullable=False),
        sa.Column("case_id", _string(66), nullable=False),
        sa.Column("step", _string(12), nullable=False),
        sa.Column("platform", _string(66), nullable=False),
        sa.Column("merchant", _string(66), nullable=False),
        sa.Column("consumer", _string(66), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("due_by", sa.BigInteger(), nullable=False),
        sa.Column("trace_code", _string(66), nullable=False),
        sa.Column("decision", _string(66), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("nonce", _string(80), nullable=False),
        *_chain_columns(),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("case_id", "block_number"):
        op.create_index(op.f(f"ix_protection_case_step_{column}"), "protection_case_step", [column], unique=False)
    op.create_table(
        "protection_case",
        sa.Column("case_id", _string(66), nullable=False),
        sa.Column("platform", _string(66), nullable=False),
        sa.Column("merchant", _string(66), nullable=False),
        sa.Column("merchant_code", _string(18), nullable=True),
        sa.Column("consumer", _string(66), nullable=False),
        sa.Column("state", _string(12), nullable=False),
        sa.Column("claimed", sa.BigInteger(), nullable=False),
        sa.Column("compensated", sa.BigInteger(), nullable=False),
        sa.Column("recovered", sa.BigInteger(), nullable=False),
        sa.Column("due_by", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.BigInteger(), nullable=True),
        sa.Column("recovered_at", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.BigInteger(), nullable=True),
        sa.Column("last_at", sa.BigInteger(), nullable=False),
        sa.Column("trace_code", _string(66), nullable=True),
        sa.Column("decision", _string(66), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("opened_block", sa.BigInteger(), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    for column in ("platform", "merchant", "state", "trace_code", "decision", "updated_block"):
        op.create_index(op.f(f"ix_protection_case_{column}"), "protection_case", [column], unique=False)


def downgrade() -> None:
    op.drop_table("protection_case")
    op.drop_table("protection_case_step")
    op.drop_table("protection_fund_version")
