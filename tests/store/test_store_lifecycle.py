"""Status changes, erasure, the sign-in replay cache, the audit log and failure modes."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from grantkeeper.clock import ManualClock
from grantkeeper.crypto import KeyRing
from grantkeeper.errors import ConfigurationError, StoreUnavailable
from grantkeeper.store import GrantStatus, GrantStore, refresh_token_sha512x2, signin_code_hash
from grantkeeper.store.engine import normalize_url
from grantkeeper.store.migrate import head_revision
from grantkeeper.store.signin_replay_cache import PENDING
from grantkeeper.store.tables import audit_events, webhook_outbox
from grantkeeper.store.webhook_outbox import OutboxMessage

from .helpers import CLIENT, OTHER_CLIENT, OpensStores, profile, raw_sql, sign_in

pytestmark = pytest.mark.anyio

SUB = "110169484474386276334"


async def test_replay_cache_answers_for_ten_minutes_then_forgets(
    store: GrantStore, store_clock: ManualClock
) -> None:
    key = signin_code_hash("4/0AeanS0b-one-time-code")
    assert key != "4/0AeanS0b-one-time-code"
    assert len(key) == 64
    answer = json.dumps({"user": {"sub": SUB}, "grant": {"offline": True}})
    await store.remember_signin_response(key, answer, sub=SUB)

    store_clock.advance(599)
    assert await store.recall_signin_response(key) == answer
    assert await store.recall_signin_response(signin_code_hash("another code")) is None
    store_clock.advance(1)
    assert await store.recall_signin_response(key) is None
    assert await store.purge_expired_signin_responses() == 1
    assert await store.purge_expired_signin_responses() == 0


async def test_remembering_purges_expired_entries_once_a_minute_and_may_overwrite(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await store.remember_signin_response("a" * 64, "{}", timedelta(seconds=5))
    store_clock.advance(61)
    await store.remember_signin_response("b" * 64, '{"b": 1}')
    await store.remember_signin_response("b" * 64, '{"b": 2}')
    assert await store.purge_expired_signin_responses() == 0  # "a" went already
    assert await store.recall_signin_response("b" * 64) == '{"b": 2}'


async def test_a_claim_takes_over_an_expired_entry_of_its_code(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await store.remember_signin_response("c" * 64, '{"c": 1}', timedelta(seconds=5))
    assert not await store.claim_signin("c" * 64, timedelta(seconds=60))
    store_clock.advance(6)
    assert await store.claim_signin("c" * 64, timedelta(seconds=60))
    assert await store.recall_signin_response("c" * 64) == PENDING
    assert not await store.claim_signin("c" * 64, timedelta(seconds=60))


async def test_pending_revocation_keeps_the_refresh_token_for_the_sweep(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    assert await store.mark_pending_revocation(SUB, None) == 1
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.status == GrantStatus.PENDING_REVOCATION
    assert grant.status_reason == "disconnect"
    assert grant.refresh_token == "1//0g-refresh-token-one"
    assert grant.access_token is None
    assert not grant.offline
    assert [g.sub for g in await store.list_grants(status="pending_revocation")] == [SUB]
    assert await store.count_by_status() == {"pending_revocation": 1}


async def test_erase_tokens_of_every_grant_of_the_user(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock, client_id=CLIENT)
    await sign_in(store, store_clock, client_id=OTHER_CLIENT, refresh_token="1//0g-two")
    await sign_in(store, store_clock, sub="someone-else", refresh_token="1//0g-three")
    erased = await store.erase_tokens(SUB, status=GrantStatus.DISCONNECTED, reason="user")
    assert erased == 2
    for grant in await store.list_grants(sub=SUB):
        assert (grant.refresh_token, grant.access_token) == (None, None)
        assert grant.access_token_expires_at is None
        assert grant.status == GrantStatus.DISCONNECTED
        assert grant.version == 2
    assert (
        await store.find_grants_by_refresh_token(sha512x2=refresh_token_sha512x2("1//0g-two")) == []
    )
    other = await store.get_grant("someone-else")
    assert other is not None
    assert other.refresh_token == "1//0g-three"
    assert await store.count_by_key_id() == {"primary": 2}


async def test_forget_user_erases_profile_grants_and_cached_answers_keeps_audit(
    store: GrantStore, store_clock: ManualClock
) -> None:
    await sign_in(store, store_clock)
    await store.remember_signin_response("c" * 64, '{"user": {"email": "ada@x"}}', sub=SUB)
    assert await store.forget_user(SUB)
    assert await store.get_user(SUB) is None
    assert await store.get_grant(SUB) is None
    assert await store.recall_signin_response("c" * 64) is None
    assert [e.kind for e in await store.list_audit(SUB)] == ["sign_in"]
    assert not await store.forget_user(SUB)  # idempotent


async def test_a_hand_out_keeps_the_last_use_without_bumping_the_version(
    store: GrantStore, store_clock: ManualClock
) -> None:
    signed = await sign_in(store, store_clock)
    store_clock.advance(3600)
    await store.record_hand_out(SUB, CLIENT, used_at=store_clock.now())
    grant = await store.get_grant(SUB, CLIENT)
    assert grant is not None
    assert grant.last_used_at == store_clock.now()
    assert grant.version == signed.grant.version


async def test_audit_log_filters_and_order(store: GrantStore, store_clock: ManualClock) -> None:
    await sign_in(store, store_clock)
    store_clock.advance(1)
    await store.append_audit(
        "refresh", sub=SUB, client_id=CLIENT, outcome="failed", detail={"error": "timeout"}
    )
    await store.append_audit("risc", detail={"event": "verification"})
    newest_first = await store.list_audit()
    assert [e.kind for e in newest_first] == ["risc", "refresh", "sign_in"]
    assert newest_first[0].sub is None
    [failed] = await store.list_audit(SUB, kind="refresh")
    assert (failed.outcome, failed.detail, failed.at) == (
        "failed",
        {"error": "timeout"},
        store_clock.now(),
    )
    assert len(await store.list_audit(limit=1)) == 1


async def test_audit_ids_and_outbox_seqs_go_past_32_bits(
    store: GrantStore, store_target: OpensStores, store_clock: ManualClock
) -> None:
    """Every token hand-out is audited, so a busy keeper's audit log passes 2**31 records; on
    PostgreSQL an INTEGER column and its sequence then refused every audited write."""
    beyond = 2**31 + 5
    now = store_clock.now()
    async with raw_sql(store, write=True) as conn:
        await conn.execute(
            audit_events.insert().values(id=beyond, at=now, kind="x", outcome="ok", detail={})
        )
        await conn.execute(
            webhook_outbox.insert().values(
                seq=beyond,
                id="msg-0",
                type="x",
                body="{}",
                created_at=now,
                state="delivered",
                next_attempt_at=now,
            )
        )
        if store_target.backend == "postgres":
            for table, column in (("gk_audit_events", "id"), ("gk_webhook_outbox", "seq")):
                await conn.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), :n)"),
                    {"n": beyond},
                )
    await store.append_audit("token", sub=SUB, client_id=CLIENT)
    await store.enqueue_webhooks([OutboxMessage("msg-1", "grant.revoked", "{}", now)])
    newest, older = await store.list_audit()
    assert (newest.id, newest.kind, older.id) == (beyond + 1, "token", beyond)
    assert [e.id for e in await store.list_audit(before_id=beyond + 1)] == [beyond]
    listed = await store.list_webhooks()
    assert [entry.seq for entry in listed] == [beyond + 1, beyond]


async def test_the_store_reports_what_it_is(store: GrantStore, store_target: OpensStores) -> None:
    assert store.dialect == ("sqlite" if store_target.backend == "sqlite" else "postgresql")
    assert await store.current_revision() == head_revision()
    await store.ping()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_database_is_store_unavailable(store_keyring: KeyRing) -> None:
    url = f"postgresql://grantkeeper:s3cret-password@127.0.0.1:{_closed_port()}/test"
    with pytest.raises(StoreUnavailable) as caught:
        await GrantStore.open(url, store_keyring, ManualClock())
    assert caught.value.retryable
    assert caught.value.status == 503
    assert "s3cret-password" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


async def test_an_unopenable_sqlite_file_is_store_unavailable(
    tmp_path: Path, store_keyring: KeyRing
) -> None:
    (tmp_path / "a-directory.sqlite3").mkdir()
    with pytest.raises(StoreUnavailable):
        await GrantStore.open(
            f"sqlite:///{tmp_path / 'a-directory.sqlite3'}", store_keyring, ManualClock()
        )
    # aiosqlite stops the worker thread of a failed connection without waiting for it; let it
    # finish while this event loop still runs (else it reports into a closed loop later).
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


async def test_a_database_never_migrated_says_what_to_run(
    tmp_path: Path, store_keyring: KeyRing
) -> None:
    async with await GrantStore.open(
        f"sqlite:///{tmp_path / 'empty.sqlite3'}", store_keyring, ManualClock()
    ) as store:
        with pytest.raises(StoreUnavailable, match="grantkeeper db upgrade"):
            await store.get_grant(SUB)


@pytest.mark.parametrize("url", ["mysql://u@localhost/db", "not a url"])
async def test_unsupported_urls_are_configuration_errors(url: str, store_keyring: KeyRing) -> None:
    with pytest.raises(ConfigurationError):
        await GrantStore.open(url, store_keyring, ManualClock())


@pytest.mark.parametrize(
    ("given", "driver"),
    [
        ("postgresql://u:p@h:5433/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg"),
        ("sqlite:////var/lib/gk.sqlite3", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///gk.sqlite3", "sqlite+aiosqlite"),
    ],
)
def test_urls_get_the_async_driver(given: str, driver: str) -> None:
    url = normalize_url(given)
    assert url.drivername == driver
    assert url.database == make_url(given).database


async def test_a_bad_schema_name_is_a_configuration_error(store_keyring: KeyRing) -> None:
    with pytest.raises(ConfigurationError, match="Schema name"):
        await GrantStore.open(
            "postgresql://u@127.0.0.1/test", store_keyring, ManualClock(), schema='x"; drop'
        )


async def test_the_audit_log_bounded_in_time(store: GrantStore, store_clock: ManualClock) -> None:
    start = store_clock.now()
    for outcome in ("first", "second", "third"):
        await store.append_audit("sweep", outcome=outcome)
        store_clock.advance(60)
    since_second = await store.list_audit(kind="sweep", since=start + timedelta(seconds=60))
    assert [e.outcome for e in since_second] == ["third", "second"]  # since: inclusive
    until_second = await store.list_audit(kind="sweep", until=start + timedelta(seconds=60))
    assert [e.outcome for e in until_second] == ["first"]  # until: exclusive
    both = await store.list_audit(
        since=start + timedelta(seconds=30), until=start + timedelta(seconds=150)
    )
    assert [e.outcome for e in both] == ["third", "second"]


async def test_a_security_event_claim_released_after_a_failure_is_claimed_again(
    store: GrantStore, store_clock: ManualClock
) -> None:
    event = {"issuer": "https://accounts.google.com/", "jti": "4d3559ec67504aaba65d40b0363faad8"}
    assert await store.claim_security_event(**event, at=store_clock.now())
    assert not await store.claim_security_event(**event, at=store_clock.now())  # in progress
    await store.release_security_event(**event)  # its processing failed
    assert await store.claim_security_event(**event, at=store_clock.now())  # the redelivery
    await store.finish_security_event(**event, at=store_clock.now())
    store_clock.advance(86400)
    assert not await store.claim_security_event(**event, at=store_clock.now())  # done for good


async def test_claims_longer_than_their_column_are_shortened_or_dropped_the_same_everywhere(
    store: GrantStore, caplog: pytest.LogCaptureFixture
) -> None:
    long_name = "Ada " * 200
    record = await store.record_sign_in(
        profile(SUB, name=long_name, locale="x" * 100),
        CLIENT,
        {"openid"},
        "1//0g-refresh",
        "ya29.access",
        store._clock.now() + timedelta(hours=1),
    )
    assert record.user.name is not None
    assert len(record.user.name) == 512
    assert record.user.name.endswith("\u2026")
    assert long_name.startswith(record.user.name[:-1])
    assert record.user.locale is None  # a cut locale would be a wrong one
    stored = await store.get_user(SUB)
    assert stored is not None
    assert (stored.name, stored.locale) == (record.user.name, None)
    assert "claims longer than their column were shortened or dropped: locale, name" in caplog.text
    with pytest.raises(ValueError, match="255"):
        await store.record_sign_in(
            profile("1" * 256), CLIENT, {"openid"}, None, "ya29.x", store._clock.now()
        )


async def test_a_time_without_a_timezone_is_refused_before_it_is_written(
    store: GrantStore, store_clock: ManualClock
) -> None:
    # A programming error, not bad input: the keeper's clock is always timezone-aware.
    with pytest.raises(StatementError, match="timezone-aware") as refused:
        await store.record_sign_in(
            profile(SUB), CLIENT, {"openid"}, None, "ya29.x", store_clock.now().replace(tzinfo=None)
        )
    assert isinstance(refused.value.orig, ValueError)
    assert await store.get_user(SUB) is None
