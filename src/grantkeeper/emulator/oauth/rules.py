"""Google's rules as pure functions: scopes, token liveness, PKCE, code shape. No I/O, no state."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from grantkeeper.emulator.config import EmulatorSettings
from grantkeeper.emulator.oauth.models import RefreshTokenRecord

EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
OPENID = "openid"
_SHORT_SCOPES = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}
BASIC_SCOPES = frozenset({OPENID, EMAIL_SCOPE, PROFILE_SCOPE})
"""Name, email and profile: the scopes exempt from the 7-day testing-mode expiry."""

SCOPE_PREFIX = "https://www.googleapis.com/auth/"
RETIRED_SCOPES = frozenset(
    SCOPE_PREFIX + name
    for name in ("photoslibrary", "photoslibrary.readonly", "photoslibrary.sharing")
)
"""Photos Library scopes Google removed on 31 March 2025; asking for them is refused."""
_OTHER_URL_SCOPES = ("https://mail.google.com/", "https://www.google.com/m8/feeds")
_SCOPE_NAME = re.compile(r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$")


def is_valid_scope(scope: str) -> bool:
    """A scope Google's authorization page accepts: ``openid``/``email``/``profile``, a scope
    URL under ``https://www.googleapis.com/auth/`` that was not retired, or one of the older
    URL scopes. A short form such as ``drive.appdata`` is not one."""
    if scope in _SHORT_SCOPES or scope == OPENID or scope in _OTHER_URL_SCOPES:
        return True
    name = scope.removeprefix(SCOPE_PREFIX)
    return name != scope and bool(_SCOPE_NAME.match(name)) and scope not in RETIRED_SCOPES


def invalid_scope_message(scopes: Iterable[str]) -> str | None:
    """Google's refusal of a request with unknown, short-form or retired scopes (``None`` when
    every scope is valid): ``Some requested scopes were invalid. {valid=[…], invalid=[…]}``."""
    requested = list(dict.fromkeys(scopes))
    invalid = [s for s in requested if not is_valid_scope(s)]
    if not invalid:
        return None
    valid = [_SHORT_SCOPES.get(s, s) for s in requested if is_valid_scope(s)]
    return (
        "Some requested scopes were invalid. "
        f"{{valid=[{', '.join(valid)}], invalid=[{', '.join(invalid)}]}}"
    )


_CODE_SHAPE = re.compile(r"^4/[0-9A-Za-z_\-]{10,254}$")
_PKCE_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def normalize_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Google's view of requested scopes: ``email``/``profile`` become their URLs, and ``openid``
    is added whenever an identity scope is asked for (google-protocol.md §3.3)."""
    result = {_SHORT_SCOPES.get(s, s) for s in scopes if s}
    if result & BASIC_SCOPES:
        result.add(OPENID)
    return frozenset(result)


def split_scope(value: str | None) -> list[str]:
    """A scope parameter is space-separated; some clients send commas or ``+``."""
    return [s for s in re.split(r"[\s,+]+", value or "") if s]


def scope_string(scopes: Iterable[str]) -> str:
    # Google's order is arbitrary; a stable order makes responses easy to compare.
    return " ".join(sorted(scopes, key=lambda s: (s == OPENID, s)))


def is_gmail_scope(scope: str) -> bool:
    return scope.startswith("https://mail.google.com/") or scope.startswith(
        "https://www.googleapis.com/auth/gmail."
    )


def looks_like_code(code: str) -> bool:
    """``4/0A...`` with URL-safe characters; a URL-encoded ``4%2F...`` is malformed."""
    return bool(_CODE_SHAPE.match(code))


def refresh_token_problem(
    record: RefreshTokenRecord, now: datetime, settings: EmulatorSettings
) -> str | None:
    """Why a refresh token no longer works, or ``None`` when it does."""
    if record.revoked:
        return "revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return "expired"
    if now - record.last_used_at >= timedelta(seconds=settings.refresh_idle_expiry):
        return "idle"
    return None


def refresh_token_end(
    now: datetime,
    scopes: frozenset[str],
    settings: EmulatorSettings,
    time_limited_seconds: int | None,
) -> tuple[datetime | None, bool]:
    """(hard expiry, whether it is a user-chosen time-limited grant) of a new refresh token."""
    ends: list[datetime] = []
    if time_limited_seconds is not None:
        ends.append(now + timedelta(seconds=time_limited_seconds))
    if settings.testing_mode and not scopes <= BASIC_SCOPES:
        ends.append(now + timedelta(seconds=settings.testing_refresh_lifetime))
    return (min(ends) if ends else None), time_limited_seconds is not None


def pkce_problem(challenge: str | None, method: str | None, verifier: str | None) -> str | None:
    """Google's ``error_description`` for a PKCE failure, or ``None`` when it passes."""
    if challenge is None:
        return None
    if not verifier:
        return "Missing code verifier."
    if not _PKCE_VERIFIER.match(verifier):
        return "Invalid code verifier."
    if (method or "plain") == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return None if secrets.compare_digest(computed, challenge) else "Invalid code verifier."


def at_hash(access_token: str) -> str:
    """OIDC ``at_hash``: base64url of the left half of SHA-256 of the access token."""
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def _random(length: int) -> str:
    return secrets.token_urlsafe(length)[:length]


def new_code() -> str:
    return "4/0A" + _random(70)


def new_access_token() -> str:
    return "ya29.a0A" + _random(160)


def new_refresh_token() -> str:
    return "1//0" + _random(99)


def new_sub() -> str:
    """21 digits starting with 1, like Google's subject identifiers."""
    return "1" + "".join(secrets.choice("0123456789") for _ in range(20))


def new_client_id(project_number: str) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return f"{project_number}-{''.join(secrets.choice(alphabet) for _ in range(32))}" + (
        ".apps.googleusercontent.com"
    )


def new_client_secret() -> str:
    return "GOCSPX-" + _random(28)
