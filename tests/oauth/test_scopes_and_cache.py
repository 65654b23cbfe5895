"""Scope normalisation and cache lifetimes from Cache-Control."""

from __future__ import annotations

import pytest

from grantkeeper.oauth.http_cache import cache_lifetime
from grantkeeper.oauth.scopes import EMAIL, PROFILE, normalize_scopes, scope_string

DRIVE = "https://www.googleapis.com/auth/drive.appdata"


def test_short_openid_scopes_become_googles_urls() -> None:
    assert normalize_scopes("openid email profile " + DRIVE) == {"openid", EMAIL, PROFILE, DRIVE}
    assert normalize_scopes(["email", EMAIL, " "]) == {EMAIL}


def test_scope_string_is_sorted_and_normalised() -> None:
    assert scope_string({"profile", "openid"}) == f"{PROFILE} openid"


BOUNDS = {"floor": 60.0, "ceiling": 86400.0, "default": 3600.0}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"cache-control": "public, max-age=21155, must-revalidate, no-transform"}, 21155.0),
        ({"cache-control": "public, max-age=21155", "age": "155"}, 21000.0),
        ({"Cache-Control": "max-age=10"}, 60.0),
        ({"cache-control": "max-age=999999"}, 86400.0),
        ({"cache-control": "no-store"}, 60.0),
        ({"cache-control": "no-cache, max-age=600"}, 60.0),
        ({"cache-control": "private"}, 3600.0),
        ({}, 3600.0),
        ({"cache-control": "s-max-age=5, max-age=300"}, 300.0),
    ],
)
def test_cache_lifetime(headers: dict[str, str], expected: float) -> None:
    import httpx

    assert cache_lifetime(httpx.Headers(headers), **BOUNDS) == expected
