"""Operations endpoints beyond health: Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response

from grantkeeper import metrics
from grantkeeper.errors import GrantkeeperError
from grantkeeper.web.auth import KeeperDep
from grantkeeper.web.openapi import problems

router = APIRouter()
log = logging.getLogger("grantkeeper.web")


@router.get(
    "/metrics",
    tags=["operations"],
    summary="Prometheus metrics",
    response_class=Response,
    # 401/403: GRANTKEEPER_OPS_KEY and the HTTPS rule (web/ops_access.py).
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}, **problems(401, 403)},
)
async def prometheus_metrics(keeper: KeeperDep) -> Response:
    """Sign-ins and refreshes by outcome, provider latency, grants by state and webhook
    notifications waiting (counted now), webhook deliveries by outcome."""
    try:
        metrics.set_grant_counts(await keeper.grant_counts())
        if keeper.webhooks_configured:
            metrics.WEBHOOK_OUTBOX_PENDING.set(await keeper.pending_webhooks())
    except GrantkeeperError as error:
        # A scrape must still answer when the store is down; the gauge keeps its last value.
        log.warning("metrics: grants by state not refreshed (%s)", error.code)
    return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)
