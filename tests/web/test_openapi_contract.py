"""The OpenAPI document is valid OpenAPI and says what the keeper really answers.

Every live answer below is validated against the schema the document gives for its path,
method, status and media type: an undocumented status, media type or member fails.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from grantkeeper.keeper import Keeper
from grantkeeper.web import create_app

from ..app_world import DRIVE_APPDATA, World
from .conftest import SERVICE_KEY
from .test_signin_api import XRW

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": f"Bearer {SERVICE_KEY}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def openapi(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def conforms(spec: dict[str, Any], response: httpx.Response, path: str) -> Any:
    """Assert ``response`` is documented for ``path`` (a template) and matches its schema."""
    method = response.request.method.lower()
    operation = spec["paths"][path][method]
    status = str(response.status_code)
    assert status in operation["responses"], f"{method} {path}: {status} is not documented"
    documented = operation["responses"][status].get("content", {})
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in documented, f"{method} {path} {status}: {media_type} not documented"
    schema = documented[media_type]["schema"]
    body = response.json()
    Draft202012Validator({**schema, "components": spec["components"]}).validate(body)
    return body


async def test_the_document_is_valid_openapi(api: httpx.AsyncClient) -> None:
    spec = await openapi(api)
    validate(spec)  # raises OpenAPIValidationError with the path of the first fault
    assert spec["openapi"].startswith("3.1")


async def test_service_key_routes_declare_bearer_auth(api: httpx.AsyncClient) -> None:
    spec = await openapi(api)
    scheme = spec["components"]["securitySchemes"]["serviceKey"]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        "description": scheme["description"],
    }
    needs_key = {
        ("/v1/users/{sub}/token", "get"),
        ("/v1/users/{sub}/token/refresh", "post"),
        ("/v1/users/{sub}/grant", "delete"),
        ("/v1/manage/users", "get"),
        ("/v1/manage/users/{sub}", "get"),
        ("/v1/manage/audit", "get"),
    }
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            security = operation.get("security")
            if (path, method) in needs_key:
                assert security == [{"serviceKey": []}], (path, method)
            elif path in ("/v1/google/signin", "/healthz", "/readyz", "/v1/google/risc"):
                assert security is None, (path, method)


async def test_request_bodies_are_typed(api: httpx.AsyncClient) -> None:
    spec = await openapi(api)
    body = spec["paths"]["/v1/google/signin"]["post"]["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    sign_in = spec["components"]["schemas"]["SignInBody"]
    assert sign_in["required"] == ["code"]
    assert set(sign_in["properties"]) == {"code", "platform", "nonce"}
    assert sign_in["properties"]["platform"]["enum"] == ["ios", "android", "web"]
    refresh = spec["paths"]["/v1/users/{sub}/token/refresh"]["post"]["requestBody"]
    assert refresh["required"] is False
    assert set(refresh["content"]) == {"application/json"}
    token = spec["components"]["schemas"]["TokenAnswer"]
    assert set(token["properties"]) == {"access_token", "token_type", "expires_at", "scopes"}
    assert token["additionalProperties"] is False
    # FastAPI's 422 is not what the keeper answers: invalid input is a 400 problem.
    for methods in spec["paths"].values():
        for operation in methods.values():
            assert "422" not in operation["responses"]


async def test_live_answers_match_the_schemas(
    api: httpx.AsyncClient, world: World, keeper: Keeper
) -> None:
    spec = await openapi(api)
    code = world.code()
    signed = conforms(
        spec,
        await api.post(
            "/v1/google/signin",
            json={"code": code},
            headers={**XRW, "Idempotency-Key": '"k-1"'},
        ),
        "/v1/google/signin",
    )
    assert signed["replayed"] is False
    sub = signed["user"]["sub"]
    # A retried POST of the same code: the same answer, marked replayed.
    again = conforms(
        spec,
        await api.post(
            "/v1/google/signin",
            data={"code": code},
            headers={**XRW, "Idempotency-Key": '"k-1"'},
        ),
        "/v1/google/signin",
    )
    assert again["replayed"] is True
    assert again["user"] == signed["user"]

    token = conforms(
        spec, await api.get(f"/v1/users/{sub}/token", headers=AUTH), "/v1/users/{sub}/token"
    )
    assert token["token_type"] == "Bearer"
    refreshed = conforms(
        spec,
        await api.post(
            f"/v1/users/{sub}/token/refresh",
            json={"rejected_token": token["access_token"]},
            headers=AUTH,
        ),
        "/v1/users/{sub}/token/refresh",
    )
    assert refreshed["access_token"] != token["access_token"]
    missing = conforms(
        spec,
        await api.get(f"/v1/users/{sub}/token", params={"scope": DRIVE_APPDATA}, headers=AUTH),
        "/v1/users/{sub}/token",
    )
    assert missing["code"] == "insufficient_scope"
    assert missing["missing_scopes"] == [DRIVE_APPDATA]

    for response in (
        await api.get(f"/v1/users/{sub}/token"),
        await api.get("/v1/users/nobody/token", headers=AUTH),
    ):
        conforms(spec, response, "/v1/users/{sub}/token")
    for bad in ({}, {"code": "x", "platform": "windows"}, {"code": "x" * 300}):
        refused = conforms(
            spec, await api.post("/v1/google/signin", json=bad, headers=XRW), "/v1/google/signin"
        )
        assert refused["code"] == "invalid_request"
    refused = conforms(
        spec,
        await api.post("/v1/google/signin", json={"code": "4/not-a-code"}, headers=XRW),
        "/v1/google/signin",
    )
    assert refused["code"] == "invalid_code"

    gone = conforms(
        spec,
        await api.delete(f"/v1/users/{sub}/grant", headers=AUTH),
        "/v1/users/{sub}/grant",
    )
    assert gone["revoked_at_provider"] is True
    revoked = conforms(
        spec, await api.get(f"/v1/users/{sub}/token", headers=AUTH), "/v1/users/{sub}/token"
    )
    assert revoked["code"] == "grant_revoked"
    assert revoked["reason"] == "disconnect"
    conforms(
        spec,
        await api.post(f"/v1/users/{sub}/token/refresh", headers=AUTH),
        "/v1/users/{sub}/token/refresh",
    )

    conforms(spec, await api.get("/healthz"), "/healthz")
    conforms(spec, await api.get("/readyz"), "/readyz")


async def test_invalid_fields_are_named_without_their_values(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/v1/google/signin",
        json={"code": "4/secret-" + "x" * 300, "platform": "windows"},
        headers=XRW,
    )
    body = response.json()
    assert response.status_code == 400
    assert "'code' is at most 256 characters" in body["detail"]
    assert "'platform' must be one of 'ios', 'android' or 'web'" in body["detail"]
    assert "secret" not in response.text
    assert "windows" not in response.text


async def test_refusals_found_by_the_fuzzer_are_documented(keeper: Keeper, world: World) -> None:
    """make fuzz (schemathesis) found these answers missing from the document: a bad ``forget``
    (400), the rate limits' 429 on every limited route, and the ops key's 401 on /readyz and
    /metrics."""
    admin = "fuzz-admin-key-0123456789"
    ops_key = "ops-key-0123456789abcdef"
    keeper.settings = keeper.settings.model_copy(
        update={
            "service_api_keys": [SERVICE_KEY, f"admin:{admin};ops=manage"],
            "ops_key": ops_key,
            "signin_rate_per_minute": 1,
            "token_rate_per_minute": 1,
        }
    )
    transport = httpx.ASGITransport(app=create_app(keeper), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="https://keeper.test") as api:
        spec = (await api.get("/openapi.json", headers=bearer(ops_key))).json()
        for path in ("/readyz", "/metrics"):
            assert conforms(spec, await api.get(path), path)["code"] == "unauthorized"
        bad_forget = await api.delete("/v1/users/1/grant?forget=maybe", headers=AUTH)
        assert conforms(spec, bad_forget, "/v1/users/{sub}/grant")["code"] == "invalid_request"
        # The service key's one request a minute is spent: every limited route answers 429.
        limited = [
            (await api.get("/v1/users/1/token", headers=AUTH), "/v1/users/{sub}/token"),
            (
                await api.post("/v1/users/1/token/refresh", headers=AUTH),
                "/v1/users/{sub}/token/refresh",
            ),
            (await api.delete("/v1/users/1/grant", headers=AUTH), "/v1/users/{sub}/grant"),
        ]
        for path in (
            "/v1/manage/users",
            "/v1/manage/users/1",
            "/v1/manage/audit",
            "/v1/manage/webhooks",
        ):
            await api.get(path, headers=bearer(admin))  # the admin key's one
            template = path.replace("/users/1", "/users/{sub}")
            limited.append((await api.get(path, headers=bearer(admin)), template))
        for _ in range(2):
            signin = await api.post("/v1/google/signin", json={"code": "4/0junk"}, headers=XRW)
        limited.append((signin, "/v1/google/signin"))
        for response, template in limited:
            assert conforms(spec, response, template)["code"] == "rate_limited", template
