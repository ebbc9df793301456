"""credit records: the index of records, closures and enforcements, and the signed submissions

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credit_record",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("subject_code", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("legal_basis", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("tier", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("measures", sa.BigInteger(), nullable=False),
        sa.Column("document_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("effective_at", sa.BigInteger(), nullable=False),
        sa.Column("public_until", sa.BigInteger(), nullable=False),
        sa.Column("valid_until", sa.BigInteger(), nullable=False),
        sa.Column("relation", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("refers_to", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("closed", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("closure_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("closed_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=True),
        sa.Column("closed_block", sa.BigInteger(), nullable=True),
        sa.Column("closed_time", sa.BigInteger(), nullable=True),
        sa.Column("closed_tx", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_credit_record_block_number"), "credit_record", ["block_number"], unique=False)
    op.create_index(op.f("ix_credit_record_closed_block"), "credit_record", ["closed_block"], unique=False)
    op.create_index(op.f("ix_credit_record_issuer"), "credit_record", ["issuer"], unique=False)
    op.create_index(op.f("ix_credit_record_kind"), "credit_record", ["kind"], unique=False)
    op.create_index(op.f("ix_credit_record_refers_to"), "credit_record", ["refers_to"], unique=False)
    op.create_index(op.f("ix_credit_record_subject"), "credit_record", ["subject"], unique=False)
    op.create_table(
        "enforcement",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("record_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("measure", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_enforcement_block_number"), "enforcement", ["block_number"], unique=False)
    op.create_index(op.f("ix_enforcement_platform"), "enforcement", ["platform"], unique=False)
    op.create_index(op.f("ix_enforcement_record_id"), "enforcement", ["record_id"], unique=False)
    op.create_index(op.f("ix_enforcement_subject"), "enforcement", ["subject"], unique=False)
    op.create_table(
        "signed_submission",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("nonce", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("target", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=132), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("issuer", "nonce", name="uq_signed_submission_issuer_nonce"),
    )
    op.create_index(op.f("ix_signed_submission_subject"), "signed_submission", ["subject"], unique=False)
    op.create_index(op.f("ix_signed_submission_target"), "signed_submission", ["target"], unique=False)


def downgrade() -> None:
    for table in ("signed_submission", "enforcement", "credit_record"):
        op.drop_table(table)
