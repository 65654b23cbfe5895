"""Google's rules as pure functions, with published test vectors where there are some."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from grantkeeper.emulator.config import EmulatorSettings
from grantkeeper.emulator.oauth.models import RefreshTokenRecord
from grantkeeper.emulator.oauth.rules import (
    EMAIL_SCOPE,
    PROFILE_SCOPE,
    at_hash,
    looks_like_code,
    normalize_scopes,
    pkce_problem,
    refresh_token_end,
    refresh_token_problem,
    split_scope,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DRIVE = "https://www.googleapis.com/auth/drive.appdata"


def test_scopes_are_normalised_as_google_does() -> None:
    assert normalize_scopes(["email", "profile"]) == {EMAIL_SCOPE, PROFILE_SCOPE, "openid"}
    assert normalize_scopes([DRIVE]) == {DRIVE}  # no identity scope, no openid
    assert split_scope("openid  email,profile+x") == ["openid", "email", "profile", "x"]


def test_code_shape() -> None:
    assert looks_like_code("4/0AVMBsJi4bQabcdefghij")
    assert not looks_like_code("4%2F0AVMBsJi4bQabcdefghij")
    assert not looks_like_code("ya29.something-long-enough")


def test_pkce_rfc7636_appendix_b_vector() -> None:
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_problem(challenge, "S256", verifier) is None
    assert pkce_problem(challenge, "S256", verifier[:-1] + "l") == "Invalid code verifier."
    assert pkce_problem(challenge, "S256", None) == "Missing code verifier."
    assert pkce_problem(verifier, "plain", verifier) is None
    assert pkce_problem(None, None, None) is None
    assert pkce_problem("short", "plain", "short") == "Invalid code verifier."  # < 43 chars


def test_at_hash_openid_connect_core_example() -> None:
    # OpenID Connect Core 1.0, appendix A.3.
    assert at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y") == "77QmUPtjPfzWtF2AnpK9RQ"


def _record(**kw: object) -> RefreshTokenRecord:
    values: dict[str, object] = {
        "id": "r1",
        "sub": "1" * 21,
        "client_id": "c",
        "azp": "c",
        "scopes": frozenset({DRIVE}),
        "issued_at": NOW,
        "last_used_at": NOW,
        "expires_at": None,
    }
    return RefreshTokenRecord(**(values | kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "at", "problem"),
    [
        (_record(), NOW + timedelta(days=179), None),
        (_record(), NOW + timedelta(days=180), "idle"),
        (_record(revoked=True), NOW, "revoked"),
        (_record(expires_at=NOW + timedelta(hours=1)), NOW + timedelta(minutes=59), None),
        (_record(expires_at=NOW + timedelta(hours=1)), NOW + timedelta(hours=1), "expired"),
    ],
)
def test_refresh_token_liveness(record: RefreshTokenRecord, at: datetime, problem: str) -> None:
    assert refresh_token_problem(record, at, EmulatorSettings()) == problem


def test_refresh_token_end() -> None:
    testing = EmulatorSettings(testing_mode=True)
    basic = frozenset({"openid", EMAIL_SCOPE, PROFILE_SCOPE})
    assert refresh_token_end(NOW, basic, testing, None) == (None, False)
    assert refresh_token_end(NOW, basic | {DRIVE}, testing, None) == (
        NOW + timedelta(days=7),
        False,
    )
    assert refresh_token_end(NOW, basic | {DRIVE}, testing, 3600) == (
        NOW + timedelta(hours=1),
        True,
    )
    assert refresh_token_end(NOW, basic | {DRIVE}, EmulatorSettings(), None) == (None, False)
