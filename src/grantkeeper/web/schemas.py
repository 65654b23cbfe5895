"""The HTTP API's contract: a Pydantic model for every request body and every answer.

Routes declare these models so ``/openapi.json`` (and ``/docs``) describe each body exactly, and
client generators get types. Answers are built by the keeper's results (``to_json``); the test
suite validates live answers against these schemas, so the two cannot drift apart. Answer models
forbid extra members (``additionalProperties: false``): an undocumented field is a test failure.
Problem documents (RFC 9457) allow extension members, as the RFC says they may.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Platform = Literal["ios", "android", "web"]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- requests ------------------------------------------------------------------------------------


class SignInBody(BaseModel):
    """What the app POSTs to ``/v1/google/signin``, as JSON or as an urlencoded form."""

    # A form from a web page may carry fields of its own; they are ignored, not refused.
    model_config = ConfigDict(extra="ignore")

    code: str = Field(
        min_length=1,
        max_length=256,
        description="The one-time server auth code (GIDSignIn's serverAuthCode, Android's "
        "server auth code, or the code of Google Identity Services' code client).",
    )
    platform: Platform = Field(
        default="ios",
        description="Which app got the code; chooses the redirect_uri of the exchange.",
    )
    nonce: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="The nonce the app gave Google Sign-In; the ID token must carry it.",
    )


class RefreshBody(BaseModel):
    """What a worker POSTs to ``/v1/users/{sub}/token/refresh`` (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    rejected_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="The access token Google just refused (401). The keeper refreshes unless "
        "it already stores a newer token, so many workers rejecting the same token cause one "
        "refresh. Without it the keeper refreshes (concurrent requests share one refresh).",
    )


# -- answers -------------------------------------------------------------------------------------


class UserAnswer(_Answer):
    """The verified profile: the ID token's claims (Google's guide lists them)."""

    sub: str = Field(description="Google's stable user id: key your own account by it.")
    email: str | None = None
    email_verified: bool | None = None
    name: str | None = None
    picture: str | None = None
    locale: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    hd: str | None = Field(default=None, description="Google Workspace domain, if any.")


class SignInGrant(_Answer):
    """The state of the grant after a sign-in."""

    client_id: str = Field(description="The server (web) client that holds the grant.")
    scopes: list[str] = Field(description="Every scope the grant holds now.")
    added_scopes: list[str] = Field(description="Scopes this sign-in added.")
    offline: bool = Field(description="Whether a refresh token is stored (offline access).")
    refresh_token_expires_at: datetime | None = Field(
        default=None, description="When a time-limited grant ends (null: no limit)."
    )
    new_user: bool
    offline_reason: str | None = Field(default=None, description="Only when offline is false: why.")
    action: str | None = Field(
        default=None, description="Only when offline is false: what the app must do."
    )


class SignInAnswer(_Answer):
    user: UserAnswer
    grant: SignInGrant
    replayed: bool = Field(
        description="True when this answers a retried POST of the same code (no second "
        "exchange took place)."
    )


class TokenAnswer(_Answer):
    access_token: str = Field(description="Send it to Google APIs as Authorization: Bearer.")
    token_type: Literal["Bearer"]
    expires_at: datetime = Field(description="UTC; at least the refresh margin away.")
    scopes: list[str] = Field(description="Every scope the token carries.")


class DisconnectAnswer(_Answer):
    sub: str
    revoked_at_provider: bool = Field(description="Google confirmed the revocation.")
    revocation_pending: bool = Field(
        description="Google could not be reached; grantkeeper sweep retries the revocation."
    )
    forgotten: bool = Field(description="The profile was erased too.")
    grants: int = Field(description="How many grants the user had.")


class HealthAnswer(_Answer):
    status: Literal["ok"]


class ReadinessAnswer(_Answer):
    status: Literal["ok", "unavailable"]
    problems: list[str] = Field(default_factory=list)


class RiscEventOutcome(_Answer):
    event: str
    outcome: str
    grants_changed: int


class RiscReceipt(_Answer):
    jti: str
    duplicate: bool = Field(description="A redelivery: acknowledged, not acted on again.")
    events: list[RiscEventOutcome]


# -- problems (RFC 9457) -------------------------------------------------------------------------


class Problem(BaseModel):
    """An RFC 9457 problem document with grantkeeper's stable ``code`` and ``advice``."""

    # RFC 9457 §3.2: problem types may carry extension members.
    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the problem type.")
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code; switch on this.")
    detail: str = Field(description="What went wrong in this occurrence (never a secret).")
    advice: str = Field(description="What to do about it.")
    instance: str | None = Field(default=None, description="The request path.")
    retry_after: int | None = Field(
        default=None, description="Seconds to wait before retrying (also sent as Retry-After)."
    )


