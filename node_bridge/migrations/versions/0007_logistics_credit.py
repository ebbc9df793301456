"""logistics credit: firms, couriers, evaluations, rating rules (indexer)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _place() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "logistics_firm",
        sa.Column("firm", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=18), nullable=True),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("registrar", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        *_place(),
        sa.PrimaryKeyConstraint("firm"),
        sa.UniqueConstraint("id"),
    )
    op.create_index(op.f("ix_logistics_firm_registrar"), "logistics_firm", ["registrar"], unique=False)
    op.create_index(op.f("ix_logistics_firm_block_number"), "logistics_firm", ["block_number"], unique=False)
    op.create_table(
        "logistics_courier",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("courier", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("firm", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("registrar", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        *_place(),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_logistics_courier_courier"), "logistics_courier", ["courier"], unique=False)
    op.create_index(op.f("ix_logistics_courier_firm"), "logistics_courier", ["firm"], unique=False)
    op.create_index(op.f("ix_logistics_courier_block_number"), "logistics_courier", ["block_number"], unique=False)
    op.create_table(
        "logistics_evaluation",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("evaluator", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("firm", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("parcels", sa.BigInteger(), nullable=False),
        sa.Column("on_time_bps", sa.Integer(), nullable=False),
        sa.Column("loss_damage_bps", sa.Integer(), nullable=False),
        sa.Column("complaints_per_10k", sa.BigInteger(), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("sanctions", sa.Integer(), nullable=False),
        *_place(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("evaluator", "firm", "period", name="uq_logistics_evaluation_slot"),
    )
    op.create_index(op.f("ix_logistics_evaluation_evaluator"), "logistics_evaluation", ["evaluator"], unique=False)
    op.create_index(op.f("ix_logistics_evaluation_firm"), "logistics_evaluation", ["firm"], unique=False)
    op.create_index(
        op.f("ix_logistics_evaluation_block_number"), "logistics_evaluation", ["block_number"], unique=False
    )
    op.create_table(
        "logistics_rule",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("rule_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("publisher", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        *_place(),
        sa.PrimaryKeyConstraint("version"),
        sa.UniqueConstraint("id"),
    )
    op.create_index(op.f("ix_logistics_rule_block_number"), "logistics_rule", ["block_number"], unique=False)


def downgrade() -> None:
    op.drop_table("logistics_rule")
    op.drop_table("logistics_evaluation")
    op.drop_table("logistics_courier")
    op.drop_table("logistics_firm")
