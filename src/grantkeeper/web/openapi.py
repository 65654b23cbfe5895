"""The OpenAPI document: problem+json answers, request bodies in two media types, bearer auth.

FastAPI documents what it parses itself. The keeper parses sign-in bodies itself (JSON *or* an
urlencoded form, within a size limit) and answers errors as ``application/problem+json``, so this
module declares those parts: each operation's problem answers by status, request bodies with
both media types, and the component schemas they refer to. FastAPI's own 422 answers are removed:
the keeper answers invalid input with 400 ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPBearer
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from grantkeeper.web.schemas import PROBLEM_MODELS, Problem, RefreshBody, SignInBody

PROBLEM_JSON = "application/problem+json"
_REF = "#/components/schemas/{model}"

#: The service-key scheme: listed under securitySchemes and on every operation whose
#: dependencies include one marked by :func:`needs_service_key`, so /docs can authorize and
#: generated clients send the header.
service_key_scheme = HTTPBearer(
    scheme_name="serviceKey",
    description="A service key from GRANTKEEPER_SERVICE_API_KEYS: Authorization: Bearer <key>.",
    auto_error=False,
)

_STATUS_TEXT = {
    400: "Invalid request (code invalid_request, invalid_code, …)",
    401: "Service key missing or wrong, or the ID token could not be verified",
    403: "Refused: HTTPS required, a missing header, a scope or a limit of the service key",
    404: "Unknown user",
    409: "The grant is revoked: the user must sign in again",
    413: "The body is too large",
    429: "Too many requests: wait Retry-After seconds",
    500: "Configuration or internal error",
    502: "The identity provider answered with an error",
    503: "The provider or the store is unavailable: retry (Retry-After when known)",
    504: "The identity provider did not answer in time: retry",
}

F = TypeVar("F", bound=Callable[..., Any])
_SERVICE_KEY = "__grantkeeper_service_key__"


def needs_service_key(dependency: F) -> F:
    """Mark a dependency that checks the service key: operations using it declare the scheme."""
    setattr(dependency, _SERVICE_KEY, True)
    return dependency


def _uses_service_key(dependant: Dependant) -> bool:
    return any(
        getattr(d.call, _SERVICE_KEY, False) or _uses_service_key(d) for d in dependant.dependencies
    )


#: Component schemas the document needs beyond those FastAPI finds in signatures.
_EXTRA_COMPONENTS: tuple[type[BaseModel], ...] = (*PROBLEM_MODELS, SignInBody, RefreshBody)


def problems(
    *statuses: int, special: Mapping[int, Sequence[type[Problem]]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of an operation for its error statuses, as ``problem+json``.

    ``special`` names problem types with extra members (``insufficient_scope``'s missing
    scopes, …) that a status may carry besides the plain :class:`Problem`.
    """
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        models: list[type[Problem]] = [*(special or {}).get(status, ()), Problem]
        names = dict.fromkeys(model.__name__ for model in models)
        refs = [{"$ref": _REF.format(model=name)} for name in names]
        schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
        answers[status] = {
            "description": _STATUS_TEXT.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": schema}},
        }
    return answers


def request_body(
    model: type[BaseModel], *, form: bool = False, required: bool = True
) -> dict[str, Any]:
    """``openapi_extra`` for a body the route reads itself: JSON, and with ``form`` also an
    urlencoded form with the same fields."""
    ref = {"$ref": _REF.format(model=model.__name__)}
    content: dict[str, Any] = {"application/json": {"schema": ref}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": ref}
    return {"requestBody": {"required": required, "content": content}}


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that adds the problem and body schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        _, definitions = models_json_schema(
            [(model, "validation") for model in _EXTRA_COMPONENTS], ref_template=_REF
        )
        for name, schema in definitions.get("$defs", {}).items():
            schemas.setdefault(name, schema)
        for path in document.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        scheme = service_key_scheme.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        components.setdefault("securitySchemes", {})[service_key_scheme.scheme_name] = scheme
        # The routes as mounted (FastAPI's own walk of included routers, as get_openapi's).
        for context in iter_route_contexts(app.routes):
            route = context.original_route
            if isinstance(route, APIRoute) and _uses_service_key(route.dependant):
                operations = document.get("paths", {}).get(context.path_format, {})
                for method in route.methods or ():
                    if method.lower() in operations:
                        operations[method.lower()]["security"] = [
                            {service_key_scheme.scheme_name: []}
                        ]
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
