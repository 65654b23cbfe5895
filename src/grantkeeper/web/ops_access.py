"""Who may read the operations endpoints: ``/metrics``, ``/readyz``, ``/docs``, ``/openapi.json``.

They tell an outsider how busy the keeper is, whether its store is up and every route it has, so
on a strict keeper they follow the API's transport rule (HTTPS, or a trusted proxy saying so)
and, when ``GRANTKEEPER_OPS_KEY`` is set, also need ``Authorization: Bearer <ops key>`` (a
Prometheus ``authorization`` block or a probe's ``httpHeaders`` send it).
``GRANTKEEPER_OPS_PUBLIC=true`` opens them to plain HTTP for a private network; dev mode
(``ALLOW_INSECURE_HTTP``) does too. ``/healthz`` says only "ok" and always answers.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from grantkeeper.errors import GrantkeeperError, InsecureTransport, Unauthorized
from grantkeeper.web.guards import ServiceKeys
from grantkeeper.web.problems import problem_response

OPS_PATHS = frozenset({"/metrics", "/readyz", "/docs", "/docs/oauth2-redirect", "/openapi.json"})


class OpsAccessMiddleware:
    def __init__(
        self, app: ASGIApp, *, key: ServiceKeys, public: bool, allow_insecure_http: bool
    ) -> None:
        self.app = app
        self.key = key
        self.public = public
        self.allow_insecure_http = allow_insecure_http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in OPS_PATHS:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            self.check(request)
        except GrantkeeperError as error:
            await problem_response(error, request)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, request: Request) -> None:
        https = request.scope.get("scheme", "http") == "https"  # what request.url.scheme reads
        if self.key:
            if not https and not (self.public or self.allow_insecure_http):
                raise InsecureTransport("The operations endpoints only answer over HTTPS.")
            try:
                self.key.check(request)
            except Unauthorized:
                raise Unauthorized(
                    "Send Authorization: Bearer <GRANTKEEPER_OPS_KEY> to read this endpoint."
                ) from None
            return
        if self.public or self.allow_insecure_http:
            return
        if not https:
            raise InsecureTransport(
                "The operations endpoints only answer over HTTPS on a strict keeper; set "
                "GRANTKEEPER_OPS_KEY, or GRANTKEEPER_OPS_PUBLIC=true on a private network."
            )
