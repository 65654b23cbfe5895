"""The RISC receiver against the emulator's RISC issuer (in-process ASGI) and a real store.

Each event type changes exactly what it should; a forged, misaddressed or replayed event
changes nothing; no token or token identifier reaches the audit log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from grantkeeper.clock import ManualClock
from grantkeeper.emulator.app import create_app
from grantkeeper.emulator.config import EmulatorConfig
from grantkeeper.emulator.risc.transmitter import SendRequest, build_set, token_identifier
from grantkeeper.emulator.state import EmulatorState
from grantkeeper.errors import InvalidSecurityEvent
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStatus, GrantStore, UserProfile

pytestmark = pytest.mark.anyio

ORIGIN = "http://localhost"  # an ASGI transport: no socket; the issuer rule allows localhost
SERVER = "server-1.apps.googleusercontent.com"
IOS = "ios-1.apps.googleusercontent.com"
ALICE, BOB = "110169484474386276334", "104729012345678901234"
ALICE_RT = "1//0gAlice-refresh-token-" + "a" * 40
BOB_RT = "1//0gBobby-refresh-token-" + "b" * 40
SCOPES = {"openid", "email", "https://www.googleapis.com/auth/drive.appdata"}


@pytest.fixture(scope="module")
def emulator() -> Any:
    return create_app(EmulatorConfig(base_url=ORIGIN))


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    return RSAKey.generate_key(2048, private=True)


@pytest.fixture
def receiver_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def receiver(
    store: GrantStore, emulator: Any, receiver_clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Keeper]:
    """The keeper as the RISC receiver of the server client and an iOS client."""
    await _sign_in(store, ALICE, ALICE_RT, receiver_clock)
    await _sign_in(store, BOB, BOB_RT, receiver_clock)
    client = {
        "client_id": SERVER,
        "client_secret": "server-secret",
        "auth_uri": f"{ORIGIN}/o/oauth2/v2/auth",
        "token_uri": f"{ORIGIN}/token",
    }
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps({"web": client}))
    settings = Settings(
        client_secrets_file=secrets_file,
        issuer=ORIGIN,
        allowed_client_ids=[IOS],
        data_dir=tmp_path / "data",
        _env_file=None,
    )
    transport = httpx.ASGITransport(app=emulator)
    async with Keeper(settings, clock=receiver_clock, store=store, transport=transport) as keeper:
        yield keeper


async def _sign_in(store: GrantStore, sub: str, refresh: str, clock: ManualClock) -> None:
    await store.record_sign_in(
        UserProfile(sub=sub, email=f"{sub}@example.com"),
        SERVER,
        SCOPES,
        refresh,
        f"ya29.access-{sub}",
        clock.now() + timedelta(hours=1),
    )


def _state(emulator: Any) -> EmulatorState:
    state = emulator.state.emulator
    assert isinstance(state, EmulatorState)
    return state


def _set(emulator: Any, event_type: str, **fields: Any) -> str:
    """A SET as the emulator (Google) builds and signs it."""
    state = _state(emulator)
    request = SendRequest(
        event_type=event_type, client_id=fields.pop("client_id", SERVER), **fields
    )
    _, claims = build_set(state, request, ORIGIN, token=fields.get("token"))
    return state.keys.sign(claims)


async def _grant(store: GrantStore, sub: str) -> Any:
    grant = await store.get_grant(sub, SERVER)
    assert grant is not None
    return grant


async def _snapshot(store: GrantStore) -> list[tuple[Any, ...]]:
    return [
        (g.sub, g.status, g.status_reason, g.refresh_token, g.access_token, g.version)
        for g in await store.list_grants()
    ]


# -- each event type ---------------------------------------------------------------------------


async def test_tokens_revoked_revokes_and_erases_every_grant_of_the_user(
    store: GrantStore, receiver: Keeper, emulator: Any
) -> None:
    receipt = await receiver.receive_security_event(_set(emulator, "tokens-revoked", sub=ALICE))
    assert [e.outcome for e in receipt.events] == ["revoked"]
    alice = await _grant(store, ALICE)
    assert alice.status == GrantStatus.REVOKED
    assert alice.status_reason == "risc:tokens-revoked"
    assert alice.refresh_token is None
    assert alice.access_token is None
    bob = await _grant(store, BOB)
    assert bob.status == GrantStatus.ACTIVE
    assert bob.refresh_token == BOB_RT


@pytest.mark.parametrize("algorithm", ["hash_base64_sha512_sha512", "prefix"])
async def test_token_revoked_matches_the_refresh_token_by_its_identifier(
    store: GrantStore, receiver: Keeper, emulator: Any, algorithm: str
) -> None:
    token = _set(emulator, "token-revoked", token=BOB_RT, token_identifier_alg=algorithm)
    receipt = await receiver.receive_security_event(token)
    assert receipt.events[0].outcome == "revoked"
    bob = await _grant(store, BOB)
    assert (bob.status, bob.status_reason, bob.refresh_token) == (
        GrantStatus.REVOKED,
        "risc:token-revoked",
        None,
    )
    assert (await _grant(store, ALICE)).status == GrantStatus.ACTIVE


async def test_token_revoked_accepts_the_base64url_spelling_of_the_hash(
    store: GrantStore, receiver: Keeper, emulator: Any
) -> None:
    standard = token_identifier(ALICE_RT, "hash_base64_sha512_sha512")
    urlsafe = standard.replace("+", "-").replace("/", "_").rstrip("=")
    await receiver.receive_security_event(_set(emulator, "token-revoked", token_identifier=urlsafe))
    assert (await _grant(store, ALICE)).status == GrantStatus.REVOKED


async def test_token_revoked_for_an_unknown_token_changes_nothing(
    store: GrantStore, receiver: Keeper, emulator: Any
) -> None:
    before = await _snapshot(store)
    receipt = await receiver.receive_security_event(
        _set(emulator, "token-revoked", token="1//0gSomeoneElse")
    )
    assert receipt.events[0].outcome == "no_match"
    assert await _snapshot(store) == before


async def test_token_revoked_spares_a_refresh_token_that_replaced_it_meanwhile(
    store: GrantStore,
    receiver: Keeper,
    emulator: Any,
    receiver_clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user signs in again between the lookup by fingerprint and the erase."""
    find = store.find_grants_by_refresh_token
    replacement = "1//0gBOB-SIGNED-IN-AGAIN"

    async def find_then_sign_in(**identifier: Any) -> Any:
        found = await find(**identifier)
        await _sign_in(store, BOB, replacement, receiver_clock)
        return found

    monkeypatch.setattr(store, "find_grants_by_refresh_token", find_then_sign_in)
    receipt = await receiver.receive_security_event(_set(emulator, "token-revoked", token=BOB_RT))
    assert receipt.events[0].outcome == "no_match"
    bob = await _grant(store, BOB)
    assert bob.status == GrantStatus.ACTIVE
    assert bob.refresh_token == replacement


