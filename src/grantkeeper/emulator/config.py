"""What the emulator can be told: start-up configuration and the settings the control API changes.

Every behaviour google-protocol.md marks as unconfirmed ([U]) is a field here, so a test or a user
who learns what Google really does can change it without touching code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

from grantkeeper.clock import Clock
from grantkeeper.emulator.tls import ServerCertificate

GOOGLE_ISSUER = "https://accounts.google.com"
DAY = 24 * 3600


class EmulatorSettings(BaseModel):
    """Behaviour switches; ``POST /emulator/settings`` accepts any subset of these fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    issuer: str | None = None
    """``iss`` of ID tokens and the discovery ``issuer``; ``None`` means the emulator's base URL.
    Set ``https://accounts.google.com`` for clients that hard-code Google's issuer."""

    access_token_ttl: int = Field(3599, ge=1)
    """Lifetime of access tokens in seconds, reported as ``expires_in`` (Google: 3599)."""

    id_token_ttl: int = Field(3600, ge=1)
    """``exp - iat`` of ID tokens (Google: 3600)."""

    code_ttl: int = Field(600, ge=1)
    """Lifetime of authorization codes in seconds [U: about ten minutes]."""

    testing_mode: bool = False
    """Publishing status "Testing": refresh tokens with non-basic scopes die after 7 days."""

    testing_refresh_lifetime: int = Field(7 * DAY, ge=1)
    """Lifetime of refresh tokens in testing mode."""

    report_testing_expiry: bool = True
    """Send ``refresh_token_expires_in`` for testing-mode refresh tokens too (Google's OAuth
    codelab shows ``604799`` for a "Testing" project; was ``False`` [U])."""

    refresh_idle_expiry: int = Field(180 * DAY, ge=1)
    """A refresh token unused for this long stops working (Google: six months)."""

    max_refresh_tokens: int = Field(100, ge=1)
    """Live refresh tokens per user per client; the oldest silently dies beyond it."""

    server_auth_code_redirect_uris: list[str] = Field(default_factory=lambda: ["", "postmessage"])
    """``redirect_uri`` values a mobile server auth code may be redeemed with. Issue 2 (and the
    two samples of Google's guide) accept both; Google answers ``redirect_uri_mismatch`` to
    ``postmessage`` for an iOS/Android code [O], so set ``[""]`` to test a keeper as strictly as
    Google does."""

    rotate_refresh_tokens: bool = False
    """Answer every refresh with a new refresh token (Google does not). As rotating providers do
    (a reuse window), the presented token keeps working until its successor is first used, so
    a client that died before storing the successor loses nothing."""

    response_delay_ms: int = Field(0, ge=0)
    """Like ``latency_ms`` but after the work is done: the answer is held back, so a client can
    die after the provider acted and before it heard (the crash-safety tests use it)."""

    latency_ms: int = Field(0, ge=0)
    """Added to every answer of the Google endpoints (not the control API)."""

    code_reuse_description: str = "Bad Request"
    """``error_description`` for a used, expired or foreign code [U; 2015-2017: "Code was
    already redeemed."]."""

    unauthorized_client_status: int = 401
    """Status of ``unauthorized_client`` (refresh token of another client) [U]."""

    invalid_scope_description: str = "Bad Request"
    """``error_description`` when a refresh asks for scopes never granted [U]."""

    revoke_error_description: str = "Token expired or revoked"
    """``error_description`` when revoking an unknown or dead token [U]."""

    revoke_success_body: str = "{}"
    """Body of a successful revocation [U: empty or ``{}``]."""

    server_code_azp: Literal["client", "server"] = "client"
    """``azp`` of ID tokens from a server auth code: the app's client (``client``, the likely
    answer) or the server client itself (``server``) [U]."""

    tokeninfo_id_token_header: bool = True
    """tokeninfo for an ID token also returns its ``alg``, ``kid`` and ``typ`` [U]."""

    id_token_iss_form: Literal["issuer", "bare", "alternate"] = "issuer"
    """``iss`` of ID tokens: the issuer as configured, the issuer without ``https://`` (Google's
    ``accounts.google.com``), or each form in turn, so a test proves its verifier takes both as
    Google's documentation says it must."""

    id_token_clock: Literal["emulator", "system"] = "emulator"
    """Which clock stamps ID tokens' ``iat``/``exp``. ``emulator``: the emulator's clock, so a
    keeper that follows it (``Keeper(clock=emulator.state.clock)``) accepts them after the
    clock moves. ``system``: real time, for verifiers on the system clock (google-auth's
    ``verify_token``) in a test that has moved the emulator's clock; everything else (codes,
    token lifetimes) still follows the emulator's clock."""

    include_locale_claim: bool = False
    """Add ``locale`` to ID tokens (Google dropped it from ``claims_supported`` by 2024)."""

    certs_max_age: int = Field(21155, ge=0)
    """``Cache-Control: max-age`` of the certs endpoints (Google: about 5-7 hours)."""

    key_overlap: int = Field(DAY, ge=0)
    """After a key rotation the oldest key stays published this long, then it is retired."""


@dataclass
class EmulatorConfig:
    """How an emulator starts. Everything has a default; ``EmulatorConfig()`` is a fine emulator."""

    base_url: str | None = None
    """Public origin, no trailing slash; ``None`` takes it from each request's Host header."""

    settings: EmulatorSettings = field(default_factory=EmulatorSettings)
    """Initial behaviour settings (``POST /emulator/settings`` changes them later)."""

    clock: Clock | None = None
    """Time source; ``None`` is an ``OffsetClock`` that ``POST /emulator/clock`` advances. A clock
    given here must have ``advance(seconds)`` for the control API to move it."""

    signing_keys: int = 2
    """Keys published at start (Google publishes two)."""

    https: bool = False
    """Serve HTTPS (``run_emulator``, ``grantkeeper emulator --https``) with a certificate for
    127.0.0.1/localhost signed by the local CA in :attr:`data_dir`."""

    data_dir: Path | None = None
    """Where the emulator keeps its CA (``ca.pem``, ``ca-key.pem``) and server certificate;
    ``None`` is :func:`default_data_dir`."""

    state_file: Path | None = None
    """Keep clients and users (with their ``sub``) in this JSON file across restarts
    (``--state FILE``): read at start, rewritten on every change."""

    seed_file: Path | None = None
    """Create the clients and users this JSON file lists at start, and again after a reset
    (``--seed FILE``); see :mod:`grantkeeper.emulator.persistence`."""

    certificate: ServerCertificate | None = None
    """Set by the server when it serves HTTPS: where the CA file is (``GET /emulator/ca.pem``)."""


def default_data_dir() -> Path:
    """``$GRANTKEEPER_DATA_DIR/emulator``, else the user's grantkeeper data directory's."""
    root = os.environ.get("GRANTKEEPER_DATA_DIR") or platformdirs.user_data_dir("grantkeeper")
    return Path(root) / "emulator"
