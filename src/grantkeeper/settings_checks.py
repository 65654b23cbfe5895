"""Checks that make a bad configuration fail at once, in one line, naming the variable.

Pure functions over plain values, used by :class:`grantkeeper.settings.Settings`:

- :func:`unknown_variables` — a misspelt ``GRANTKEEPER_DATABSE_URL`` must not be ignored
  (the keeper would quietly use SQLite in the data directory); it is named with the nearest
  real name (``difflib``).
- :func:`one_line` — pydantic's multi-line ``ValidationError`` as one sentence per field,
  joined on one line; values of secret fields are never echoed.
- the field rules (redirect URIs, issuer, database URL and schema, the key ring beyond SQLite).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

PREFIX = "GRANTKEEPER_"
#: The variable that names an explicit ``.env`` file (not a setting itself).
ENV_FILE_VARIABLE = "GRANTKEEPER_ENV_FILE"
#: Names reserved for grantkeeper's own test suite (``GRANTKEEPER_TEST_POSTGRES_URL`` …).
RESERVED_PREFIX = "GRANTKEEPER_TEST_"

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def variable(field: str) -> str:
    return PREFIX + field.upper()


def unknown_variables(found: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """One sentence per ``GRANTKEEPER_*`` name in ``found`` (name -> where it was found) that
    is no setting, with a suggestion when one is close."""
    known = {variable(name) for name in fields}
    known.add(ENV_FILE_VARIABLE)
    problems = []
    for name, source in sorted(found.items()):
        upper = name.upper()
        if not upper.startswith(PREFIX) or upper in known or upper.startswith(RESERVED_PREFIX):
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} (in {source}) is not a grantkeeper setting{hint}")
    return problems


def one_line(errors: Iterable[Mapping[str, Any]], secret_fields: frozenset[str]) -> str:
    """pydantic's error list as ``GRANTKEEPER_X: why (got 'v')``, joined by ``; ``."""
    parts = []
    for error in errors:
        location = error.get("loc") or ()
        field = str(location[0]) if location else ""
        why = str(error.get("msg", "invalid"))
        why = why.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if not field:  # a rule across fields: its sentence names the variables itself
            parts.append(why)
            continue
        name = variable(field)
        shown = ""
        if field not in secret_fields and error.get("type") != "value_error":
            value = error.get("input")
            if isinstance(value, str | int | float) and len(str(value)) <= 80:
                shown = f" (got {value!r})"
        parts.append(f"{name}: {why[:1].lower()}{why[1:]}{shown}")
    return "; ".join(parts)


def is_loopback(host: str | None) -> bool:
    """Loopback, ``localhost``, or an RFC 6761 special-use name that never leaves the machine or
    the test (``*.localhost``, ``*.test``: an in-process emulator's made-up host)."""
    if not host:
        return False
    name = host.lower().rstrip(".")
    if name in _LOOPBACK_NAMES or name.endswith((".localhost", ".test")):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: str, *, what: str) -> str:
    """An absolute https URL; http only on a loopback host (the emulator, a local test)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"{what} must be an absolute https:// URL, not {value!r}")
    try:
        parts.port  # noqa: B018  # raises on a port that is not a number in 0-65535
    except ValueError:
        raise ValueError(f"{what} has an invalid port (a number up to 65535): {value!r}") from None
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            f"{what} must use https:// (plain http:// only for localhost), not {value!r}"
        )
    return value


def check_issuer(value: str) -> str:
    if value.rstrip("/").endswith("/.well-known/openid-configuration"):
        raise ValueError(
            "give the issuer itself (e.g. https://accounts.google.com), without "
            "/.well-known/openid-configuration"
        )
    return check_url(value, what="the issuer")


def check_mobile_redirect_uri(value: str) -> str:
    if value not in ("", "postmessage"):
        raise ValueError(
            "iOS and Android server auth codes are redeemed with redirect_uri '' (the default) "
            "or 'postmessage'"
        )
    return value


def check_web_redirect_uri(value: str) -> str:
    if value == "postmessage":
        return value
    return check_url(value, what="the web redirect URI ('postmessage' or the page's URL)")


def check_database_url(value: str | None) -> str | None:
    if value is None:
        return None
    scheme = value.split(":", 1)[0].split("+", 1)[0].lower() if ":" in value else ""
    if scheme not in ("sqlite", "postgresql", "postgres"):
        # The URL may hold a password: name only its scheme.
        raise ValueError(
            "expected sqlite:///path or postgresql://user@host/db"
            + (f", not a {scheme!r} URL" if scheme else "")
        )
    return value


def check_schema(value: str | None) -> str | None:
    if value is not None and not _SCHEMA_NAME.fullmatch(value):
        raise ValueError("a PostgreSQL schema name is lower-case letters, digits and _ (max 63)")
    return value


def key_ring_problem(database_url: str | None, encryption_keys: list[str]) -> str | None:
    """Beyond the embedded SQLite every instance must share one key ring: a key file per host
    would write tokens the other instances cannot read."""
    if encryption_keys or database_url is None or database_url.lower().startswith("sqlite"):
        return None
    return (
        "GRANTKEEPER_ENCRYPTION_KEYS must be set when the store is not the embedded SQLite "
        "(every instance must share one key ring); make a key with 'grantkeeper keys generate'"
    )
