"""grantkeeper errors that are also google-auth's ``RefreshError``, for credentials' refresh.

Imports only google-auth and :mod:`grantkeeper.errors`, so the keeper's credentials and the
light :mod:`grantkeeper.client` share it.
"""

from __future__ import annotations

from typing import Any, cast

from google.auth import exceptions as google_exceptions

from grantkeeper.errors import GrantkeeperError

#: grantkeeper error class -> its twin that is also a google-auth RefreshError.
_TWINS: dict[type[GrantkeeperError], type[Any]] = {}


def as_refresh_error(error: GrantkeeperError) -> GrantkeeperError:
    """The same error as an instance of a class that is both its own class and google-auth's
    ``RefreshError``.

    google-auth and googleapiclient expect ``refresh`` to raise ``RefreshError`` (and pass it
    up unchanged); the job wants the typed error (``GrantRevoked``, ``MissingScopes`` …). The
    twin satisfies both ``except`` clauses and keeps ``code``, ``reason``, ``advice`` and
    ``retryable``.
    """
    kind = type(error)
    twin_class = _TWINS.get(kind)
    if twin_class is None:
        twin_class = type(
            kind.__name__,
            (kind, google_exceptions.RefreshError),
            {"__module__": kind.__module__, "__qualname__": kind.__qualname__},
        )
        _TWINS[kind] = twin_class
    twin = cast(GrantkeeperError, Exception.__new__(twin_class))
    twin.__dict__.update(error.__dict__)
    twin.args = error.args
    twin.__dict__["_retryable"] = error.retryable  # what google-auth's retry logic reads
    return twin
