"""Scope strings as Google returns them.

Google rewrites the short OpenID scopes in the ``scope`` it returns: ``email`` becomes
``https://www.googleapis.com/auth/userinfo.email`` and ``profile`` becomes
``https://www.googleapis.com/auth/userinfo.profile`` (google-protocol.md §3.3). Normalising both
what we ask for and what we get lets the keeper compare scope sets without false mismatches.
"""

from __future__ import annotations

from collections.abc import Iterable

OPENID = "openid"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
PROFILE = "https://www.googleapis.com/auth/userinfo.profile"

_ALIASES = {"email": EMAIL, "profile": PROFILE}


def normalize_scope(scope: str) -> str:
    """One scope in Google's returned form (``email`` → the userinfo.email URL, …)."""
    scope = scope.strip()
    return _ALIASES.get(scope, scope)


def normalize_scopes(scopes: Iterable[str] | str) -> frozenset[str]:
    """A set of normalised scopes from an iterable or a space-separated string."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    return frozenset(normalize_scope(s) for s in scopes if s.strip())


def scope_string(scopes: Iterable[str]) -> str:
    """Space-separated, sorted (stable for logs, comparisons and request bodies)."""
    return " ".join(sorted(normalize_scopes(scopes)))
