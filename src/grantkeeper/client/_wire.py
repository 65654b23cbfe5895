"""The token API on the wire, without I/O: requests to send, answers read, problems mapped back
to grantkeeper's exceptions, and when to retry."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from grantkeeper import errors
from grantkeeper.errors import GrantkeeperError, KeeperUnreachable

#: Members every problem document has; the rest are the error's extension members.
_STANDARD = frozenset({"type", "title", "status", "code", "detail", "advice", "instance"})

#: Statuses worth retrying when the answer is not a problem document we know.
_RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Token:
    """An access token from the keeper; the token itself is hidden from ``repr``."""

    token: str = field(repr=False)
    expires_at: datetime
    scopes: frozenset[str]
    sub: str

    @classmethod
    def from_json(cls, sub: str, body: Any) -> Token:
        try:
            expires_at = datetime.fromisoformat(str(body["expires_at"]).replace("Z", "+00:00"))
            return cls(
                token=str(body["access_token"]),
                expires_at=expires_at.astimezone(UTC),
                scopes=frozenset(body["scopes"]),
                sub=sub,
            )
        except (KeyError, TypeError, ValueError):
            raise KeeperUnreachable("The keeper's token answer is malformed.") from None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """What :meth:`TokenClient.disconnect` did."""

    sub: str
    revoked_at_provider: bool
    revocation_pending: bool
    forgotten: bool
    grants: int

    @classmethod
    def from_json(cls, body: Any) -> Disconnected:
        try:
            return cls(
                sub=str(body["sub"]),
                revoked_at_provider=bool(body["revoked_at_provider"]),
                revocation_pending=bool(body["revocation_pending"]),
                forgotten=bool(body["forgotten"]),
                grants=int(body["grants"]),
            )
        except (KeyError, TypeError, ValueError):
            raise KeeperUnreachable("The keeper's disconnect answer is malformed.") from None


@dataclass(frozen=True, slots=True)
class Call:
    """One request to the token API."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: dict[str, Any] | None = None


def _user(sub: str) -> str:
    if not sub:
        raise errors.InvalidRequest("sub is empty.")
    return "/v1/users/" + quote(sub, safe="")


def token_call(sub: str, scopes: Any = None) -> Call:
    if isinstance(scopes, str):
        scopes = scopes.split()
    return Call("GET", _user(sub) + "/token", tuple(("scope", str(s)) for s in scopes or ()))


def refresh_call(sub: str, rejected: str | None) -> Call:
    return Call(
        "POST",
        _user(sub) + "/token/refresh",
        json={"rejected_token": rejected} if rejected else {},
    )


def disconnect_call(sub: str, forget: bool) -> Call:
    return Call("DELETE", _user(sub) + "/grant", (("forget", "true" if forget else "false"),))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries answers that say "try again" (and connection failures).

    ``Retry-After`` is honoured up to ``max_retry_after`` seconds; a longer one is not waited
    for: the error is raised at once with its ``retry_after``.
    """

    attempts: int = 3
    max_retry_after: float = 30.0
    backoff: float = 0.5

    def wait(self, error: GrantkeeperError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to raise ``error`` now."""
        if not error.retryable or attempt >= self.attempts:
            return None
        retry_after = getattr(error, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(retry_after) if retry_after <= self.max_retry_after else None
        # Full jitter: callers that failed together do not come back together.
        return random.uniform(0, self.backoff * 2 ** (attempt - 1))  # noqa: S311


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3): delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _error_classes() -> dict[str, type[GrantkeeperError]]:
    found: dict[str, type[GrantkeeperError]] = {}
    pending: list[type[GrantkeeperError]] = [GrantkeeperError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    return found


class ServiceProblem(GrantkeeperError):
    """A problem the keeper answered with whose ``code`` this client has no class for (a newer
    keeper, or a proxy in front of it). ``code``, ``status``, ``advice`` and ``retryable`` are
    the answer's."""


def error_from_problem(status: int, body: Any, retry_after: float | None) -> GrantkeeperError:
    """The exception a problem document stands for, as the library would have raised it."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        if status >= 500 or status in _RETRYABLE_STATUSES:
            error: GrantkeeperError = KeeperUnreachable(
                f"The keeper answered {status} without a problem document."
            )
        else:
            error = ServiceProblem(f"The keeper answered {status} without a problem document.")
            error.__dict__.update(code="unexpected_answer", status=status, retryable=False)
        if retry_after is not None:
            error.__dict__["retry_after"] = retry_after
        return error
    code = body["code"]
    cls = _error_classes().get(code, ServiceProblem)
    extra = {key: value for key, value in body.items() if key not in _STANDARD}
    error = cls.__new__(cls)
    GrantkeeperError.__init__(error, str(body.get("detail") or body.get("title") or code), **extra)
    instance: dict[str, Any] = {}
    if cls is ServiceProblem:
        instance.update(
            code=code,
            status=status,
            title=str(body.get("title") or code),
            retryable=status in _RETRYABLE_STATUSES,
        )
    if isinstance(body.get("advice"), str) and body["advice"] != cls.advice:
        instance["advice"] = body["advice"]  # occurrence-specific advice (re-consent, …)
    if "reason" in extra:
        instance["reason"] = extra["reason"]
    if "missing_scopes" in extra:
        instance["missing"] = sorted(extra["missing_scopes"])
    wait = retry_after if retry_after is not None else extra.get("retry_after")
    instance["retry_after"] = wait if isinstance(wait, int | float) else None
    error.__dict__.update(instance)
    return error
