"""Alembic environment: runs on the connection that `evidence.db.migrate` hands it."""

from alembic import context

from evidence.db.metadata import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
