"""Table names for migrations 0001-0003, which were written before the ``gk_`` prefix.

A new database gets the prefixed names from its first revision, so an app's own ``users``
table never meets grantkeeper's, not even half-way through an upgrade. Databases created
before the prefix have the bare names at 0003; revision 0004 renames them. Tests build such a
database by setting the Alembic config attribute ``legacy_table_names``.
"""

from __future__ import annotations

from alembic import context

PREFIX = "gk_"


def table(name: str) -> str:
    """``gk_<name>``, or the bare name when building a pre-prefix database."""
    if context.config.attributes.get("legacy_table_names"):
        return name
    return PREFIX + name
