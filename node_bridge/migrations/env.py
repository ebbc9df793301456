"""alembic environment: migrations run on the engine the store hands over (see ``node_bridge/store.py``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import api.models  # noqa: F401  (registers the API's own tables: api_key, person)
import credtrace.webhooks  # noqa: F401  (registers the webhook tables: webhook_subscription, webhook_delivery)
import node_bridge.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from node_bridge import trace_models  # noqa: F401  (registers the traceability tables: trace_*)

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