@pytest.mark.parametrize(
    ("reason", "status_reason"),
    [
        ("hijacking", "risc:account-disabled:hijacking"),
        ("bulk-account", "risc:account-disabled:bulk-account"),
        (None, "risc:account-disabled:none"),
    ],
)
async def test_account_disabled_then_enabled(
    store: GrantStore,
    receiver: Keeper,
    emulator: Any,
    reason: str | None,
    status_reason: str,
) -> None:
    await receiver.receive_security_event(
        _set(emulator, "account-disabled", sub=ALICE, reason=reason)
    )
    alice = await _grant(store, ALICE)
    assert (alice.status, alice.status_reason) == (GrantStatus.DISABLED, status_reason)
    # Disabled, not destroyed: the refresh token stays (encrypted) for when Google re-enables.
    assert alice.refresh_token == ALICE_RT
    assert alice.access_token is None
    assert not alice.offline
    assert (await _grant(store, BOB)).status == GrantStatus.ACTIVE

    await receiver.receive_security_event(_set(emulator, "account-enabled", sub=ALICE))
    alice = await _grant(store, ALICE)
    assert (alice.status, alice.status_reason) == (GrantStatus.ACTIVE, "risc:account-enabled")
    assert alice.offline


async def test_account_enabled_does_not_revive_a_grant_revoked_for_another_reason(
    store: GrantStore, receiver: Keeper, emulator: Any
) -> None:
    await store.mark_revoked(ALICE, SERVER, "invalid_grant")
    await receiver.receive_security_event(_set(emulator, "account-enabled", sub=ALICE))
    assert (await _grant(store, ALICE)).status == GrantStatus.REVOKED
    # account-disabled only disables active grants, so enabling cannot revive this one either.
    await receiver.receive_security_event(
        _set(emulator, "account-disabled", sub=ALICE, reason="hijacking")
    )
    await receiver.receive_security_event(_set(emulator, "account-enabled", sub=ALICE))
    assert (await _grant(store, ALICE)).status == GrantStatus.REVOKED


