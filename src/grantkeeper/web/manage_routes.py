"""The management API: users and grants by state, one user's grant and history, the audit log,
webhook deliveries (and replaying one). Behind a service key allowed ``manage``; answers from
the keeper's read queries, as the CLI's ``users``, ``audit`` and ``webhooks`` commands do.
Never a token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from grantkeeper.errors import InvalidRequest
from grantkeeper.keeper import MAX_PAGE
from grantkeeper.web.auth import KeeperDep, ManageKey
from grantkeeper.web.openapi import problems
from grantkeeper.web.schemas import (
    AuditPage,
    ServiceKeyLimitProblem,
    UserDetail,
    UsersPage,
    WebhookDelivery,
    WebhooksPage,
)

router = APIRouter(prefix="/v1/manage", tags=["management"])

NO_STORE = {"Cache-Control": "no-store"}
_LIMIT_403 = {403: [ServiceKeyLimitProblem]}
#: The largest audit id or outbox seq a cursor may name (64-bit columns on both stores); beyond
#: it the databases raise instead of finding nothing.
MAX_SEQUENCE = 2**63 - 1
_CURSOR = "The cursor: the previous page's next"
After = Annotated[str | None, Query(description=_CURSOR)]
Before = Annotated[int | None, Query(ge=1, le=MAX_SEQUENCE, description=_CURSOR)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


@router.get(
    "/users",
    summary="Users and their grants, by state, a page at a time",
    response_model=UsersPage,
    responses=problems(400, 401, 403, 429, 503, special=_LIMIT_403),
)
async def list_users(
    keeper: KeeperDep,
    _: ManageKey,
    status: Annotated[
        str | None, Query(description="Only users with a grant in this state")
    ] = None,
    after: After = None,
    limit: Limit = 50,
) -> JSONResponse:
    page = await keeper.users_page(status=status, after=after, limit=limit)
    return JSONResponse(page.to_json("users"), headers=NO_STORE)


@router.get(
    "/users/{sub}",
    summary="One user's profile, grants and audit history",
    response_model=UserDetail,
    responses=problems(400, 401, 403, 404, 429, 503, special=_LIMIT_403),
)
async def show_user(
    keeper: KeeperDep,
    sub: str,
    _: ManageKey,
    history: Limit = 50,
) -> JSONResponse:
    detail = await keeper.user_detail(sub, history=history)
    return JSONResponse(detail, headers=NO_STORE)


@router.get(
    "/audit",
    summary="The audit log, newest first, filtered and paged",
    response_model=AuditPage,
    responses=problems(400, 401, 403, 429, 503, special=_LIMIT_403),
)
async def audit_log(
    keeper: KeeperDep,
    _: ManageKey,
    sub: Annotated[str | None, Query(description="Only this user's events")] = None,
    kind: Annotated[str | None, Query(description="sign_in, token, refresh, …")] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Before (ISO 8601)")] = None,
    before: Before = None,
    limit: Limit = 100,
) -> JSONResponse:
    page = await keeper.audit_page(
        sub=sub,
        kind=kind,
        since=_utc(since, "since"),
        until=_utc(until, "until"),
        before=before,
        limit=limit,
    )
    return JSONResponse(page.to_json("events"), headers=NO_STORE)


@router.get(
    "/webhooks",
    summary="Webhook notifications and their delivery state, newest first, paged",
    response_model=WebhooksPage,
    responses=problems(400, 401, 403, 429, 503, special=_LIMIT_403),
)
async def list_webhooks(
    keeper: KeeperDep,
    _: ManageKey,
    state: Annotated[
        Literal["pending", "delivered", "failed"] | None,
        Query(description="Only notifications in this state"),
    ] = None,
    before: Before = None,
    limit: Limit = 50,
) -> JSONResponse:
    page = await keeper.webhooks_page(state=state, before=before, limit=limit)
    return JSONResponse(page.to_json("webhooks"), headers=NO_STORE)


@router.post(
    "/webhooks/{webhook_id}/replay",
    summary="Send a notification again, with the same webhook-id",
    response_model=WebhookDelivery,
    responses=problems(401, 403, 404, 429, 503, special=_LIMIT_403),
)
async def replay_webhook(keeper: KeeperDep, webhook_id: str, _: ManageKey) -> JSONResponse:
    """The notification becomes pending with fresh attempts and is delivered again; the app
    de-duplicates by ``webhook-id`` if it had it already."""
    (replayed,) = await keeper.replay_webhooks([webhook_id])
    return JSONResponse(replayed, headers=NO_STORE)


def _utc(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a time without a zone is taken as UTC
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable time
        raise InvalidRequest(
            f"Invalid fields: {name} (a time between the years 1 and 9999 in UTC)"
        ) from None