class ReconsentIos(_Answer):
    additional_scopes: list[str] = Field(description="For GIDSignIn's additionalScopes.")
    how: str


class ReconsentAndroid(_Answer):
    scopes: list[str] = Field(description="For the authorization request, offline access.")
    how: str


class ReconsentWeb(_Answer):
    authorization_url: str | None = Field(
        default=None,
        description="Google's authorization URL with include_granted_scopes=true, "
        "access_type=offline, login_hint, and prompt=consent when a refresh token is needed "
        "(add your own state).",
    )
    how: str


class Reconsent(_Answer):
    """What the app must do to get the grant back, per platform."""

    scopes: list[str] = Field(description="The scopes to ask the user for.")
    refresh_token_needed: bool = Field(
        description="The keeper has no usable refresh token: consent must be shown again."
    )
    ios: ReconsentIos
    android: ReconsentAndroid
    web: ReconsentWeb


class MissingScopesProblem(Problem):
    """``insufficient_scope`` (403): the grant lacks a requested scope."""

    missing_scopes: list[str] = Field(description="The scopes to ask the user for.")
    reconsent: Reconsent | None = None


class GrantRevokedProblem(Problem):
    """``grant_revoked`` (409): the grant is dead; the user must sign in again."""

    reason: str = Field(
        description="Why: revoked, idle_expired, time_limited_access_expired, "
        "reauthentication_required, no_refresh_token, disconnect, a RISC event, …"
    )
    grant_status: str | None = Field(default=None, description="The stored grant's status.")
    reconsent: Reconsent | None = None


class UntrustedIdTokenProblem(Problem):
    """``untrusted_id_token`` (401): which check of the ID token failed, and by how much."""

    check: str = Field(
        description="The check that failed: azp, aud, iss, iat, exp, nbf, lifetime, kid, alg, "
        "signature, at_hash, nonce, format, claims, id_token, other."
    )
    reason: str = Field(
        description="What failed, e.g. 'iat is 7200 s in the future (…); leeway is 60 s' "
        "(claim names, client ids, issuers and times; never the token)."
    )


class ServiceKeyLimitProblem(Problem):
    """``service_key_limit`` (403): the key may not do this operation or ask for these scopes."""

    key: str = Field(description="The key's name (never the key).")
    limit: Literal["operation", "scopes"]
    allowed: list[str] = Field(description="The operations or scopes the key is allowed.")


class SecurityEventProblem(Problem):
    """``invalid_security_event`` (400): RFC 8935 §2.4's ``err`` and ``description``."""

    err: str
    description: str


#: Every problem schema the OpenAPI document carries as a component.
PROBLEM_MODELS: tuple[type[Problem], ...] = (
    Problem,
    MissingScopesProblem,
    GrantRevokedProblem,
    UntrustedIdTokenProblem,
    ServiceKeyLimitProblem,
    SecurityEventProblem,
)


# -- management ----------------------------------------------------------------------------------


class GrantState(_Answer):
    """A grant's state: never a token."""

    client_id: str
    status: str = Field(description="active, revoked, pending_revocation, disconnected, disabled")
    status_reason: str | None = None
    status_changed_at: datetime | None = None
    offline: bool
    scopes: list[str]
    access_token_expires_at: datetime | None = None
    refresh_token_expires_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None
    last_refreshed_at: datetime | None = None
    version: int


class ManagedUser(UserAnswer):
    grants: list[GrantState]


class UsersPage(_Answer):
    users: list[ManagedUser]
    next: str | None = Field(description="Pass as ?after= for the next page; null on the last.")


class AuditRecord(_Answer):
    id: int
    at: datetime
    kind: str = Field(description="sign_in, token, refresh, disconnect, forget, risc, …")
    sub: str | None
    client_id: str | None
    outcome: str
    detail: dict[str, Any] = Field(description="What happened (never a token).")


class UserDetail(_Answer):
    user: UserAnswer
    grants: list[GrantState]
    history: list[AuditRecord] = Field(description="The user's audit events, newest first.")


class AuditPage(_Answer):
    events: list[AuditRecord]
    next: str | None = Field(description="Pass as ?before= for the next page; null on the last.")


class WebhookDelivery(_Answer):
    """A webhook notification in the outbox and where its delivery stands (not its payload)."""

    id: str = Field(description="The webhook-id the app receives on every attempt (msg_…).")
    type: str = Field(description="grant.revoked, grant.recovered, grant.expiring, …")
    state: Literal["pending", "delivered", "failed"]
    attempts: int = Field(description="Delivery attempts started.")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When pending: the next attempt.")
    delivered_at: datetime | None
    last_error: str | None = Field(description="How the last failed attempt ended (HTTP 500, …).")


class WebhooksPage(_Answer):
    webhooks: list[WebhookDelivery]
    next: str | None = Field(description="Pass as ?before= for the next page; null on the last.")
