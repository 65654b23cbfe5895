"""One exception tree for grantkeeper. ``docs/errors.md`` is generated from it
(``python -m grantkeeper.errors_doc``; a test keeps the two equal).

Every error a user or an operator can meet carries a stable ``code`` (the ``code`` member of the
RFC 9457 problem document on the wire), an HTTP ``status``, an ``advice`` sentence saying what to
do, and whether retrying the same call may succeed (``retryable``). The web layer maps any
:class:`GrantkeeperError` to ``application/problem+json`` in one place; the CLI prints
``code: message`` and ``advice``. Messages never contain tokens or codes.

::

    GrantkeeperError
    ├── ConfigurationError (ValueError)          config_invalid        500
    ├── InvalidRequest (ValueError)              invalid_request       400
    │   ├── CsrfHeaderMissing                    csrf_header_missing   403
    │   ├── InsecureTransport                    https_required        403
    │   ├── PayloadTooLarge                      payload_too_large     413
    │   └── InvalidSecurityEvent                 invalid_security_event 400
    ├── Unauthorized                             unauthorized          401
    ├── ServiceKeyLimit                          service_key_limit     403
    ├── InvalidCode                              invalid_code          400
    ├── UntrustedIdToken                         untrusted_id_token    401
    │   └── NonceMismatch                        nonce_mismatch        400
    ├── SignInRefused                            sign_in_refused       403
    ├── UnknownUser                              unknown_user          404
    ├── MissingScopes                            insufficient_scope    403
    ├── GrantRevoked                             grant_revoked         409
    ├── ProviderError                            provider_error        502
    │   └── ProviderUnavailable                  provider_unavailable  503 (retryable)
    │       └── ProviderTimeout                  provider_timeout      504 (retryable)
    ├── SignInIncomplete                         sign_in_incomplete    503 (sign in again)
    ├── RateLimited                              rate_limited          429 (retryable)
    ├── StoreUnavailable                         store_unavailable     503 (retryable)
    ├── TokenDecryptionError                     token_undecryptable   500
    └── KeeperUnreachable                        keeper_unreachable    503 (retryable)

``KeeperUnreachable`` is raised only by :mod:`grantkeeper.client`, on the caller's side of the
token API; every other error comes back from the keeper's problem documents as the same class.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GrantkeeperError(Exception):
    """Root of every error grantkeeper raises on purpose."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    advice: ClassVar[str] = "This is a bug in grantkeeper; please report it with the log lines."
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str | None = None, *, public_detail: str | None = None, **extra: Any
    ) -> None:
        self.message = message or self.title
        #: What a public answer says instead of ``message`` when the message names
        #: infrastructure (database host, user, port, file paths): logs and the CLI keep it all.
        self.public_detail = public_detail
        #: Extra members for the problem document (never secrets).
        self.extra: dict[str, Any] = extra
        super().__init__(self.message)

    @property
    def public_message(self) -> str:
        """The message for an HTTP answer: never infrastructure."""
        return self.public_detail or self.message

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": f"https://grantkeeper.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.public_message,
            "advice": self.advice,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class ConfigurationError(GrantkeeperError, ValueError):
    code = "config_invalid"
    title = "Configuration is invalid"
    advice = "Fix the setting named in the message (GRANTKEEPER_* variables or .env) and restart."


class InvalidRequest(GrantkeeperError, ValueError):
    code = "invalid_request"
    status = 400
    title = "Invalid request"
    advice = "Send the fields the API documents at /docs."


class CsrfHeaderMissing(InvalidRequest):
    code = "csrf_header_missing"
    status = 403
    title = "X-Requested-With header missing"
    advice = (
        "Send the X-Requested-With header with the request, as Google's guide says; "
        "without it the request could be forged."
    )


class InsecureTransport(InvalidRequest):
    code = "https_required"
    status = 403
    title = "HTTPS required"
    advice = (
        "Call this endpoint over HTTPS (a trusted proxy must send X-Forwarded-Proto: https), "
        "or set GRANTKEEPER_ALLOW_INSECURE_HTTP=true for local development."
    )


class PayloadTooLarge(InvalidRequest):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"
    advice = "Send only the documented fields; a server auth code is at most 256 bytes."


