"""Read queries over users, grants, the audit log and the webhook outbox: the management API and
the CLI's ``users``, ``audit`` and ``webhooks`` commands answer from these, so they always agree.
Never a token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from grantkeeper.errors import InvalidRequest, UnknownUser, UnknownWebhook
from grantkeeper.keeper.results import grant_json, iso_utc, user_json
from grantkeeper.store import AuditEvent, GrantStatus, GrantStore, OutboxEntry, OutboxState

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing; ``next`` is the cursor of the following page (None: the last)."""

    items: list[dict[str, Any]]
    next: str | None

    def to_json(self, name: str) -> dict[str, Any]:
        return {name: self.items, "next": self.next}


def audit_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso_utc(event.at),
        "kind": event.kind,
        "sub": event.sub,
        "client_id": event.client_id,
        "outcome": event.outcome,
        "detail": event.detail,
    }


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit is between 1 and {MAX_PAGE}.")
    return limit


async def users_page(
    store: GrantStore, *, status: str | None = None, after: str | None = None, limit: int = 50
) -> Page:
    """Users with their grants, ordered by ``sub``; ``status`` keeps users with a grant in it."""
    if status is not None and status not in {s.value for s in GrantStatus}:
        raise InvalidRequest("status is one of " + ", ".join(s.value for s in GrantStatus) + ".")
    found = await store.page_users(after=after, limit=_limit(limit) + 1, status=status)
    items = []
    for user in found[:limit]:
        grants = await store.list_grants(sub=user.sub)
        items.append({**user_json(user), "grants": [grant_json(g) for g in grants]})
    return Page(items, found[limit - 1].sub if len(found) > limit else None)


async def user_detail(store: GrantStore, sub: str, *, history: int = 50) -> dict[str, Any]:
    """One user: profile, grants and the newest ``history`` audit events about them."""
    user = await store.get_user(sub)
    if user is None:
        raise UnknownUser(f"No user {sub} is stored.")
    grants = await store.list_grants(sub=sub)
    events = await store.list_audit(sub, limit=_limit(history))
    return {
        "user": user_json(user),
        "grants": [grant_json(g) for g in grants],
        "history": [audit_json(e) for e in events],
    }


async def audit_page(
    store: GrantStore,
    *,
    sub: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> Page:
    """Audit events, newest first; ``before`` is the cursor (an event id)."""
    events = await store.list_audit(
        sub, kind=kind, since=since, until=until, before_id=before, limit=_limit(limit) + 1
    )
    items = [audit_json(e) for e in events[:limit]]
    return Page(items, str(events[limit - 1].id) if len(events) > limit else None)


def webhook_json(entry: OutboxEntry) -> dict[str, Any]:
    """A notification's delivery state (its payload, which holds no secret, is not listed)."""
    return {
        "id": entry.id,
        "type": entry.type,
        "state": entry.state,
        "attempts": entry.attempts,
        "created_at": iso_utc(entry.created_at),
        "next_attempt_at": iso_utc(entry.next_attempt_at) if entry.state == "pending" else None,
        "delivered_at": iso_utc(entry.delivered_at),
        "last_error": entry.last_error,
    }


def _webhook_state(state: str | None) -> str | None:
    if state is not None and state not in {s.value for s in OutboxState}:
        raise InvalidRequest("state is one of " + ", ".join(s.value for s in OutboxState) + ".")
    return state


async def webhooks_page(
    store: GrantStore, *, state: str | None = None, before: int | None = None, limit: int = 50
) -> Page:
    """Notifications, newest first; ``before`` is the cursor (the last one's position)."""
    found = await store.list_webhooks(
        state=_webhook_state(state), before_seq=before, limit=_limit(limit) + 1
    )
    items = [webhook_json(e) for e in found[:limit]]
    return Page(items, str(found[limit - 1].seq) if len(found) > limit else None)


async def replay_webhooks(
    store: GrantStore, ids: Iterable[str], *, failed: bool = False
) -> list[dict[str, Any]]:
    """Reset the named (and with ``failed`` every failed) notifications to pending, due now;
    every id must exist, else nothing is reset."""
    wanted = list(dict.fromkeys(ids))
    if not wanted and not failed:
        raise InvalidRequest("Name the notifications to replay (their ids), or ask for --failed.")
    if wanted:
        known = {e.id for e in await store.get_webhooks(wanted)}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise UnknownWebhook(unknown)
    replayed = await store.replay_webhooks(wanted, failed=failed)
    return [webhook_json(e) for e in await store.get_webhooks(replayed)] if replayed else []
