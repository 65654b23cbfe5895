"""Token-endpoint requests and answers as plain data (Google's bodies, google-protocol.md §3)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from grantkeeper.errors import GrantRevoked, InvalidCode, ProviderError, ProviderUnavailable
from grantkeeper.oauth.scopes import EMAIL, PROFILE
from grantkeeper.oauth.token_endpoint import (
    RefreshTokenRejected,
    authorization_code_form,
    is_transient,
    parse_error_body,
    parse_token_response,
    redirect_uri_for,
    refresh_token_form,
    revoke_error,
)

from .conftest import NOW

ACCESS = "ya29.a0AfH6SMB-access"
REFRESH = "1//0gRefresh-token"


def body(data: Any) -> bytes:
    return json.dumps(data).encode()


def ok(**fields: Any) -> bytes:
    data = {"access_token": ACCESS, "expires_in": 3599, "token_type": "Bearer", **fields}
    return body({k: v for k, v in data.items() if v is not None})


def test_redirect_uri_is_chosen_by_platform() -> None:
    assert redirect_uri_for("ios") == ""
    assert redirect_uri_for("android") == ""
    assert redirect_uri_for("android", mobile_redirect_uri="postmessage") == "postmessage"
    assert redirect_uri_for("web") == "postmessage"
    assert redirect_uri_for("web", mobile_redirect_uri="") == "postmessage"
    with pytest.raises(ValueError, match="platform"):
        redirect_uri_for("desktop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mobile_redirect_uri"):
        redirect_uri_for("ios", mobile_redirect_uri="https://evil.test/cb")


def test_authorization_code_form_is_client_secret_post() -> None:
    form = authorization_code_form("4/0Aabc", client_id="cid", client_secret="s", redirect_uri="")
    assert form == {
        "grant_type": "authorization_code",
        "code": "4/0Aabc",
        "client_id": "cid",
        "client_secret": "s",
        "redirect_uri": "",
    }
    with_pkce = authorization_code_form(
        "c", client_id="i", client_secret="s", redirect_uri="postmessage", code_verifier="v"
    )
    assert with_pkce["code_verifier"] == "v"


def test_refresh_form_adds_scope_only_when_narrowing() -> None:
    form = refresh_token_form(REFRESH, client_id="cid", client_secret="s")
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": REFRESH,
        "client_id": "cid",
        "client_secret": "s",
    }
    narrowed = refresh_token_form(REFRESH, client_id="c", client_secret="s", scopes={"email"})
    assert narrowed["scope"] == EMAIL


def test_success_of_a_code_exchange() -> None:
    answer = ok(
        refresh_token=REFRESH,
        id_token="eyJ.x.y",
        scope=f"{EMAIL} openid profile",
        refresh_token_expires_in=15551999,
    )
    tokens = parse_token_response(200, answer, grant_type="authorization_code", now=NOW)
    assert tokens.access_token == ACCESS
    assert tokens.refresh_token == REFRESH
    assert tokens.id_token == "eyJ.x.y"
    assert tokens.scopes == frozenset({EMAIL, PROFILE, "openid"})
    assert tokens.expires_at == NOW + timedelta(seconds=3599)
    assert tokens.refresh_token_expires_at == NOW + timedelta(seconds=15551999)
    assert ACCESS not in repr(tokens)
    assert REFRESH not in repr(tokens)


def test_success_with_string_expiry_and_nothing_optional() -> None:
    tokens = parse_token_response(
        200, ok(expires_in="3600", token_type="bearer"), grant_type="refresh_token", now=NOW
    )
    assert tokens.expires_in == 3600
    assert tokens.refresh_token is None
    assert tokens.scopes is None
    assert tokens.id_token is None
    assert tokens.refresh_token_expires_at is None
    no_expiry = parse_token_response(200, ok(expires_in=None), grant_type="refresh_token", now=NOW)
    assert no_expiry.expires_at is None


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"<html>oops</html>", "not JSON"),
        (body([1]), "not JSON"),
        (body({"expires_in": 3599}), "no access_token"),
        (ok(token_type="MAC"), "not a Bearer"),
        (ok(expires_in="soon"), "expires_in is not a number"),
        (ok(expires_in=True), "expires_in is not a number"),
        (ok(expires_in=-5), "non-negative"),
        (ok(scope=["openid"]), "scope is not a string"),
        (ok(refresh_token=12), "refresh_token is not a string"),
    ],
)
def test_malformed_success_answers(answer: bytes, message: str) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        parse_token_response(200, answer, grant_type="authorization_code", now=NOW)
    assert ACCESS not in str(caught.value)


@pytest.mark.parametrize(
    "description",
    ["Bad Request", "Malformed auth code.", "Code was already redeemed.", "Missing code verifier."],
)
def test_invalid_grant_on_a_code_exchange_is_invalid_code(description: str) -> None:
    answer = body({"error": "invalid_grant", "error_description": description})
    with pytest.raises(InvalidCode) as caught:
        parse_token_response(400, answer, grant_type="authorization_code", now=NOW)
    assert description in str(caught.value)
    assert caught.value.status == 400


def test_invalid_grant_on_a_refresh_is_refresh_token_rejected() -> None:
    answer = body(
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    )
    with pytest.raises(RefreshTokenRejected) as caught:
        parse_token_response(400, answer, grant_type="refresh_token", now=NOW)
    error = caught.value
    assert isinstance(error, GrantRevoked)
    assert error.reason == "revoked"
    assert error.error_description == "Token has been expired or revoked."
    assert error.error_subtype is None
    assert error.retryable is False


def test_reauth_subtype_is_kept() -> None:
    answer = body(
        {
            "error": "invalid_grant",
            "error_description": "reauth related error",
            "error_subtype": "invalid_rapt",
        }
    )
    with pytest.raises(RefreshTokenRejected) as caught:
        parse_token_response(400, answer, grant_type="refresh_token", now=NOW)
    assert caught.value.reason == "reauth_required"
    assert caught.value.error_subtype == "invalid_rapt"


@pytest.mark.parametrize(
    ("status", "answer", "hint"),
    [
        (
            400,
            {"error": "redirect_uri_mismatch", "error_description": "Bad Request"},
            "redirect_uri ''",
        ),
        (401, {"error": "invalid_client", "error_description": "Unauthorized"}, "client secret"),
        (
            401,
            {"error": "invalid_client", "error_description": "The OAuth client was not found."},
            "GRANTKEEPER_CLIENT_SECRETS_FILE",
        ),
        (
            401,
            {"error": "unauthorized_client", "error_description": "Unauthorized"},
            "may not redeem",
        ),
        (
            400,
            {"error": "invalid_request", "error_description": "client_secret is missing."},
            "missing",
        ),
        (
            400,
            {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: "},
            "grant",
        ),
    ],
)
def test_configuration_errors_say_which(status: int, answer: dict[str, str], hint: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_token_response(
            status,
            body(answer),
            grant_type="authorization_code",
            now=NOW,
            platform="ios",
            redirect_uri="",
        )
    error = caught.value
    assert type(error) is ProviderError
    assert error.status == 502
    assert answer["error"] in str(error)
    assert hint in str(error)
    assert error.extra["provider_error"] == answer["error"]


def test_unauthorized_client_on_refresh_explains_the_client_change() -> None:
    answer = body({"error": "unauthorized_client", "error_description": "Unauthorized"})
    with pytest.raises(ProviderError, match="issued to another OAuth client"):
        parse_token_response(401, answer, grant_type="refresh_token", now=NOW)


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (500, b"<html>Internal</html>"),
        (503, b""),
        (429, body({"error": "rate_limit_exceeded"})),
        (408, b""),
        (400, body({"error": "temporarily_unavailable"})),
        (400, body({"error": "internal_failure", "error_description": "x"})),
    ],
)
def test_transient_answers_are_retryable_unavailability(status: int, answer: bytes) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        parse_token_response(status, answer, grant_type="refresh_token", now=NOW)
    assert caught.value.retryable is True
    assert caught.value.code == "provider_unavailable"


def test_non_json_client_error_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="HTTP 404 without an OAuth error body"):
        parse_token_response(404, b"<html>Not Found</html>", grant_type="refresh_token", now=NOW)


def test_error_body_parsing_is_defensive() -> None:
    assert parse_error_body(b"not json") is None
    assert parse_error_body(body({"error": 5})) is None
    long = parse_error_body(body({"error": "x", "error_description": "a\nb" + "c" * 500}))
    assert long is not None
    assert long.description is not None
    assert "\n" not in long.description
    assert len(long.description) == 200
    assert is_transient(503)
    assert not is_transient(400, parse_error_body(body({"error": "invalid_grant"})))


def test_revocation_outcomes() -> None:
    assert revoke_error(200, b"") is None
    assert revoke_error(200, b"{}") is None
    # Already revoked or unknown: revocation is idempotent.
    assert (
        revoke_error(
            400, body({"error": "invalid_token", "error_description": "Token expired or revoked"})
        )
        is None
    )
    unavailable = revoke_error(503, b"")
    assert isinstance(unavailable, ProviderUnavailable)
    refused = revoke_error(400, body({"error": "invalid_request"}))
    assert type(refused) is ProviderError
    assert type(revoke_error(404, b"<html>")) is ProviderError