@pytest.mark.parametrize(
    "event", ["sessions-revoked", "account-credential-change-required", "verification"]
)
async def test_flagging_events_leave_the_grants_alone_and_are_audited(
    store: GrantStore, receiver: Keeper, emulator: Any, event: str
) -> None:
    before = await _snapshot(store)
    fields: dict[str, Any] = {"state": "setup-check-42"} if event == "verification" else {}
    receipt = await receiver.receive_security_event(_set(emulator, event, sub=ALICE, **fields))
    assert await _snapshot(store) == before
    expected = "logged" if event == "verification" else "flagged"
    assert receipt.events[0].outcome == expected
    audit = (await store.list_audit(kind="risc", limit=1))[0]
    assert audit.outcome == expected
    assert audit.detail["event"] == event
    assert audit.detail["jti"] == receipt.jti
    if event == "verification":
        assert audit.detail["state"] == "setup-check-42"


async def test_every_event_is_audited_with_its_jti_and_never_a_token(
    store: GrantStore, receiver: Keeper, emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="grantkeeper")
    jtis = []
    for token in (
        _set(emulator, "token-revoked", token=ALICE_RT, token_identifier_alg="prefix"),
        _set(emulator, "token-revoked", token=BOB_RT),
        _set(emulator, "sessions-revoked", sub=ALICE),
    ):
        jtis.append((await receiver.receive_security_event(token)).jti)
    audit = await store.list_audit(kind="risc")
    assert sorted(e.detail["jti"] for e in audit) == sorted(jtis)
    dump = json.dumps([e.detail for e in await store.list_audit(limit=1000)]) + caplog.text
    for secret in (
        ALICE_RT,
        BOB_RT,
        ALICE_RT[:16],
        token_identifier(BOB_RT, "hash_base64_sha512_sha512"),
    ):
        assert secret not in dump


# -- forged, misaddressed, replayed --------------------------------------------------------------


def _claims(emulator: Any, **override: Any) -> dict[str, Any]:
    state = _state(emulator)
    _, claims = build_set(
        state,
        SendRequest(event_type="tokens-revoked", client_id=SERVER, sub=ALICE),
        ORIGIN,
        token=None,
    )
    claims.update(override)
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join(
        [part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)]
    )


