"""alembic environment: migrations run on the engine the store hands over (see ``node_bridge/store.py``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

# Every module defining tables, so that SQLModel.metadata holds them all:
import api.models  # noqa: F401  (the API's own tables: api_key, person)
import credtrace.webhooks  # noqa: F401  (webhook_subscription, webhook_delivery)
import node_bridge.models  # noqa: F401  (the data path and the index of the Consortium and CreditRegistry)
from node_bridge import (  # noqa: F401  (each registry's tables: trace_*, logistics_*, protection_*, payment_*, ...)
    logistics_models,
    payment_models,
    protection_models,
    supervision_models,
    trace_models,
)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine") or engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
