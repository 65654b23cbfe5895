"""SQLite writes past SQLAlchemy's execution (store/compiled_writes.py): the statements built
once run on sqlite3 with SQLAlchemy's SQL and processors, write exactly what SQLAlchemy writes,
give back the same RETURNING rows, and fail with the same exceptions; anything SQLAlchemy would
treat specially still goes through it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing, generate_key
from grantkeeper.store import GrantStore
from grantkeeper.store.audit_log import AUDIT_INSERT, audit_row
from grantkeeper.store.codec import PROFILE_FIELDS
from grantkeeper.store.compiled_writes import CompiledWrite, CompiledWrites, hot, is_hot
from grantkeeper.store.grant_store import USER_SIGNED_IN
from grantkeeper.store.hand_outs import LAST_USED
from grantkeeper.store.store_core import of_grant
from grantkeeper.store.tables import audit_events, grants, metadata, users

from .helpers import CLIENT, sign_in

NOW = datetime(2026, 12, 3, 12, 0, 0, 123456, tzinfo=UTC)
SUB = "110169484474386276334"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'writes.sqlite3'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _user(conn: sa.Connection, sub: str = SUB) -> None:
    conn.execute(users.insert(), {"sub": sub, "created_at": NOW, "updated_at": NOW})


def _table(conn: sa.Connection, table: sa.Table) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(table.select().order_by(table.c[0].name))]


def test_an_audit_insert_writes_what_sqlalchemy_writes_one_and_many(engine: sa.Engine) -> None:
    writes = CompiledWrites(engine.dialect)
    rows = [
        audit_row(NOW, "token", SUB, CLIENT, "ok", {"key": "worker", "scopes": ["a", "b"]}),
        audit_row(NOW + timedelta(seconds=1), "refresh", SUB, CLIENT, "ok", {}),
    ]
    with engine.begin() as conn:
        assert writes.run(conn, AUDIT_INSERT, rows[0]) is not None
        assert writes.run(conn, AUDIT_INSERT, rows) is not None
        ours = _table(conn, audit_events)
        conn.execute(audit_events.delete())
        conn.execute(AUDIT_INSERT, rows[0])
        conn.execute(AUDIT_INSERT, rows)
        theirs = _table(conn, audit_events)
    assert len(ours) == 3
    assert [{k: v for k, v in r.items() if k != "id"} for r in ours] == [
        {k: v for k, v in r.items() if k != "id"} for r in theirs
    ]
    assert ours[0]["detail"] == {"key": "worker", "scopes": ["a", "b"]}
    assert ours[0]["at"] == NOW  # aware UTC, microseconds kept, as SQLAlchemy reads it back


def test_a_returning_update_gives_the_row_sqlalchemy_gives(engine: sa.Engine) -> None:
    writes = CompiledWrites(engine.dialect)
    bound: dict[str, Any] = {"p_sub": SUB, "p_updated_at": NOW}
    bound |= {f"p_{name}": None for name in PROFILE_FIELDS}  # absent: the stored value stays
    bound |= {"p_email": "ada@example.com", "p_given_name": "Ada"}
    with engine.begin() as conn:
        _user(conn)
        ours = writes.run(conn, USER_SIGNED_IN, bound)
        assert ours is not None
        row = ours.one()
        theirs = conn.execute(USER_SIGNED_IN, bound).one()
    assert row._mapping == dict(theirs._mapping)
    assert row.email == "ada@example.com"
    assert row.updated_at == NOW
    assert row[0] == theirs[0]


def test_an_update_without_returning_counts_its_rows(engine: sa.Engine) -> None:
    writes = CompiledWrites(engine.dialect)
    with engine.begin() as conn:
        _user(conn)
        conn.execute(
            grants.insert(),
            {"sub": SUB, "client_id": CLIENT, "created_at": NOW, "updated_at": NOW},
        )
        used = {**of_grant(SUB, CLIENT), "p_last_used_at": NOW}
        missing = {**of_grant("nobody", CLIENT), "p_last_used_at": NOW}
        assert writes.run(conn, LAST_USED, used).rowcount == 1  # type: ignore[union-attr]
        assert writes.run(conn, LAST_USED, missing).rowcount == 0  # type: ignore[union-attr]
        stored = conn.execute(sa.select(grants.c.last_used_at)).scalar_one()
    assert stored == NOW


def test_errors_are_the_ones_sqlalchemy_raises_without_the_parameters(engine: sa.Engine) -> None:
    writes = CompiledWrites(engine.dialect)
    row = {"sub": SUB, "created_at": NOW, "updated_at": NOW, "email": "secret@example.com"}
    statement = hot(users.insert())
    with engine.connect() as conn, conn.begin():
        assert writes.run(conn, statement, row) is not None
        with pytest.raises(exc.IntegrityError) as duplicate:
            writes.run(conn, statement, row)
        assert "secret@example.com" not in str(duplicate.value)
        naive = {**row, "sub": "2", "created_at": NOW.replace(tzinfo=None)}
        with pytest.raises(exc.StatementError, match="timezone-aware") as refused:
            writes.run(conn, statement, naive)
        assert isinstance(refused.value.orig, ValueError)


def test_other_failures_come_out_as_sqlalchemy_lets_them(engine: sa.Engine) -> None:
    writes = CompiledWrites(engine.dialect)
    used = {**of_grant(SUB, CLIENT), "p_last_used_at": NOW}
    with engine.connect() as conn, conn.begin():
        # A value the driver itself refuses (beyond SQLite's 64-bit integers): not wrapped.
        with pytest.raises(OverflowError):
            writes.run(conn, LAST_USED, {**used, "w_sub": 2**70})
        with pytest.raises(exc.StatementError, match="A value is required"):
            writes.run(conn, LAST_USED, of_grant(SUB, CLIENT))
        written = writes.run(conn, LAST_USED, used)
        assert written is not None
        assert written.rowcount == 0
        with pytest.raises(exc.ResourceClosedError):
            written.first()  # no RETURNING: no rows to ask for, as in SQLAlchemy
    statement = hot(users.insert())
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.close()
        with pytest.raises(exc.DBAPIError) as gone:
            writes.run(conn, statement, {"sub": "3", "created_at": NOW, "updated_at": NOW})
        assert gone.value.connection_invalidated
        assert conn.invalidated


def test_a_value_computed_per_call_is_left_to_sqlalchemy(engine: sa.Engine) -> None:
    counter = iter(range(100, 200))
    statement = hot(
        audit_events.insert().values(
            kind=sa.bindparam("kind_now", callable_=lambda: f"kind-{next(counter)}")
        )
    )
    keys = ["at", "client_id", "detail", "outcome", "sub"]
    assert CompiledWrite.of(statement, engine.dialect, keys, many=False) is None


def test_only_statements_built_once_take_the_compiled_path() -> None:
    built_per_call = audit_events.insert()
    assert not is_hot(built_per_call)
    assert is_hot(AUDIT_INSERT)
    assert is_hot(hot(sa.select(users)))  # PostgreSQL's direct writes run them
    assert not is_hot(hot(users.c.sub == "x"))  # not a statement
    assert is_hot(hot(built_per_call))


def test_what_sqlalchemy_treats_specially_is_left_to_it(engine: sa.Engine) -> None:
    table = sa.Table(
        "with_default",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("made", sa.String, default=lambda: "python-side"),
    )
    table.create(engine)
    statement = hot(table.insert())
    # A Python-side column default: SQLAlchemy computes it; this path would not.
    assert CompiledWrite.of(statement, engine.dialect, ["id"], many=False) is None
    writes = CompiledWrites(engine.dialect)
    with engine.begin() as conn:
        assert writes.run(conn, statement, {"id": 1}) is None
        conn.execute(statement, {"id": 1})
        assert conn.execute(sa.select(table.c.made)).scalar_one() == "python-side"
    # RETURNING on many rows, and no parameters at all.
    returning = hot(users.insert().returning(users.c.sub))
    many = [{"sub": s, "created_at": NOW, "updated_at": NOW} for s in "12"]
    assert CompiledWrite.of(returning, engine.dialect, sorted(many[0]), many=True) is None
    with engine.begin() as conn:
        assert writes.run(conn, returning, None) is None


@pytest.mark.anyio
async def test_a_sign_in_and_a_lease_on_sqlite_take_the_compiled_path(
    tmp_path: Path, sqlite_template: Path
) -> None:
    clock = ManualClock(NOW)
    path = tmp_path / "store.sqlite3"
    shutil.copy(sqlite_template, path)
    store = await GrantStore.open(
        f"sqlite:///{path}", KeyRing.from_strings([generate_key()]), clock
    )
    try:
        assert store._inline is not None
        compiled = store._inline._writes
        await sign_in(store, clock)
        kinds = {type(statement).__name__ for statement, _, _ in compiled._found}
        assert {"Insert", "Update"} <= kinds
        assert all(found is not None for found in compiled._found.values())
        grant = await store.try_acquire_lease(SUB, CLIENT, "me", timedelta(seconds=30))
        assert grant is not None
        assert grant.sub == SUB
    finally:
        await store.close()
