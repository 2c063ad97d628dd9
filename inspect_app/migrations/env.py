"""Alembic environment of the defect log, run programmatically by `DefectStore.open`.

The caller passes an open connection in `config.attributes["connection"]`; there is no
alembic.ini and no offline mode.
"""

from __future__ import annotations

from alembic import context

from inspect_app.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    msg = "the defect log's migrations run through DefectStore.open(url), not the alembic CLI"
    raise RuntimeError(msg)

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
