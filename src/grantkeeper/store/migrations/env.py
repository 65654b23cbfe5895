"""Alembic environment: runs only programmatically, on a connection the store hands over.

See :func:`grantkeeper.store.migrate.upgrade`; there is no ``alembic.ini`` on purpose, so the
package's migrations always run against the URL and schema the store was opened with. The
version table is ``gk_alembic_version``, so an app's own Alembic history (``alembic_version``)
in the same database is never touched.
"""

from __future__ import annotations

from alembic import context

from grantkeeper.store.migrate import VERSION_TABLE
from grantkeeper.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations with `grantkeeper db upgrade` or GrantStore.migrate().")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # Tests build a database as versions before 0004 left it (history in alembic_version).
    version_table=context.config.attributes.get("version_table", VERSION_TABLE),
    # SQLite cannot ALTER most things; batch mode rebuilds tables when a migration needs it.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