def _forgeries(emulator: Any, other_key: RSAKey) -> dict[str, tuple[str, str]]:
    state = _state(emulator)
    genuine = state.keys.signing_key()
    claims = _claims(emulator)
    public_pem = genuine.jwk.as_pem(private=False)
    return {
        "other key, genuine kid": (
            jwt.encode({"alg": "RS256", "kid": genuine.kid}, claims, other_key),
            "invalid_key",
        ),
        "unknown kid": (
            jwt.encode({"alg": "RS256", "kid": "f" * 40}, claims, other_key),
            "invalid_key",
        ),
        "alg none": (_unsigned({"alg": "none", "kid": genuine.kid}, claims), "invalid_request"),
        "HS256 keyed with the public key": (
            _hs256(claims, genuine.kid, public_pem),
            "invalid_request",
        ),
        "wrong audience": (
            state.keys.sign(_claims(emulator, aud="someone-else.apps.googleusercontent.com")),
            "invalid_audience",
        ),
        "issuer without the trailing slash": (
            state.keys.sign(_claims(emulator, iss=ORIGIN)),
            "invalid_issuer",
        ),
        "issuer of another provider": (
            state.keys.sign(_claims(emulator, iss="https://accounts.google.com/")),
            "invalid_issuer",
        ),
        "no jti": (
            state.keys.sign({k: v for k, v in claims.items() if k != "jti"}),
            "invalid_request",
        ),
        "no events": (
            state.keys.sign({k: v for k, v in claims.items() if k != "events"}),
            "invalid_request",
        ),
        "payload edited after signing": (_tamper(state.keys.sign(claims)), "invalid_key"),
        "not a JWT": ("not-a-token", "invalid_request"),
    }


def _hs256(claims: dict[str, Any], kid: str, secret: bytes) -> str:
    # Built by hand: joserfc (rightly) refuses to use a PEM as an HMAC key.
    head = _unsigned({"alg": "HS256", "kid": kid}, claims).rsplit(".", 1)[0]
    signature = hmac.new(secret, head.encode(), hashlib.sha256).digest()
    return head + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["events"] = {
        "https://schemas.openid.net/secevent/oauth/event-type/tokens-revoked": {
            "subject": {"subject_type": "iss-sub", "iss": ORIGIN + "/", "sub": BOB}
        }
    }
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


async def test_forged_or_misaddressed_events_are_refused_and_change_nothing(
    store: GrantStore, receiver: Keeper, emulator: Any, other_key: RSAKey
) -> None:
    before = await _snapshot(store)
    for name, (token, err) in _forgeries(emulator, other_key).items():
        with pytest.raises(InvalidSecurityEvent) as caught:
            await receiver.receive_security_event(token)
        assert caught.value.extra["err"] == err, name
        assert caught.value.status == 400
    assert await _snapshot(store) == before
    assert await store.list_audit(kind="risc") == []


async def test_an_event_whose_processing_died_is_applied_on_redelivery(
    store: GrantStore, receiver: Keeper, emulator: Any, receiver_clock: ManualClock
) -> None:
    jti = secrets.token_hex(16)
    token = _set(emulator, "account-disabled", sub=ALICE, reason="hijacking", jti=jti)
    issuer = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["iss"]
    # A delivery claimed the event, then its process died before applying it.
    assert await store.claim_security_event(issuer=issuer, jti=jti, at=receiver_clock.now())
    soon = await receiver.receive_security_event(token)
    assert soon.duplicate  # maybe still in progress elsewhere
    assert (await _grant(store, ALICE)).status == GrantStatus.ACTIVE
    receiver_clock.advance(31)
    later = await receiver.receive_security_event(token)
    assert not later.duplicate
    assert (await _grant(store, ALICE)).status == GrantStatus.DISABLED
    # Once applied, it is a plain duplicate however late it comes back.
    receiver_clock.advance(3600)
    assert (await receiver.receive_security_event(token)).duplicate


async def test_a_replayed_event_changes_nothing(
    store: GrantStore, receiver: Keeper, emulator: Any
) -> None:
    jti = secrets.token_hex(16)
    first = await receiver.receive_security_event(
        _set(emulator, "account-disabled", sub=ALICE, reason="hijacking", jti=jti)
    )
    assert not first.duplicate
    await store.set_status(ALICE, SERVER, GrantStatus.ACTIVE, "support re-enabled")
    before = await _snapshot(store)
    again = await receiver.receive_security_event(
        _set(emulator, "account-disabled", sub=ALICE, reason="hijacking", jti=jti)
    )
    assert again.duplicate
    assert again.events == []
    # Same jti, different content: still a redelivery as far as the receiver is concerned.
    other = await receiver.receive_security_event(
        _set(emulator, "tokens-revoked", sub=BOB, jti=jti)
    )
    assert other.duplicate
    assert await _snapshot(store) == before
    outcomes = [e.outcome for e in await store.list_audit(kind="risc")]
    assert outcomes.count("duplicate") == 2