class InvalidSecurityEvent(InvalidRequest):
    """A Cross-Account Protection SET was refused. ``err`` is RFC 8935 §2.4's error code."""

    code = "invalid_security_event"
    status = 400
    title = "Security event token rejected"
    advice = (
        "Only Google's RISC issuer (or the emulator's) can deliver events here; check "
        "GRANTKEEPER_ISSUER and the client ids if genuine events are refused."
    )

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description, err=err, description=description)


class Unauthorized(GrantkeeperError):
    code = "unauthorized"
    status = 401
    title = "Service key missing or wrong"
    advice = "Send Authorization: Bearer <key> with a key listed in GRANTKEEPER_SERVICE_API_KEYS."


class ServiceKeyLimit(GrantkeeperError):
    """The service key is valid but not allowed this: ``limit`` is ``operation`` or ``scopes``,
    ``allowed`` what the key may do, ``key`` its name."""

    code = "service_key_limit"
    status = 403
    title = "Beyond the service key's limits"
    advice = (
        "Use a key allowed this operation and these scopes (grantkeeper service-keys lists each "
        "key's limits), or widen the key's limits in GRANTKEEPER_SERVICE_API_KEYS."
    )

    def __init__(self, key: str, limit: str, allowed: list[str], message: str) -> None:
        super().__init__(message, key=key, limit=limit, allowed=allowed)


class InvalidCode(GrantkeeperError):
    code = "invalid_code"
    status = 400
    title = "Server auth code rejected"
    advice = (
        "Sign the user in again to get a fresh one-time server auth code; a code is malformed, "
        "expired or already used."
    )


class UntrustedIdToken(GrantkeeperError):
    """The ID token failed verification.

    ``reason`` says which check failed and by how much (``iat is 7200 s in the future …``,
    ``authorized party (azp) '…' is not an allowed client id``); ``check`` names the check
    (``azp``, ``iat``, ``kid`` …). Both are in ``str()``, the problem body and the log: they
    hold claim names, client ids, issuers and times, never the token.
    """

    code = "untrusted_id_token"
    status = 401
    title = "ID token could not be verified"
    advice = (
        "The 'check' member names what failed: azp/aud means GRANTKEEPER_ALLOWED_CLIENT_IDS "
        "lacks the app's client id; iat/exp/nbf means a clock is off; kid means the signing "
        "keys changed (retry). Then sign the user in again."
    )

    def __init__(
        self, reason: str, message: str | None = None, *, check: str | None = None, **extra: Any
    ) -> None:
        self.reason = reason
        self.check = check or id_token_check(reason)
        super().__init__(
            message or f"The ID token was refused: {reason}.",
            check=self.check,
            reason=reason,
            **extra,
        )


#: The first words of each ID-token refusal reason -> the check that failed.
_ID_TOKEN_CHECKS = (
    ("no ID token", "id_token"),
    ("malformed", "format"),
    ("algorithm", "alg"),
    ("header has a 'crit'", "crit"),
    ("header has no key id", "kid"),
    ("key id", "kid"),
    ("unknown key id", "kid"),
    ("signature", "signature"),
    ("missing required claim", "claims"),
    ("expired", "exp"),
    ("issuer", "iss"),
    ("iat ", "iat"),
    ("nbf ", "nbf"),
    ("claim 'exp'", "exp"),
    ("claim 'iat'", "iat"),
    ("lifetime", "lifetime"),
    ("audience", "aud"),
    ("several audiences", "aud"),
    ("authorized party", "azp"),
    ("at_hash", "at_hash"),
    ("nonce", "nonce"),
)


def id_token_check(reason: str) -> str:
    """Which check an ID-token refusal reason is about (``other`` if none matches)."""
    for prefix, check in _ID_TOKEN_CHECKS:
        if reason.startswith(prefix):
            return check
    return "other"


class SignInRefused(GrantkeeperError):
    """The app refused this sign-in in its decision hook (``Keeper.sign_in(…, decide=…)``).

    Raise it from the hook with a reason the app's client may see; nothing is stored.
    """

    code = "sign_in_refused"
    status = 403
    title = "The app refused this sign-in"
    advice = (
        "The app's own rule turned the user away (the detail says why). Nothing was stored; "
        "the user can sign in again once the app allows it."
    )

    def __init__(self, reason: str, **extra: Any) -> None:
        self.reason = reason
        super().__init__(reason, **extra)


