"""A read statement SQLAlchemy compiled once, for running on the driver's own connection.

The token read's one ``SELECT`` costs more in SQLAlchemy's execution machinery (execution
context, result wrapper, row processing setup) than in the database. For that statement the
store keeps SQLAlchemy's SQL and SQLAlchemy's own result processors (``TypeEngine
.result_processor``: SQLite's datetime text, :class:`~grantkeeper.store.tables.UTCDateTime`'s
conversion to aware UTC) and runs it on the driver's connection: the rows come back exactly as
SQLAlchemy would have made them, as a mapping by column name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


def bound_parameters(
    compiled: Any, dialect: Dialect
) -> dict[str, tuple[bool, Any, Callable[[Any], Any] | None]]:
    """Per parameter name of a compiled statement: whether the caller must give it, else the
    value the statement itself binds, and the type's bind processor for this dialect."""
    return {
        name: (
            bind.required,
            bind.effective_value,
            bind.type.dialect_impl(dialect).bind_processor(dialect),
        )
        for name, bind in ((compiled.bind_names[b], b) for b in compiled.binds.values())
    }


def processed_parameters(
    bound: Mapping[str, tuple[bool, Any, Callable[[Any], Any] | None]],
    values: Mapping[str, Any],
    missing: Callable[[str], Exception],
) -> dict[str, Any]:
    """``values`` by parameter name as the driver takes them: the statement's own value where
    the caller gives none, each through its bind processor; ``missing(name)`` is raised for a
    parameter the statement does not bind and ``values`` lacks."""
    processed = {}
    for name, (required, default, process) in bound.items():
        if name in values:
            value = values[name]
        elif required:
            raise missing(name)
        else:
            value = default
        processed[name] = value if process is None else process(value)
    return processed


@dataclass(frozen=True, slots=True)
class CompiledRead:
    """The SQL of one read statement for one dialect, its parameters' order, its columns."""

    sql: str
    #: Parameter names in the order of the SQL's placeholders (SQLite's ``?``); ``None`` where
    #: the driver takes them by name (psycopg's ``%(name)s``).
    positional: tuple[str, ...] | None
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    #: Per parameter name: whether the caller must give it, else the value the statement
    #: itself binds (a literal in a WHERE, a LIMIT), and the type's bind processor (a
    #: datetime made naive UTC for SQLite, …), as SQLAlchemy applies them.
    bound: Mapping[str, tuple[bool, Any, Callable[[Any], Any] | None]]

    @classmethod
    def of(cls, statement: sa.Select[Any], dialect: Dialect) -> CompiledRead:
        compiled = statement.compile(dialect=dialect)
        columns = list(statement.selected_columns)
        positional = compiled.positiontup
        return cls(
            sql=str(compiled),
            positional=tuple(positional) if dialect.positional and positional else None,
            bound=bound_parameters(compiled, dialect),
            names=tuple(column.name for column in columns),
            # The type as this dialect adapts it (SQLite's DATETIME parses its text form).
            processors=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """``values`` as the driver takes them for this SQL: the statement's own values where
        the caller gives none, each through its type's bind processor.

        Raises:
            KeyError: a parameter the statement does not bind is missing from ``values``.
        """
        processed = processed_parameters(self.bound, values, KeyError)
        if self.positional is None:
            return processed
        return tuple(processed[name] for name in self.positional)

    def row(self, values: Sequence[Any]) -> dict[str, Any]:
        """A driver's row (a tuple in column order) as SQLAlchemy would have processed it."""
        return {
            name: value if process is None or value is None else process(value)
            for name, process, value in zip(self.names, self.processors, values, strict=True)
        }


class CompiledReads:
    """Each statement compiled once per store (statements built once, such as
    ``GRANT_OF_CLIENT``); the statement is kept too, so its id is never reused."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._found: dict[int, tuple[sa.Select[Any], CompiledRead]] = {}

    def __getitem__(self, statement: sa.Select[Any]) -> CompiledRead:
        found = self._found.get(id(statement))
        if found is None:
            found = self._found[id(statement)] = (
                statement,
                CompiledRead.of(statement, self._dialect),
            )
        return found[1]