async def test_a_key_published_after_the_first_fetch_is_found(
    store: GrantStore, receiver: Keeper, emulator: Any, receiver_clock: ManualClock
) -> None:
    await receiver.receive_security_event(_set(emulator, "verification", state="warm the cache"))
    _state(emulator).keys.rotate(overlap_seconds=3600)
    rotated = _set(emulator, "tokens-revoked", sub=BOB)
    # Right after a fetch an unknown kid is refused (re-fetches are rate-limited) ...
    with pytest.raises(InvalidSecurityEvent):
        await receiver.receive_security_event(rotated)
    # ... and once the interval has passed, one re-fetch finds the new key.
    receiver_clock.advance(31)
    await receiver.receive_security_event(rotated)
    assert (await _grant(store, BOB)).status == GrantStatus.REVOKED


async def test_every_security_event_is_announced_on_the_bus_and_counted_from_it(
    receiver: Keeper, emulator: Any, other_key: RSAKey
) -> None:
    from grantkeeper import metrics
    from grantkeeper.keeper import GrantEvent

    def counted(event: str, outcome: str) -> float:
        labels = {"event": event, "outcome": outcome}
        return metrics.REGISTRY.get_sample_value("grantkeeper_risc_events_total", labels) or 0.0

    heard: list[GrantEvent] = []
    receiver.add_listener(heard.append)
    before = {k: counted(*k) for k in [("account-disabled", "disabled"), ("unknown", "rejected")]}
    before["dup"] = counted("account-disabled", "duplicate")
    token = _set(emulator, "account-disabled", sub=ALICE, reason="hijacking")
    await receiver.receive_security_event(token)
    await receiver.receive_security_event(token)
    forged, _ = next(iter(_forgeries(emulator, other_key).values()))
    with pytest.raises(InvalidSecurityEvent):
        await receiver.receive_security_event(forged)
    received = [
        (e.sub, e.detail["event"], e.detail["outcome"])
        for e in heard
        if e.kind == "security_event_received"
    ]
    assert received == [
        (ALICE, "account-disabled", "disabled"),
        (ALICE, "account-disabled", "duplicate"),
        ("", "unknown", "rejected"),
    ]
    assert counted("account-disabled", "disabled") == before[("account-disabled", "disabled")] + 1
    assert counted("account-disabled", "duplicate") == before["dup"] + 1
    assert counted("unknown", "rejected") == before[("unknown", "rejected")] + 1


async def test_an_event_the_database_failed_midway_is_applied_on_redelivery_at_once(
    store: GrantStore, receiver: Keeper, emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from grantkeeper.errors import StoreUnavailable

    token = _set(emulator, "tokens-revoked", sub=ALICE)
    real_erase = store.erase_tokens

    async def database_gone(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("The database at sqlite:///x is unavailable (OperationalError).")

    monkeypatch.setattr(store, "erase_tokens", database_gone)
    with pytest.raises(StoreUnavailable):  # answered 503: Google delivers it again
        await receiver.receive_security_event(token)
    assert (await _grant(store, ALICE)).status == GrantStatus.ACTIVE
    monkeypatch.setattr(store, "erase_tokens", real_erase)
    # The claim was withdrawn: the redelivery is processed now, not taken for a duplicate
    # still in progress elsewhere (which would leave the grant alive for the stale-claim time).
    again = await receiver.receive_security_event(token)
    assert not again.duplicate
    assert (await _grant(store, ALICE)).status == GrantStatus.REVOKED
