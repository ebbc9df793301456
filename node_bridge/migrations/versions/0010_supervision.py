"""inter-department supervision: cases, referrals, joint decisions (indexer)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _text(length: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "supervision_entry",
        sa.Column("id", _text(66), nullable=False),
        sa.Column("case_id", _text(66), nullable=False),
        sa.Column("action", _text(16), nullable=False),
        sa.Column("department", _text(66), nullable=False),
        sa.Column("subject", _text(66), nullable=False),
        sa.Column("counterpart", _text(66), nullable=False),
        sa.Column("deadline", sa.BigInteger(), nullable=False),
        sa.Column("document_hash", _text(66), nullable=False),
        sa.Column("note_hash", _text(66), nullable=False),
        sa.Column("ref", _text(66), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("nonce", _text(80), nullable=False),
        sa.Column("signer", _text(42), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _text(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("case_id", "department", "ref", "block_number"):
        op.create_index(op.f(f"ix_supervision_entry_{column}"), "supervision_entry", [column], unique=False)
    op.create_table(
        "supervision_joint_decision",
        sa.Column("id", _text(66), nullable=False),
        sa.Column("case_id", _text(66), nullable=False),
        sa.Column("subject", _text(66), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("measures", sa.BigInteger(), nullable=False),
        sa.Column("document_hash", _text(66), nullable=False),
        sa.Column("effective_at", sa.BigInteger(), nullable=False),
        sa.Column("valid_until", sa.BigInteger(), nullable=False),
        sa.Column("departments", _text(), nullable=False),
        sa.Column("nonce", _text(80), nullable=False),
        sa.Column("first_block", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("active_block", sa.BigInteger(), nullable=True),
        sa.Column("active_time", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for column in ("case_id", "subject", "first_block", "active_block"):
        op.create_index(
            op.f(f"ix_supervision_joint_decision_{column}"), "supervision_joint_decision", [column], unique=False
        )
    op.create_table(
        "supervision_joint_signature",
        sa.Column("decision_id", _text(66), nullable=False),
        sa.Column("department", _text(66), nullable=False),
        sa.Column("signer", _text(42), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", _text(66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", "department"),
    )
    op.create_index(
        op.f("ix_supervision_joint_signature_block_number"), "supervision_joint_signature", ["block_number"]
    )
    op.create_table(
        "supervision_note",
        sa.Column("note_hash", _text(66), nullable=False),
        sa.Column("case_id", _text(66), nullable=False),
        sa.Column("text", _text(), nullable=False),
        sa.Column("department", _text(66), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("note_hash"),
    )
    op.create_index(op.f("ix_supervision_note_case_id"), "supervision_note", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_table("supervision_note")
    op.drop_table("supervision_joint_signature")
    op.drop_table("supervision_joint_decision")
    op.drop_table("supervision_entry")
