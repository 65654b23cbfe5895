"""The user ids (Google's ``sub``) callers pass to the keeper, checked before any store reads them.

Google's ``sub`` is "up to 255 case-sensitive ASCII characters" (the OpenID Connect page of
Google's guide), so an id with a control character in it names no user this keeper can hold.
Without the check such an id reached the store: SQLite found no row (a 404) but PostgreSQL
refuses a NUL in a text parameter (a 500). Now both stores answer the same clear 400.
"""

from __future__ import annotations

from grantkeeper.errors import InvalidRequest


def checked_sub(sub: str) -> str:
    """``sub`` if it can name a user; :class:`InvalidRequest` if it holds a control
    character."""
    if not sub.isprintable():
        raise InvalidRequest(
            "A user id (Google's sub) is printable ASCII; this one holds a control character. "
            "Send the sub exactly as the sign-in answered it."
        )
    return sub
