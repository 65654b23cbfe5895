"""The emulator's own part of the control API under ``/emulator/``: the clock, behaviour
settings, faults, statistics and reset. Each service adds its own calls (``oauth/control.py``:
clients, users, codes; Drive, Photos and RISC in their routers).

Bodies are JSON validated by pydantic; errors are ``{"error", "error_description"}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grantkeeper.emulator.errors import ControlError
from grantkeeper.emulator.faults import ID_TOKEN_FAULTS, Fault
from grantkeeper.emulator.request_log import request_log
from grantkeeper.emulator.state import EmulatorState


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClockIn(_Body):
    advance_seconds: float


class FaultIn(_Body):
    endpoint: str | None = None
    """``token``, ``revoke``, ``tokeninfo``, ``userinfo``, ``certs``, ``discovery``, ``auth``,
    ``id_token``, or an API's name (``drive``, ``photos``)."""
    status: int | None = Field(None, ge=100, le=599)
    body: Any = None
    headers: dict[str, str] = Field(default_factory=dict)
    delay_ms: int = Field(0, ge=0, le=600_000)
    malformed_json: bool = False
    drop_connection: bool = False
    count: int | None = Field(1, ge=1)
    id_token: str | None = None
    """A bad ID token to mint: ``alg_none``, ``wrong_key``, ``unknown_kid``, ``wrong_iss``,
    ``wrong_aud``, ``wrong_azp``, ``expired``, ``iat_future``."""


def _settings_body(state: EmulatorState) -> dict[str, Any]:
    return state.settings.model_dump()


def build_router(state: EmulatorState) -> APIRouter:
    router = APIRouter(prefix="/emulator", tags=["control"])

    @router.get(
        "/ca.pem",
        summary="The CA certificate to trust (HTTPS only)",
        response_class=Response,
        responses={200: {"content": {"application/x-pem-file": {}}}},
    )
    def ca_pem() -> Response:
        certificate = state.config.certificate
        if certificate is None:
            raise ControlError(
                404,
                "not_https",
                "This emulator serves plain HTTP, so it has no CA certificate: start it with "
                "--https (EmulatorConfig(https=True)).",
            )
        return Response(certificate.ca_path.read_bytes(), media_type="application/x-pem-file")

    @router.get("/requests", summary="Calls of Google's endpoints, oldest first (no tokens)")
    def requests(limit: int | None = None) -> list[dict[str, Any]]:
        """Each call's ``time`` (emulator clock), ``method``, ``path`` (no query string),
        ``status`` and ``client_id`` (``null`` when the call does not name one); the last
        1000 are kept, and ``?limit=N`` returns the newest N."""
        if limit is not None and limit < 1:
            raise ControlError(400, "invalid_request", "limit must be a positive number.")
        return request_log(state).list(limit)

    @router.delete("/requests", summary="Forget the request log")
    def clear_requests() -> dict[str, int]:
        log = request_log(state)
        count = len(log.entries)
        log.entries.clear()
        return {"cleared": count}

    @router.get("/clock", summary="The emulator's time")
    def get_clock() -> dict[str, str]:
        return {"now": state.clock.now().isoformat()}

    @router.post("/clock", summary="Move the emulator's clock forward")
    def advance_clock(body: ClockIn) -> dict[str, str]:
        advance = getattr(state.clock, "advance", None)
        if advance is None:
            raise ControlError(400, "fixed_clock", "This emulator's clock cannot be moved.")
        if body.advance_seconds < 0:
            raise ControlError(400, "invalid_request", "The clock only moves forward.")
        advance(body.advance_seconds)
        return {"now": state.clock.now().isoformat()}

    @router.get("/settings", summary="Current behaviour settings")
    def get_settings() -> dict[str, Any]:
        return _settings_body(state)

    @router.post("/settings", summary="Change any subset of the behaviour settings")
    def update_settings(body: dict[str, Any]) -> dict[str, Any]:
        try:
            state.update_settings(**body)
        except ValidationError as error:
            raise ControlError(400, "invalid_settings", _first_problem(error)) from error
        return _settings_body(state)

    @router.get("/faults", summary="Armed faults")
    def list_faults() -> list[dict[str, Any]]:
        return state.faults.list()

    @router.post("/faults", summary="Arm a fault")
    def add_fault(body: FaultIn) -> dict[str, Any]:
        endpoint = body.endpoint or ("id_token" if body.id_token else None)
        if not endpoint:
            raise ControlError(400, "invalid_request", "Name an endpoint (or an id_token fault).")
        if endpoint == "id_token" and body.id_token not in ID_TOKEN_FAULTS:
            raise ControlError(
                400, "invalid_request", f"id_token must be one of {', '.join(ID_TOKEN_FAULTS)}."
            )
        fault = Fault(**(body.model_dump() | {"endpoint": endpoint}))
        state.faults.add(fault)
        return fault.describe()

    @router.delete("/faults", summary="Disarm faults (all, or one endpoint's)")
    def clear_faults(endpoint: str | None = None) -> dict[str, int]:
        return {"cleared": state.faults.clear(endpoint)}

    @router.get("/stats", summary="Calls per endpoint, token calls by grant type, refreshes")
    def stats() -> dict[str, Any]:
        return state.stats()

    @router.post("/reset", summary="Forget everything except the signing keys")
    def reset() -> dict[str, bool]:
        state.reset()
        return {"reset": True}

    return router


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(p) for p in problem["loc"]) or "body"
    return f"{where}: {problem['msg']}"
