"""Pure decisions of the grant life cycle: freshness, scope checks, why a grant died."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from grantkeeper.untrusted_json import is_unicode

#: Google drops refresh tokens unused for six months (google-protocol.md §3.5).
IDLE_LIMIT = timedelta(days=182)

#: A pending revocation whose user also asked to be forgotten: the sweep forgets the user once
#: the provider has confirmed the revocation.
FORGET_AFTER_REVOCATION = "disconnect_forget"

#: How long a disconnect waits for the provider before recording the revocation as pending.
DISCONNECT_REVOKE_TIMEOUT = 5.0

PLATFORMS = frozenset({"ios", "android", "web"})

#: Google: "Authorization codes ... at most 256 bytes" (google-protocol.md §3.2).
MAX_CODE_BYTES = 256


#: What Google's token endpoint says in practice (google-protocol.md §3.3); assumed when an
#: answer carries no ``expires_in``.
DEFAULT_TOKEN_LIFETIME = timedelta(seconds=3599)


def access_token_expiry(expires_at: datetime | None, now: datetime) -> datetime:
    """When a just-issued access token expires: as the provider said, else Google's usual."""
    return expires_at or now + DEFAULT_TOKEN_LIFETIME


def is_fresh(expires_at: datetime | None, now: datetime, margin: timedelta) -> bool:
    """True if a token expiring at ``expires_at`` stays valid for at least ``margin``."""
    return expires_at is not None and expires_at - now >= margin


def missing_scopes(granted: Iterable[str], wanted: Iterable[str]) -> list[str]:
    have = set(granted)
    return sorted({scope for scope in wanted if scope not in have})


def revocation_reason(
    *,
    now: datetime,
    refresh_token_expires_at: datetime | None,
    last_used: datetime | None,
    error_subtype: str | None = None,
) -> str:
    """What a refresh's ``invalid_grant`` most likely means, from what we know of the grant."""
    if error_subtype in ("invalid_rapt", "rapt_required"):
        return "reauthentication_required"
    if refresh_token_expires_at is not None and now >= refresh_token_expires_at:
        return "time_limited_access_expired"
    if last_used is not None and now - last_used >= IDLE_LIMIT:
        return "idle_expired"
    return "revoked"


def check_code(code: str) -> str | None:
    """Why a server auth code is unusable before we ever send it, or None if it looks usable."""
    if not code.strip():
        return "The server auth code is empty."
    if not is_unicode(code):
        return "The server auth code is not valid Unicode text (it holds a lone surrogate)."
    if len(code.encode("utf-8")) > MAX_CODE_BYTES:
        return f"A server auth code is at most {MAX_CODE_BYTES} bytes."
    if any(ch.isspace() or ord(ch) < 0x21 for ch in code):
        return "The server auth code contains whitespace or control characters."
    return None
