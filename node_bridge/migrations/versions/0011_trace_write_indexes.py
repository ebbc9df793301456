"""traceability at volume: fewer indexes on the hot write path of trace events and codes

Every index is one more B-tree insert per event or per issued code. ``trace_event`` keeps its primary key, the
unique (actor, nonce) (which also finds an actor's events) and (batch, leaf_index), for proofs and, at its NULL
end, for the events the anchorer batches next; the indexes on actor, time, corrects and accepted_at go.
``trace_code`` loses the unique index on ``path`` (the id is the path's keccak, so the primary key already keeps
paths unique) and finds a batch's codes by (batch_id, leaf_index).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("actor", "time", "corrects", "accepted_at", "batch"):
        op.drop_index(f"ix_trace_event_{name}", table_name="trace_event")
    op.create_index("ix_trace_event_batch", "trace_event", ["batch", "leaf_index"])
    op.drop_index("ix_trace_code_batch_id", table_name="trace_code")
    op.create_index("ix_trace_code_batch", "trace_code", ["batch_id", "leaf_index"])
    if op.get_bind().dialect.name == "sqlite":  # an unnamed UNIQUE: the table is rebuilt without it
        with op.batch_alter_table(
            "trace_code", recreate="always", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}
        ) as table:
            table.drop_constraint("uq_trace_code_path", type_="unique")
    else:
        op.drop_constraint("trace_code_path_key", "trace_code", type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("trace_code", recreate="always") as table:
            table.create_unique_constraint("uq_trace_code_path", ["path"])
    else:
        op.create_unique_constraint("trace_code_path_key", "trace_code", ["path"])
    op.drop_index("ix_trace_code_batch", table_name="trace_code")
    op.create_index("ix_trace_code_batch_id", "trace_code", ["batch_id"])
    op.drop_index("ix_trace_event_batch", table_name="trace_event")
    for name in ("actor", "time", "corrects", "accepted_at", "batch"):
        op.create_index(f"ix_trace_event_{name}", "trace_event", [name])
