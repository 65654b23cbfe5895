"""Write statements SQLAlchemy compiled once, for running on SQLite's own connection.

A sign-in writes six statements on SQLite, a refresh four; through SQLAlchemy's execution
machinery (execution context, parameter processing, result wrapper) each cost more CPU than
SQLite spent on it. The statements the store builds once (module constants and
``StoreCore._prebuilt``) are marked with :func:`hot`; inside a SQLite write transaction such a
statement runs on the ``sqlite3`` connection with SQLAlchemy's own SQL for those parameter keys
and SQLAlchemy's bind and result processors (as :mod:`.compiled_reads` does for the token
read). Errors are SQLAlchemy's (``IntegrityError`` and so on, parameters hidden). A statement
SQLAlchemy would treat specially (Python-side column defaults, expanding parameters, values
computed per call, RETURNING on many rows) goes through SQLAlchemy as before. One difference
is kept: ``rowcount`` of an UPDATE … RETURNING is the rows written (SQLAlchemy reports 0 on
SQLite, PostgreSQL the rows written); the store reads RETURNING rows, not that count.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Dialect

from grantkeeper.store.compiled_reads import bound_parameters, processed_parameters

S = TypeVar("S")

#: Statements built once; only these take the compiled path (a statement built per call would
#: be compiled per call, and its id reused).
_HOT: weakref.WeakSet[Any] = weakref.WeakSet()

#: Compiled forms kept per store: statements x parameter key sets in use stay far below it.
MAX_COMPILED = 256

#: The most rows an INSERT of several rows is one statement for (:meth:`CompiledWrites.rows`);
#: each count is its own statement (and its own prepared statement on a connection).
MAX_ROWS_PER_INSERT = 32


def hot(statement: S) -> S:
    """Mark a statement built once (a module constant, a prebuilt statement) for the compiled
    path (inside a SQLite write; PostgreSQL's direct writes, :mod:`.pg_direct_writes`); other
    objects are returned unmarked. SQLite runs only INSERT, UPDATE and DELETE this way."""
    if isinstance(statement, sa.Insert | sa.Update | sa.Delete | sa.Select):
        _HOT.add(statement)
    return statement


def is_hot(statement: object) -> bool:
    return statement in _HOT


@dataclass(frozen=True, slots=True)
class CompiledWrite:
    """One write statement's SQL for one set of parameter keys, and its RETURNING columns (a
    SELECT's columns, for a SELECT whose CTEs write)."""

    sql: str
    #: Parameter names in the order of the SQL's placeholders (SQLite's ``?``); ``None`` where
    #: the driver takes them by name (psycopg's ``%(name)s``).
    positional: tuple[str, ...] | None
    bound: Mapping[str, tuple[bool, Any, Callable[[Any], Any] | None]]
    #: The RETURNING columns' names and result processors; ``None`` without RETURNING.
    names: tuple[str, ...] | None
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def of(
        cls, statement: Any, dialect: Dialect, keys: Sequence[str], many: bool
    ) -> CompiledWrite | None:
        """The statement compiled as SQLAlchemy compiles it for these parameter keys, or
        ``None`` where SQLAlchemy's execution does more than bind and run it."""
        selecting = isinstance(statement, sa.Select)
        if isinstance(statement, sa.Insert) and not statement.exported_columns:
            # Without RETURNING of its own, PostgreSQL's single-row INSERT would return the new
            # primary key (SQLAlchemy's inserted_primary_key), which the store never asks for.
            statement = statement.inline()
        compiled = statement.compile(dialect=dialect, column_keys=list(keys), for_executemany=many)
        returning = selecting or bool(compiled.effective_returning)
        if (
            any(bind.callable is not None for bind in compiled.binds.values())
            or compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or compiled.post_compile_params
            or compiled.escaped_bind_names
            or (dialect.positional and compiled.positiontup is None)
            or (returning and many)
        ):
            return None
        columns = list(statement.selected_columns if selecting else statement.exported_columns)
        if not returning:
            columns = []
        if len({column.name for column in columns}) != len(columns):
            return None  # a row by name would lose a column
        return cls(
            sql=compiled.string,
            positional=tuple(compiled.positiontup) if dialect.positional else None,
            bound=bound_parameters(compiled, dialect),
            names=tuple(column.name for column in columns) if returning else None,
            processors=tuple(
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in columns
            ),
        )

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        processed = processed_parameters(self.bound, values, _required)
        if self.positional is None:
            return processed
        return tuple(processed[name] for name in self.positional)


def _required(name: str) -> Exception:
    return exc.InvalidRequestError(f"A value is required for bind parameter {name!r}", code="cd3x")


class WrittenRow:
    """A RETURNING row: by column name as an attribute or through ``_mapping``, by position
    with ``[]`` (what the store uses of SQLAlchemy's ``Row``)."""

    __slots__ = ("_mapping", "_values")

    def __init__(self, mapping: dict[str, Any], values: tuple[Any, ...]) -> None:
        self._mapping = mapping
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, index: int) -> Any:
        return self._values[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class WrittenResult:
    """What the store uses of a write's ``CursorResult``: ``rowcount`` and the RETURNING rows
    (``first``, ``one``, ``one_or_none``, ``all``, the ``scalar`` family). A result without
    RETURNING has no rows to ask for, as in SQLAlchemy (``ResourceClosedError``)."""

    __slots__ = ("_fetched", "rowcount")

    def __init__(self, rowcount: int, rows: list[WrittenRow] | None) -> None:
        self.rowcount = rowcount
        self._fetched = rows

    @property
    def _rows(self) -> list[WrittenRow]:
        if self._fetched is None:
            raise exc.ResourceClosedError(
                "This result object does not return rows. It has been closed automatically."
            )
        return self._fetched

    def first(self) -> WrittenRow | None:
        return self._rows[0] if self._rows else None

    def one(self) -> WrittenRow:
        if not self._rows:
            raise exc.NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one was required")
        return self._rows[0]

    def one_or_none(self) -> WrittenRow | None:
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        return self.first()

    def all(self) -> list[WrittenRow]:
        return list(self._rows)

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]


