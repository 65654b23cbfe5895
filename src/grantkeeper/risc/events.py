"""Cross-Account Protection events and what each one does to our grants. Pure; no I/O.

A Security Event Token (RFC 8417) carries ``events``: a map from event-type URI to the event's
attributes, each with a ``subject``. Google's table (google-protocol.md §6.4) says what a
receiver must or should do; for a token broker that keeps offline grants it comes down to:

====================================  ==========================================================
event                                 what grantkeeper does
====================================  ==========================================================
sessions-revoked                      nothing to the grants (Google's tokens stay valid); the
                                      app is told to end the user's sessions
tokens-revoked                        every grant of the user revoked, tokens erased
token-revoked                         the grant holding that refresh token revoked, erased
account-disabled (hijacking)          active grants disabled (no tokens handed out); the app
                                      is told to end the user's sessions
account-disabled (bulk-account)       active grants disabled; the app is told to review
account-disabled (no reason)          active grants disabled (sign-in with Google disabled)
account-enabled                       grants disabled by an ``account-disabled`` event active
                                      again
account-credential-change-required    flagged: the app is told to watch for suspicious
                                      activity
account-purged (not in Google's       every grant of the user revoked, tokens erased
table; seen in the wild)
verification                          logged with its ``state``
====================================  ==========================================================

Every event, acted on or not, is written to the audit log by the keeper
(:mod:`grantkeeper.keeper.security_events`), which applies these plans to the grants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RISC = "https://schemas.openid.net/secevent/risc/event-type/"
OAUTH = "https://schemas.openid.net/secevent/oauth/event-type/"

EVENT_TYPES: dict[str, str] = {
    RISC + "sessions-revoked": "sessions-revoked",
    OAUTH + "tokens-revoked": "tokens-revoked",
    OAUTH + "token-revoked": "token-revoked",
    RISC + "account-disabled": "account-disabled",
    RISC + "account-enabled": "account-enabled",
    RISC + "account-credential-change-required": "account-credential-change-required",
    RISC + "account-purged": "account-purged",
    RISC + "verification": "verification",
    # The pre-standard URI some of Google's early events used (Wasabee-Server handles it).
    "https://accounts.google.com/risc/event/sessions-revoked": "sessions-revoked",
}
"""Known event-type URIs and their short names."""

SHORT_NAMES: dict[str, str] = {
    short: uri for uri, short in EVENT_TYPES.items() if uri.startswith("https://schemas")
}
"""Short name → canonical URI (what the emulator's ``send`` accepts)."""

TOKEN_ALGORITHMS = frozenset({"prefix", "hash_base64_sha512_sha512"})
DISABLE_REASONS = frozenset({"hijacking", "bulk-account"})

REASON_PREFIX = "risc:"
"""Every ``status_reason`` a RISC event writes starts with this, so ``account-enabled`` can
tell grants Google disabled from grants disabled some other way."""


@dataclass(frozen=True, slots=True)
class TokenSubject:
    """``subject_type: oauth_token`` — which refresh token ``token-revoked`` is about."""

    algorithm: str
    """``prefix`` (first 16 characters) or ``hash_base64_sha512_sha512``."""
    identifier: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One event of a SET, with the subject decoded."""

    uri: str
    name: str
    """Short name (``account-disabled``), or ``unknown`` for a URI we do not handle."""
    sub: str | None
    """The Google account (``iss-sub`` or ``id_token_claims`` subject)."""
    token: TokenSubject | None = None
    reason: str | None = None
    """``account-disabled``'s reason: ``hijacking``, ``bulk-account`` or absent."""
    state: str | None = None
    """``verification``'s state, echoed from ``stream:verify``."""


class MalformedEvent(ValueError):
    """The ``events`` claim does not have the shape RFC 8417 and Google's doc give it."""


def parse_events(claims: Mapping[str, Any]) -> list[SecurityEvent]:
    """The events of a verified SET's claims.

    Raises:
        MalformedEvent: ``events`` missing or not an object, an event or subject not an
            object, a ``token-revoked`` without a usable token identifier, or an event of a
            known type with no subject to act on.
    """
    events = claims.get("events")
    if not isinstance(events, dict) or not events:
        raise MalformedEvent("the SET has no 'events' object")
    parsed: list[SecurityEvent] = []
    for uri, body in events.items():
        if not isinstance(body, dict):
            raise MalformedEvent(f"event {uri!r} is not an object")
        parsed.append(_parse_event(str(uri), body))
    return parsed


def _parse_event(uri: str, body: Mapping[str, Any]) -> SecurityEvent:
    name = EVENT_TYPES.get(uri, "unknown")
    subject = body.get("subject")
    if subject is not None and not isinstance(subject, dict):
        raise MalformedEvent(f"the subject of {name} is not an object")
    subject = subject or {}
    sub = subject.get("sub") if isinstance(subject.get("sub"), str) else None
    token: TokenSubject | None = None
    if subject.get("subject_type") == "oauth_token":
        algorithm, identifier = subject.get("token_identifier_alg"), subject.get("token")
        if algorithm not in TOKEN_ALGORITHMS or not isinstance(identifier, str) or not identifier:
            raise MalformedEvent(
                "token subject needs token_identifier_alg prefix or hash_base64_sha512_sha512 "
                "and a token"
            )
        token = TokenSubject(algorithm=str(algorithm), identifier=identifier)
    reason = body.get("reason")
    state = body.get("state")
    event = SecurityEvent(
        uri=uri,
        name=name,
        sub=sub,
        token=token,
        reason=reason if isinstance(reason, str) and reason else None,
        state=state if isinstance(state, str) else None,
    )
    if name == "token-revoked" and token is None:
        raise MalformedEvent("token-revoked without an oauth_token subject")
    if name not in ("verification", "unknown", "token-revoked") and sub is None:
        raise MalformedEvent(f"{name} without a subject 'sub'")
    return event


# -- what to do --------------------------------------------------------------------------------

Target = Literal["user", "token"]
AppAction = Literal["end_sessions", "review_activity", "watch_activity"]


Effect = Literal["revoke", "disable", "enable"]


@dataclass(frozen=True, slots=True)
class Transition:
    """What an event does to the grants it targets, in this module's own words; the keeper
    decides which grant states that moves and how."""

    target: Target
    """``user``: every grant of the subject; ``token``: the grants holding the token."""
    effect: Effect
    """``revoke``: the grant is dead and its tokens erased; ``disable``: an active grant
    hands out no tokens until ``enable``; ``enable``: a grant a ``disable`` stopped is active
    again."""
    reason: str
    """The grant's recorded reason; always starts with :data:`REASON_PREFIX`."""
    only_reason_prefix: str | None = None
    """Only grants whose current reason starts with this move (``enable`` revives only what
    ``account-disabled`` disabled)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one event does: a grant transition, a hint for the app, the audit outcome."""

    event: SecurityEvent
    outcome: str
    """Audit outcome: ``revoked``, ``disabled``, ``enabled``, ``flagged``, ``logged`` or
    ``ignored``."""
    transition: Transition | None = None
    app_action: AppAction | None = None


_DISABLE_ACTIONS: dict[str, AppAction] = {
    "hijacking": "end_sessions",
    "bulk-account": "review_activity",
}


def plan(event: SecurityEvent) -> Plan:
    """The actions for one event (the table in this module's docstring)."""
    name = event.name
    reason = f"{REASON_PREFIX}{name}"
    if name == "sessions-revoked":
        return Plan(event, "flagged", app_action="end_sessions")
    if name in ("tokens-revoked", "account-purged"):
        revoke = Transition("user", "revoke", reason)
        return Plan(event, "revoked", revoke, app_action="end_sessions")
    if name == "token-revoked":
        revoke = Transition("token", "revoke", reason)
        return Plan(event, "revoked", revoke)
    if name == "account-disabled":
        why = event.reason if event.reason in DISABLE_REASONS else "none"
        disable = Transition("user", "disable", f"{reason}:{why}")
        return Plan(event, "disabled", disable, app_action=_DISABLE_ACTIONS.get(why))
    if name == "account-enabled":
        enable = Transition(
            "user", "enable", reason, only_reason_prefix=f"{REASON_PREFIX}account-disabled"
        )
        return Plan(event, "enabled", enable)
    if name == "account-credential-change-required":
        return Plan(event, "flagged", app_action="watch_activity")
    if name == "verification":
        return Plan(event, "logged")
    return Plan(event, "ignored")
