"""The busiest routes are answered by ``web/hot_routes.py``, not FastAPI's router: the same answers
either way, FastAPI still answering what they do not match, and under a mount too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.routing import Mount

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app, hot_routes, routes
from grantkeeper.web.hot_routes import HotRoutes, match

from ..app_world import World
from ..keeper.test_tracing import spans  # noqa: F401  (the SDK's in-memory exporter)
from .conftest import SERVICE_KEY
from .test_signin_api import XRW

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}
#: Headers whose values must be the same on both paths (the date and length may differ).
COMPARED_HEADERS = ("content-type", "cache-control", "pragma", "www-authenticate", "retry-after")


def without_hot_routes(app: FastAPI) -> FastAPI:
    """The same app answering every route through FastAPI (before its first request)."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]  # type: ignore[comparison-overlap]
    return app


@pytest.fixture
async def clients(keeper: Keeper) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(through the hot routes, through FastAPI only), one keeper behind both."""
    keeper.settings = keeper.settings.model_copy(
        update={"service_api_keys": [SERVICE_KEY, f"reader:{SERVICE_KEY}-r;ops=token"]}
    )
    apps = (create_app(keeper), without_hot_routes(create_app(keeper)))
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps[0], client=("203.0.113.7", 40000)),
            base_url="https://keeper.test",
        ) as hot,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=apps[1], client=("203.0.113.7", 40000)),
            base_url="https://keeper.test",
        ) as plain,
    ):
        yield hot, plain


def answer(response: httpx.Response) -> tuple[int, Any, dict[str, str]]:
    body: Any = response.json() if response.content else None
    headers = {h: response.headers[h] for h in COMPARED_HEADERS if h in response.headers}
    return response.status_code, body, headers


async def both(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    send: Callable[[httpx.AsyncClient], Any],
) -> tuple[int, Any, dict[str, str]]:
    hot, plain = clients
    first = answer(await send(hot))
    assert first == answer(await send(plain))
    return first


async def test_token_reads_answer_the_same_on_both_paths(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    hot, _ = clients
    signed = await hot.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    sub = signed.json()["user"]["sub"]
    url = f"/v1/users/{sub}/token"

    status, body, headers = await both(clients, lambda c: c.get(url, headers=AUTH))
    assert status == 200
    assert body["access_token"].startswith("ya29.")
    assert headers["cache-control"] == "no-store"
    scoped = await both(clients, lambda c: c.get(url + "?scope=openid&scope=email", headers=AUTH))
    assert scoped[0] == 200
    drive = {"scope": "https://www.googleapis.com/auth/drive"}
    status, body, _ = await both(clients, lambda c: c.get(url, params=drive, headers=AUTH))
    assert (status, body["code"]) == (403, "insufficient_scope")
    status, body, headers = await both(clients, lambda c: c.get(url))
    assert (status, body["code"]) == (401, "unauthorized")
    assert headers["www-authenticate"].startswith("Bearer")
    unknown = await both(clients, lambda c: c.get("/v1/users/nobody-here/token", headers=AUTH))
    assert unknown[0] == 404
    reader = {"Authorization": f"Bearer {SERVICE_KEY}-r"}
    status, body, _ = await both(clients, lambda c: c.post(url + "/refresh", headers=reader))
    assert (status, body["code"]) == (403, "service_key_limit")


async def test_refresh_and_sign_in_answer_the_same_on_both_paths(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], world: World
) -> None:
    for client in clients:
        signed = await client.post("/v1/google/signin", data={"code": world.code()}, headers=XRW)
        assert signed.status_code == 200, signed.text
        assert signed.headers["cache-control"] == "no-store"
    sub = signed.json()["user"]["sub"]
    refreshed = [
        await client.post(f"/v1/users/{sub}/token/refresh", json={}, headers=AUTH)
        for client in clients
    ]
    assert [r.status_code for r in refreshed] == [200, 200]
    assert world.refreshes() == 2

    bad_body = await both(
        clients,
        lambda c: c.post(f"/v1/users/{sub}/token/refresh", content=b"[1]", headers=AUTH),
    )
    assert (bad_body[0], bad_body[1]["code"]) == (400, "invalid_request")
    no_header = await both(clients, lambda c: c.post("/v1/google/signin", json={"code": "4/x"}))
    assert (no_header[0], no_header[1]["code"]) == (403, "csrf_header_missing")
    missing = await both(clients, lambda c: c.post("/v1/google/signin", json={}, headers=XRW))
    assert (missing[0], missing[1]["code"]) == (400, "invalid_request")
    assert await both(clients, lambda c: c.get("/healthz")) == (
        200,
        {"status": "ok"},
        {"content-type": "application/json"},
    )


async def test_plain_http_is_refused_on_both_paths(keeper: Keeper) -> None:
    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": [SERVICE_KEY]})
    for app in (create_app(keeper), without_hot_routes(create_app(keeper))):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://keeper.test"
        ) as client:
            response = await client.get("/v1/users/someone/token", headers=AUTH)
            assert (response.status_code, response.json()["code"]) == (403, "https_required")


async def test_what_they_do_not_match_goes_on_to_fastapi(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    assert (await both(clients, lambda c: c.put("/v1/users/a/token", headers=AUTH)))[0] == 405
    assert (await both(clients, lambda c: c.get("/v1/google/signin")))[0] == 405
    assert (await both(clients, lambda c: c.get("/v1/users/a/b/token", headers=AUTH)))[0] == 404
    slash = await clients[0].get("/v1/users/a/token/", headers=AUTH)
    assert slash.status_code == 307
    grant = await both(clients, lambda c: c.delete("/v1/users/nobody/grant", headers=AUTH))
    assert grant[0] == 404


def test_match_takes_exactly_the_routes_it_answers() -> None:
    assert match("GET", "/v1/users/123/token") is not None
    assert match("GET", "/v1/users/123/token")[1:] == (  # type: ignore[index]
        "/v1/users/{sub}/token",
        "123",
    )
    assert match("POST", "/v1/users/123/token/refresh") is not None
    assert match("POST", "/v1/google/signin") is not None
    assert match("GET", "/healthz") is not None
    for method, path in [
        ("POST", "/v1/users/123/token"),
        ("GET", "/v1/users/123/token/refresh"),
        ("GET", "/v1/users//token"),
        ("GET", "/v1/users/123/token/"),
        ("GET", "/v1/users/123/tokens"),
        ("HEAD", "/v1/users/123/token"),
        ("GET", "/healthz/"),
        ("GET", "/prefix/v1/users/123/token"),
    ]:
        assert match(method, path) is None, (method, path)


async def test_the_hot_path_answers_and_works_under_a_mount(
    keeper: Keeper, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = routes.answer_token

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[2])
        return await real(*args, **kwargs)

    monkeypatch.setattr(hot_routes, "answer_token", counted)
    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": [SERVICE_KEY]})
    outer = Starlette(routes=[Mount("/keeper", app=create_app(keeper))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer), base_url="https://example.test"
    ) as client:
        signed = await client.post(
            "/keeper/v1/google/signin", json={"code": world.code()}, headers=XRW
        )
        assert signed.status_code == 200, signed.text
        sub = signed.json()["user"]["sub"]
        token = await client.get(f"/keeper/v1/users/{sub}/token", headers=AUTH)
        assert token.status_code == 200, token.text
        assert token.json()["access_token"].startswith("ya29.")
        not_found = await client.get(f"/v1/users/{sub}/token", headers=AUTH)
        assert not_found.status_code == 404
    assert calls == [sub]


async def test_fastapi_server_spans_still_name_the_route(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    world: World,
    spans: InMemorySpanExporter,  # noqa: F811
) -> None:
    hot, _ = clients
    signed = await hot.post("/v1/google/signin", json={"code": world.code()}, headers=XRW)
    sub = signed.json()["user"]["sub"]
    spans.clear()
    assert (await hot.get(f"/v1/users/{sub}/token", headers=AUTH)).status_code == 200
    server = [
        s
        for s in spans.get_finished_spans()
        if (s.attributes or {}).get("http.route") == "/v1/users/{sub}/token"
    ]
    assert len(server) == 1, [s.name for s in spans.get_finished_spans()]
    assert server[0].name == "GET /v1/users/{sub}/token"
    assert sub not in server[0].name


async def test_a_parent_apps_body_limit_is_answered_as_a_problem_on_both_paths(
    keeper: Keeper,
) -> None:
    """Under a parent FastAPI with ``max_body_size``, a streamed body over it fails inside the
    route: the app's own handler for HTTP errors answers, not FastAPI's ``{"detail": ...}``.
    (A ``Content-Length`` over the limit is answered by Starlette itself, on both paths.)"""

    async def chunks() -> Any:
        yield b'{"code": "4/'
        for _ in range(10):
            yield b"x" * 20
        yield b'"}'

    streamed, declared = [], []
    for app in (create_app(keeper), without_hot_routes(create_app(keeper))):
        parent = FastAPI(max_body_size=64)
        parent.mount("/keeper", app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=parent), base_url="https://example.test"
        ) as client:
            url = "/keeper/v1/google/signin"
            headers = {**XRW, "Content-Type": "application/json"}
            streamed.append(answer(await client.post(url, content=chunks(), headers=headers)))
            sized = await client.post(url, json={"code": "4/" + "x" * 200}, headers=XRW)
            declared.append((sized.status_code, sized.text))
    assert streamed[0] == streamed[1]
    status, body, headers = streamed[0]
    assert status == 413
    assert headers["content-type"] == "application/problem+json"
    assert body["code"] == "http_error"
    assert "x" * 20 not in str(body)
    assert declared[0] == declared[1] == (413, "Content Too Large")


async def test_an_extensions_exception_handler_answers_on_both_paths(keeper: Keeper) -> None:
    from fastapi.responses import PlainTextResponse

    from grantkeeper.errors import UnknownUser

    async def unknown_user(request: Any, error: Exception) -> PlainTextResponse:
        return PlainTextResponse("no such user here", status_code=404)

    def teapot(request: Any, error: Exception) -> PlainTextResponse:  # a sync handler
        return PlainTextResponse("teapot", status_code=418)

    def extend(app: FastAPI) -> None:
        app.add_exception_handler(UnknownUser, unknown_user)

    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": [SERVICE_KEY]})
    apps = [create_app(keeper, extend=extend), without_hot_routes(create_app(keeper))]
    apps[1].add_exception_handler(UnknownUser, unknown_user)
    sync = create_app(keeper)
    sync.add_exception_handler(UnknownUser, teapot)
    answers = []
    for app in [*apps, sync]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://keeper.test"
        ) as client:
            response = await client.get("/v1/users/nobody/token", headers=AUTH)
            answers.append((response.status_code, response.text))
    assert answers == [(404, "no such user here")] * 2 + [(418, "teapot")]


async def test_an_unexpected_error_on_the_hot_path_is_a_500_problem(
    keeper: Keeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store fell over: secret-ish detail")

    monkeypatch.setattr(hot_routes, "answer_token", broken)
    keeper.settings = keeper.settings.model_copy(update={"service_api_keys": [SERVICE_KEY]})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(keeper), raise_app_exceptions=False),
        base_url="https://keeper.test",
    ) as client:
        response = await client.get("/v1/users/someone/token", headers=AUTH)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret-ish" not in response.text