class CompiledWrites:
    """The compiled forms of one store's hot write statements, by statement and key set."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._found: dict[tuple[Any, tuple[str, ...], bool], CompiledWrite | None] = {}
        self._rows_found: dict[tuple[Any, tuple[str, ...], int], CompiledWrite | None] = {}

    def rows(
        self, statement: Any, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[CompiledWrite, dict[str, Any]] | None:
        """An INSERT of several rows (an executemany's) as one statement, ``VALUES (…), (…)``,
        and its parameters (each row's under its own names); ``None`` where it must stay an
        executemany: another kind of statement, RETURNING, rows with different keys, more
        than :data:`MAX_ROWS_PER_INSERT` rows, or values SQLAlchemy computes per row.

        psycopg sends an executemany as a pipeline, a statement per row: for the few rows of a
        batch of token hand-outs that cost 2-2.5x the CPU of one INSERT of them all (113
        against 56 us for four rows, 162 against 65 us for eight). One statement is as atomic
        as the pipeline's rows were (one Sync): all of them are written, or none."""
        count = len(rows)
        if (
            not isinstance(statement, sa.Insert)
            or statement.exported_columns
            or not 1 < count <= MAX_ROWS_PER_INSERT
        ):
            return None
        keys = tuple(sorted(rows[0]))
        if any(len(row) != len(keys) or any(k not in row for k in keys) for row in rows[1:]):
            return None
        key = (statement, keys, count)
        try:
            compiled = self._rows_found[key]
        except KeyError:
            columns = statement.table.c
            try:
                several = statement.values(
                    [
                        {k: sa.bindparam(f"{k}_r{i}", type_=columns[k].type) for k in keys}
                        for i in range(count)
                    ]
                )
            except (KeyError, exc.ArgumentError):  # a key that is no column's
                compiled = None
            else:
                compiled = CompiledWrite.of(several, self._dialect, (), False)
            if len(self._rows_found) < MAX_COMPILED:
                self._rows_found[key] = compiled
        if compiled is None:
            return None
        return compiled, {f"{k}_r{i}": row[k] for i, row in enumerate(rows) for k in keys}

    def compiled(
        self, statement: Any, parameters: Any
    ) -> tuple[CompiledWrite, Sequence[Mapping[str, Any]]] | None:
        """The compiled form of ``statement`` for these parameters (a mapping, or a list of
        them for an executemany) and the parameters as a list; ``None`` where it must go
        through SQLAlchemy's execution instead."""
        if isinstance(parameters, Mapping):
            rows: Sequence[Mapping[str, Any]] = (parameters,)
        elif isinstance(parameters, list | tuple) and parameters:
            rows = parameters
        else:
            return None
        many = len(rows) > 1
        keys = tuple(sorted(rows[0]))
        key = (statement, keys, many)
        try:
            compiled = self._found[key]
        except KeyError:
            compiled = CompiledWrite.of(statement, self._dialect, keys, many)
            if len(self._found) < MAX_COMPILED:
                self._found[key] = compiled
        return None if compiled is None else (compiled, rows)

    def run(self, conn: sa.Connection, statement: Any, parameters: Any) -> WrittenResult | None:
        """Run ``statement`` on ``conn``'s sqlite3 connection (inside its transaction); ``None``
        when it must go through SQLAlchemy instead (a SELECT always does on SQLite)."""
        if isinstance(statement, sa.Select):
            return None
        found = self.compiled(statement, parameters)
        if found is None:
            return None
        compiled, rows = found
        many = len(rows) > 1
        raw = conn.connection.dbapi_connection
        if raw is None:
            return None
        # Errors as SQLAlchemy raises them, its parameters hidden: a bind processor's (a naive
        # datetime) as a StatementError, the driver's as its DBAPIError (IntegrityError, …),
        # a closed database's with the connection invalidated.
        try:
            bound = [compiled.parameters(r) for r in rows]
        except Exception as error:
            raise exc.DBAPIError.instance(
                compiled.sql, None, error, sqlite3.Error, hide_parameters=True, ismulti=many
            ) from error
        try:
            if many:
                cursor = raw.executemany(compiled.sql, bound)
            else:
                cursor = raw.execute(compiled.sql, bound[0])
            fetched = cursor.fetchall() if compiled.names is not None else None
        except sqlite3.Error as error:
            gone = self._dialect.is_disconnect(error, raw, None)  # type: ignore[arg-type]
            if gone:
                conn.invalidate(error)
            raise exc.DBAPIError.instance(
                compiled.sql,
                None,
                error,
                sqlite3.Error,
                hide_parameters=True,
                connection_invalidated=gone,
                ismulti=many,
            ) from error
        if fetched is None:
            return WrittenResult(cursor.rowcount, None)
        return WrittenResult(cursor.rowcount, [written_row(compiled, r) for r in fetched])


def written_row(compiled: CompiledWrite, values: Sequence[Any]) -> WrittenRow:
    """A driver's row of ``compiled``'s RETURNING (or SELECT) columns, processed as SQLAlchemy
    processes it."""
    assert compiled.names is not None
    mapping = {
        name: value if process is None or value is None else process(value)
        for name, process, value in zip(compiled.names, compiled.processors, values, strict=True)
    }
    return WrittenRow(mapping, tuple(mapping.values()))