class NonceMismatch(UntrustedIdToken):
    """The ID token does not carry the ``nonce`` the app gave Google Sign-In (OIDC Core
    §3.1.3.7 step 11): the code was not issued to this app session."""

    code = "nonce_mismatch"
    status = 400
    title = "The sign-in is not bound to this session"
    advice = (
        "Send the nonce the app gave Google Sign-In for this sign-in (GIDSignIn's nonce, Google "
        "Identity Services' nonce) with the code; sign the user in again if it was lost."
    )


class UnknownUser(GrantkeeperError):
    code = "unknown_user"
    status = 404
    title = "Unknown user"
    advice = "The user has never signed in with this backend (or was forgotten); sign in first."


class UnknownWebhook(GrantkeeperError):
    code = "unknown_webhook"
    status = 404
    title = "Unknown webhook notification"
    advice = (
        "Use an id from `grantkeeper webhooks list` (or GET /v1/manage/webhooks): the msg_… "
        "value the app received as webhook-id."
    )

    def __init__(self, unknown: list[str]) -> None:
        self.unknown = sorted(unknown)
        super().__init__(
            "No stored webhook notification has the id " + ", ".join(self.unknown) + ".",
            unknown_ids=self.unknown,
        )


class MissingScopes(GrantkeeperError):
    code = "insufficient_scope"
    status = 403
    title = "The grant lacks a scope"
    advice = (
        "Ask the user for the missing scopes with incremental authorization "
        "(include_granted_scopes=true), then send the new server auth code to sign in again."
    )

    def __init__(self, missing: list[str], message: str | None = None) -> None:
        self.missing = sorted(missing)
        super().__init__(
            message or "The grant does not include: " + " ".join(self.missing),
            missing_scopes=self.missing,
        )


class GrantRevoked(GrantkeeperError):
    code = "grant_revoked"
    status = 409
    title = "The grant was revoked"
    advice = "The user must sign in again to give the app offline access."

    def __init__(self, reason: str, message: str | None = None, **extra: Any) -> None:
        self.reason = reason
        super().__init__(
            message or f"The grant is no longer valid ({reason}).", reason=reason, **extra
        )


class ProviderError(GrantkeeperError):
    code = "provider_error"
    status = 502
    title = "The identity provider answered with an error"
    advice = "Check the provider's status and the client configuration; the log has details."


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
    status = 503
    title = "The identity provider is unavailable"
    advice = "Retry later; nothing was lost and the grant is unchanged."
    retryable = True
    #: False when the request never left (connection refused): nothing reached the provider.
    request_sent: bool = True


class ProviderTimeout(ProviderUnavailable):
    code = "provider_timeout"
    status = 504
    title = "The identity provider did not answer in time"


class SignInIncomplete(GrantkeeperError):
    """A sign-in failed after the provider may have redeemed the one-time code (its answer was
    lost, its signing keys could not be fetched, the store could not keep the result): the same
    code cannot succeed again, so the message says so instead of "retry later"."""

    code = "sign_in_incomplete"
    status = 503
    title = "The sign-in could not be completed"
    advice = (
        "Sign the user in again to get a new server auth code: Google has used up the one sent, "
        "so retrying it cannot succeed. Nothing was stored for this attempt."
    )


class RateLimited(GrantkeeperError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"
    advice = (
        "Wait for the Retry-After seconds before trying again; raise the limit in the settings "
        "(GRANTKEEPER_SIGNIN_RATE_PER_MINUTE, GRANTKEEPER_TOKEN_RATE_PER_MINUTE) if it is too low "
        "for real traffic."
    )
    retryable = True


class StoreUnavailable(GrantkeeperError):
    code = "store_unavailable"
    status = 503
    title = "The grant store is unavailable"
    advice = "Check GRANTKEEPER_DATABASE_URL and that the database is up; then retry."
    retryable = True


class TokenDecryptionError(GrantkeeperError):
    code = "token_undecryptable"
    status = 500
    title = "A stored token could not be decrypted"
    advice = (
        "Make sure GRANTKEEPER_ENCRYPTION_KEYS still holds the key the token was written with "
        "(grantkeeper keys status lists key ids in use)."
    )


class KeeperUnreachable(GrantkeeperError):
    """The keeper's HTTP API could not be reached, or answered with something that is not a
    problem document (a proxy's error page). Raised by :mod:`grantkeeper.client` only."""

    code = "keeper_unreachable"
    status = 503
    title = "The keeper could not be reached"
    advice = (
        "Check the keeper's URL and that it is up (GET /readyz); the client already retried. "
        "Nothing was changed on your side."
    )
    retryable = True
