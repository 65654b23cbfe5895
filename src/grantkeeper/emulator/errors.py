"""The emulator's errors, each in the envelope Google (or the control API) answers with.

- :class:`GoogleOAuthError`: Google's OAuth endpoints (token, revoke, tokeninfo, userinfo):
  an HTTP status and ``{"error", "error_description"}``.
- :class:`GoogleApiError`: Google's API front end (Drive, Photos, RISC, discovery): the JSON
  envelope ``{"error": {"code", "message", ...}}``, in the shape each API answers. The bodies and
  headers are the ones captured from Google (google-protocol.md §7); clients such as google-auth's
  ``AuthorizedSession`` react to the status (a 401 triggers a refresh, a 403 does not), and
  googleapiclient's ``HttpError`` shows ``message`` and ``errors``, so they must match.
- :class:`ControlError`: a refused call of the emulator's own control API (``/emulator/…``),
  ``{"error", "error_description"}`` with a sentence saying what to do.

These are the emulated provider's wire protocol, not grantkeeper errors; no message ever
contains a token or a code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

REALM = 'Bearer realm="https://accounts.google.com/"'
_SIGN_IN_HINT = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


# --------------------------------------------------------------------------------------------
# OAuth endpoints
# --------------------------------------------------------------------------------------------


class GoogleOAuthError(Exception):
    """An answer of Google's OAuth endpoints: HTTP status plus ``{"error", "error_description"}``.

    This is the emulated provider's wire protocol, not a grantkeeper error; the description is
    Google's text and never contains a token or code."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body


class ControlError(Exception):
    """A refused control call; rendered as ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


# --------------------------------------------------------------------------------------------
# API front end
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class GoogleApiError(Exception):
    """An error answered in Google's JSON envelope ``{"error": {...}}``."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.body["error"].get("message", ""))

    def to_response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def _error_info(reason: str, service: str, method: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": service, "method": method},
    }


def credentials_missing(service: str, method: str) -> GoogleApiError:
    """401 for a request without any credential."""
    return GoogleApiError(
        401,
        {
            "error": {
                "code": 401,
                "message": "Request is missing required authentication credential. "
                + _SIGN_IN_HINT,
                "errors": [
                    {
                        "message": "Login Required.",
                        "domain": "global",
                        "reason": "required",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
                "status": "UNAUTHENTICATED",
                "details": [_error_info("CREDENTIALS_MISSING", service, method)],
            }
        },
        {"WWW-Authenticate": REALM},
    )


def invalid_credentials() -> GoogleApiError:
    """401 for an unknown, revoked or expired access token."""
    return GoogleApiError(
        401,
        {
            "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials. " + _SIGN_IN_HINT,
                "errors": [
                    {
                        "message": "Invalid Credentials",
                        "domain": "global",
                        "reason": "authError",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
                "status": "UNAUTHENTICATED",
            }
        },
        {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
    )


def insufficient_scope(service: str, method: str, accepted: Iterable[str]) -> GoogleApiError:
    """403 for a valid token that carries none of the scopes the method accepts."""
    scope = " ".join(sorted(accepted))
    return GoogleApiError(
        403,
        {
            "error": {
                "code": 403,
                "message": "Request had insufficient authentication scopes.",
                "errors": [
                    {
                        "message": "Insufficient Permission",
                        "domain": "global",
                        "reason": "insufficientPermissions",
                    }
                ],
                "status": "PERMISSION_DENIED",
                "details": [_error_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", service, method)],
            }
        },
        {"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


def legacy_error(
    status: int,
    message: str,
    reason: str,
    *,
    location: str | None = None,
    location_type: str = "parameter",
) -> GoogleApiError:
    """An error in the Drive v3 shape: ``errors[]`` with ``domain``/``reason``, no ``status``."""
    item: dict[str, Any] = {"domain": "global", "reason": reason, "message": message}
    if location is not None:
        item["locationType"] = location_type
        item["location"] = location
    return GoogleApiError(status, {"error": {"code": status, "message": message, "errors": [item]}})


_RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RPC_MESSAGE = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
}


def fault_body(status: int) -> dict[str, Any]:
    """The body of an injected API fault that brought no body of its own."""
    return rpc_error(status, _RPC_MESSAGE.get(status, "Injected failure.")).body


def rpc_error(status: int, message: str) -> GoogleApiError:
    """An error in the gRPC-transcoded shape newer APIs (Photos Library) answer with."""
    return GoogleApiError(
        status,
        {
            "error": {
                "code": status,
                "message": message,
                "status": _RPC_STATUS.get(status, "UNKNOWN"),
            }
        },
    )


def without_detail(error: GoogleApiError) -> GoogleApiError:
    """The same error without ``errors[]`` and ``details``: newer APIs (Photos Library) answer
    only ``{"error": {"code", "message", "status"}}``."""
    inner = {k: v for k, v in error.body["error"].items() if k not in ("errors", "details")}
    return GoogleApiError(error.status, {"error": inner}, dict(error.headers))


#: Photos' upload server (``/v1/uploads``) answers any authentication failure, a token without
#: ``photoslibrary.appendonly`` included, with this 71-byte body as ``text/html`` (observed in
#: ShareX/ShareX#6432: ``Server: UploadServer``, ``Content-Length: 71``).
UPLOAD_AUTH_ERROR = b'{\n  "code": 16,\n  "message": "Authentication session is not defined."\n}'


def unimplemented(status: int = 404) -> GoogleApiError:
    """What Google's front end answers for a path no API serves (or a method a path does not
    take): its JSON envelope with ``NOT_FOUND``, so a client's error handling meets the same
    shape as at Google. ``status`` keeps 405 for a known path called with the wrong method."""
    if status == 405:
        return GoogleApiError(
            405,
            {"error": {"code": 405, "message": "Method Not Allowed", "status": "UNIMPLEMENTED"}},
        )
    return GoogleApiError(
        status,
        {"error": {"code": status, "message": "Method not found.", "status": "NOT_FOUND"}},
    )
