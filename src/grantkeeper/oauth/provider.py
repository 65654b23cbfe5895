"""The async shell that talks to the provider (Google or the emulator — same code path).

:class:`OAuthProvider` owns one ``httpx.AsyncClient`` and does only I/O, caching and retries;
every decision is a pure function in :mod:`.token_endpoint`, :mod:`.discovery`, :mod:`.jwks`,
:mod:`.id_token` and :mod:`.http_cache`.

Retry rules (tenacity, :mod:`.retry`):

* Discovery, JWKS, refresh and revoke are idempotent: retried on connection failures, timeouts,
  dropped connections, 408/429/5xx and Google's transient error codes.
* A code exchange is *not* idempotent: a server auth code is single use, and RFC 6749 §4.1.2 lets
  the provider revoke every token issued from a code that is redeemed twice. So it is retried
  only when the provider cannot have redeemed the code: the connection was never made
  (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``), or the provider refused the request
  before processing it (429, 503). A read timeout, a dropped connection after the request was
  sent, or a 500/502/504 may hide a redeemed code; the caller gets ``ProviderUnavailable``
  /``ProviderTimeout`` and the app gets a new code from a fresh sign-in.
* ``invalid_grant`` is never retried.

Log lines carry the endpoint, status, attempt, latency and outcome — never a token, a code or the
client secret (requests send them in form bodies, never in URLs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

import httpx
from joserfc.jwk import RSAKey

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import (
    ConfigurationError,
    GrantkeeperError,
    InvalidRequest,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    SignInIncomplete,
    UntrustedIdToken,
)
from grantkeeper.oauth.client_secrets import ClientSecrets, load_client_secrets
from grantkeeper.oauth.discovery import ProviderMetadata, discovery_url, parse_provider_metadata
from grantkeeper.oauth.http_cache import cache_lifetime
from grantkeeper.oauth.id_token import (
    IdTokenPolicy,
    VerifiedIdentity,
    read_header,
    verify_id_token,
)
from grantkeeper.oauth.jwks import JwksCache, KeyLookup, parse_jwks
from grantkeeper.oauth.retry import RetryPolicy, retry_after_seconds, send_with_retries
from grantkeeper.oauth.token_endpoint import (
    MOBILE_REDIRECT_URIS,
    Platform,
    TokenResponse,
    authorization_code_form,
    is_transient,
    is_web_redirect_uri,
    parse_error_body,
    parse_token_response,
    redirect_uri_for,
    refresh_token_form,
    revoke_error,
)
from grantkeeper.tracing import span

if TYPE_CHECKING:
    # Only the type: settings load client secrets through this package (no import cycle).
    from grantkeeper.settings import Settings

logger = logging.getLogger("grantkeeper.oauth")

_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """Cache bounds (seconds) and the retry budget; defaults suit Google."""

    discovery_floor: float = 60.0
    discovery_ceiling: float = 24 * 3600.0
    discovery_default: float = 3600.0
    jwks_floor: float = 60.0
    jwks_ceiling: float = 24 * 3600.0
    jwks_default: float = 3600.0
    jwks_min_refetch_interval: float = 30.0
    """At most one JWKS fetch per this many seconds for unknown key ids."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of :meth:`OAuthProvider.sign_in`: the tokens and who they belong to."""

    tokens: TokenResponse
    identity: VerifiedIdentity


class OAuthProvider:
    """Discovery, token endpoint, revocation and ID-token verification for one OAuth client.

    Args:
        settings: issuer, allowed client ids, leeway, timeouts, mobile ``redirect_uri``.
        client_secrets: the server client; loaded from ``settings.client_secrets_file`` if None.
        clock: the time source for expiry, leeway and caches.
        transport: an httpx transport, e.g. ``httpx.ASGITransport(app=emulator_app)``.
        options: cache bounds and the retry budget (default: ``settings.provider_attempts``
            attempts with exponential backoff and jitter).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client_secrets: ClientSecrets | None = None,
        clock: Clock = SYSTEM_CLOCK,
        transport: httpx.AsyncBaseTransport | None = None,
        options: ProviderOptions | None = None,
    ) -> None:
        if client_secrets is None:
            if settings.client_secrets_file is None:
                raise ConfigurationError(
                    "GRANTKEEPER_CLIENT_SECRETS_FILE is not set; point it at the server "
                    "client's client_secret_*.json."
                )
            client_secrets = load_client_secrets(settings.client_secrets_file)
        if settings.mobile_redirect_uri not in MOBILE_REDIRECT_URIS:
            raise ConfigurationError(
                "GRANTKEEPER_MOBILE_REDIRECT_URI must be '' or 'postmessage', the redirect URIs "
                "Google accepts for iOS/Android server auth codes."
            )
        if not is_web_redirect_uri(settings.web_redirect_uri):
            raise ConfigurationError(
                "GRANTKEEPER_WEB_REDIRECT_URI must be 'postmessage' (popup sign-in) or the "
                "http(s) URL your web page registered as its redirect URI."
            )
        self.settings = settings
        self.client_secrets = client_secrets
        self.clock = clock
        self.options = options or ProviderOptions(
            retry=RetryPolicy(attempts=settings.provider_attempts)
        )
        self.issuer = settings.issuer
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": "grantkeeper"},
            follow_redirects=False,
        )
        self._metadata: ProviderMetadata | None = None
        self._metadata_expires_at: datetime | None = None
        self._discovery_lock = asyncio.Lock()
        self._jwks = JwksCache(min_refetch_interval=self.options.jwks_min_refetch_interval)
        self._jwks_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- discovery ---------------------------------------------------------------------------

    async def discover(self) -> ProviderMetadata:
        """The provider's metadata, fetched and cached per its Cache-Control.

        A failed re-fetch keeps serving the previous metadata (endpoints seldom move); with
        nothing cached the failure is raised.
        """
        async with self._discovery_lock:
            now = self.clock.now()
            if self._metadata and self._metadata_expires_at and now < self._metadata_expires_at:
                return self._metadata
            try:
                response = await self._get("discovery", discovery_url(self.issuer))
                document = _json_or_raise("discovery", response)
                metadata = parse_provider_metadata(document, issuer=self.issuer)
            except GrantkeeperError as error:
                if self._metadata is None:
                    raise
                logger.warning("discovery re-fetch failed (%s); keeping cached metadata", error)
                return self._metadata
            opts = self.options
            lifetime = cache_lifetime(
                response.headers,
                floor=opts.discovery_floor,
                ceiling=opts.discovery_ceiling,
                default=opts.discovery_default,
            )
            self._metadata = metadata
            self._metadata_expires_at = now + timedelta(seconds=lifetime)
            return metadata

    # -- token endpoint ------------------------------------------------------------------------

    async def exchange_code(
        self, code: str, platform: Platform = "ios", *, code_verifier: str | None = None
    ) -> TokenResponse:
        """Redeem a server auth code (``authorization_code`` grant).

        Raises:
            InvalidCode: the provider said ``invalid_grant`` (malformed, expired, used).
            ProviderError: a configuration problem (redirect URI, client id/secret).
            ProviderUnavailable, ProviderTimeout: the provider could not be reached in time.
        """
        if not code:
            raise InvalidRequest("The server auth code is empty.")
        metadata = await self.discover()
        redirect_uri = redirect_uri_for(
            platform,
            mobile_redirect_uri=self.settings.mobile_redirect_uri,
            web_redirect_uri=self.settings.web_redirect_uri,
        )
        form = authorization_code_form(
            code,
            client_id=self.client_secrets.client_id,
            client_secret=self.client_secrets.client_secret,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
        response = await self._post(
            "token:authorization_code",
            metadata.token_endpoint,
            form,
            retry_response=lambda r: r.status_code in (429, 503),
            retry_exception=lambda e: isinstance(e, _NEVER_SENT),
        )
        with self._passing_retry_after(response):
            return parse_token_response(
                response.status_code,
                response.content,
                grant_type="authorization_code",
                now=self.clock.now(),
                platform=platform,
                redirect_uri=redirect_uri,
            )

    async def refresh(
        self, refresh_token: str, scopes: Iterable[str] | None = None
    ) -> TokenResponse:
        """A fresh access token (``refresh_token`` grant); ``scopes`` narrows the token.

        Raises:
            RefreshTokenRejected: ``invalid_grant`` — the grant is dead (never retried).
            ProviderError, ProviderUnavailable, ProviderTimeout: as for :meth:`exchange_code`.
        """
        metadata = await self.discover()
        form = refresh_token_form(
            refresh_token,
            client_id=self.client_secrets.client_id,
            client_secret=self.client_secrets.client_secret,
            scopes=frozenset(scopes) if scopes else None,
        )
        response = await self._post(
            "token:refresh_token",
            metadata.token_endpoint,
            form,
            retry_response=_transient_response,
            retry_exception=_transport_failure,
        )
        with self._passing_retry_after(response):
            return parse_token_response(
                response.status_code,
                response.content,
                grant_type="refresh_token",
                now=self.clock.now(),
            )

    async def revoke(
        self, token: str, *, retry: bool = True, time_limit: float | None = None
    ) -> None:
        """Revoke an access or refresh token (RFC 7009); an already dead token counts as done.

        ``retry=False`` makes one attempt (with ``time_limit`` seconds at most): for callers that
        record a failure as pending and retry later rather than keep their own caller waiting.
        """
        metadata = await self.discover()
        if metadata.revocation_endpoint is None:
            raise ProviderError("The provider advertises no revocation_endpoint.")
        response = await self._post(
            "revoke",
            metadata.revocation_endpoint,
            {"token": token},
            retry_response=_transient_response if retry else _never,
            retry_exception=_transport_failure if retry else _never,
            time_limit=time_limit,
        )
        error = revoke_error(response.status_code, response.content)
        if error is not None:
            raise error

    # -- ID tokens -----------------------------------------------------------------------------

    async def verify_id_token(
        self, id_token: str, *, access_token: str | None = None, nonce: str | None = None
    ) -> VerifiedIdentity:
        """Verify an ID token from this provider for our server client (see :mod:`.id_token`).

        Raises:
            UntrustedIdToken: with ``reason`` for the log.
            ProviderUnavailable: the keys could not be fetched.
        """
        header = read_header(id_token)
        metadata = await self.discover()
        key = await self._signing_key(header.kid, metadata)
        policy = IdTokenPolicy(
            issuers=metadata.accepted_issuers,
            audience=self.client_secrets.client_id,
            allowed_azp=frozenset(self.settings.allowed_client_ids),
            leeway_seconds=self.settings.id_token_leeway_seconds,
        )
        return verify_id_token(
            id_token,
            key,
            policy=policy,
            now=self.clock.now(),
            access_token=access_token,
            nonce=nonce,
        )

    async def sign_in(
        self, code: str, platform: Platform = "ios", *, nonce: str | None = None
    ) -> SignIn:
        """Exchange a code and verify the ID token that came with it (``at_hash`` included):
        :meth:`exchange_for_sign_in` then :meth:`verify_sign_in`.

        Tokens of a sign-in whose ID token is missing or untrusted are dropped here; the keeper
        decides whether to revoke them (:mod:`grantkeeper.keeper.sign_in_decision`): at Google,
        revoking any token of a grant ends the user's whole grant to this client.

        Raises:
            UntrustedIdToken: no ID token, or it failed verification.
            and everything :meth:`exchange_code` raises.
        """
        tokens = await self.exchange_for_sign_in(code, platform)
        return SignIn(tokens=tokens, identity=await self.verify_sign_in(tokens, nonce=nonce))

    async def exchange_for_sign_in(self, code: str, platform: Platform = "ios") -> TokenResponse:
        """The exchange of a sign-in: a lost answer that may have redeemed the code is
        :class:`SignInIncomplete` (the same code cannot succeed), not "retry later"."""
        await self.discover()  # a discovery failure happens before the code is ever sent
        try:
            return await self.exchange_code(code, platform)
        except ProviderUnavailable as error:
            if not _may_have_redeemed(error):
                raise  # refused before processing or never sent: the code is still good
            raise SignInIncomplete(
                "The provider may have redeemed the server auth code, but its answer was lost "
                f"({error.message})."
            ) from None

    async def verify_sign_in(
        self, tokens: TokenResponse, *, nonce: str | None = None
    ) -> VerifiedIdentity:
        """Verify the ID token of an exchanged sign-in; keys that cannot be fetched make it
        :class:`SignInIncomplete` (the code is spent)."""
        if tokens.id_token is None:
            raise UntrustedIdToken(
                "no ID token in the token response (the app must request the openid, "
                "email or profile scope)"
            )
        try:
            return await self.verify_id_token(
                tokens.id_token, access_token=tokens.access_token, nonce=nonce
            )
        except ProviderUnavailable as error:
            raise SignInIncomplete(
                "The server auth code was redeemed, but the provider's signing keys could not be "
                f"fetched to verify who signed in ({error.message})."
            ) from None

    async def _signing_key(self, kid: str, metadata: ProviderMetadata) -> RSAKey:
        async with self._jwks_lock:
            plan = self._jwks.plan(kid, self.clock.now())
            if plan is KeyLookup.FETCH:
                await self._fetch_jwks(metadata.jwks_uri)
            key = (self._jwks.keys or {}).get(kid)
        if key is None:
            why = (
                "re-fetch rate-limited"
                if plan is KeyLookup.UNKNOWN_KID
                else "not in the freshly fetched JWKS"
            )
            raise UntrustedIdToken(f"unknown key id {kid[:64]!r} ({why})")
        return key

    async def _fetch_jwks(self, jwks_uri: str) -> None:
        response = await self._get("jwks", jwks_uri)
        keys = parse_jwks(_json_or_raise("jwks", response))
        opts = self.options
        lifetime = cache_lifetime(
            response.headers,
            floor=opts.jwks_floor,
            ceiling=opts.jwks_ceiling,
            default=opts.jwks_default,
        )
        self._jwks.store(keys, lifetime=lifetime, now=self.clock.now())

    # -- HTTP ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _passing_retry_after(self, response: httpx.Response) -> Iterator[None]:
        """A ``ProviderUnavailable`` raised for ``response`` carries the provider's
        ``Retry-After`` (whole seconds) on to our own answer."""
        try:
            yield
        except ProviderUnavailable as error:
            after = retry_after_seconds(response.headers, self.clock.now())
            if after is not None:
                error.extra["retry_after"] = max(1, math.ceil(after))
            raise

    async def _get(self, name: str, url: str) -> httpx.Response:
        response = await self._send(
            name,
            lambda: self._http.get(url),
            retry_response=_transient_response,
            retry_exception=_transport_failure,
        )
        if response.status_code != 200:
            error = parse_error_body(response.content)
            if is_transient(response.status_code, error):
                with self._passing_retry_after(response):
                    raise ProviderUnavailable(
                        f"The provider's {name} endpoint is unavailable "
                        f"(HTTP {response.status_code}).",
                        provider_status=response.status_code,
                    )
            raise ProviderError(
                f"The provider's {name} endpoint answered HTTP {response.status_code}.",
                provider_status=response.status_code,
            )
        return response

    async def _post(
        self,
        name: str,
        url: str,
        form: dict[str, str],
        *,
        retry_response: Callable[[httpx.Response], bool],
        retry_exception: Callable[[BaseException], bool],
        time_limit: float | None = None,
    ) -> httpx.Response:
        limit = httpx.Timeout(time_limit) if time_limit is not None else httpx.USE_CLIENT_DEFAULT
        return await self._send(
            name,
            lambda: self._http.post(url, data=form, timeout=limit),
            retry_response=retry_response,
            retry_exception=retry_exception,
        )

    async def _send(
        self,
        name: str,
        request: Callable[[], Awaitable[httpx.Response]],
        *,
        retry_response: Callable[[httpx.Response], bool],
        retry_exception: Callable[[BaseException], bool],
    ) -> httpx.Response:
        attempt = 0

        async def timed() -> httpx.Response:
            nonlocal attempt
            attempt += 1
            started = time.perf_counter()
            with span(f"grantkeeper.provider.{name}", attempt=attempt) as current:
                try:
                    response = await request()
                except httpx.TransportError as error:
                    _log_call(name, attempt, started, type(error).__name__)
                    raise
                current.set_attribute("http.response.status_code", response.status_code)
            _log_call(name, attempt, started, f"HTTP {response.status_code}")
            return response

        try:
            return await send_with_retries(
                timed,
                policy=self.options.retry,
                retry_response=retry_response,
                retry_exception=retry_exception,
                now=self.clock.now,
            )
        except httpx.TimeoutException as error:
            timeout = ProviderTimeout(
                f"The provider's {name} endpoint did not answer in time "
                f"({type(error).__name__} after {attempt} attempt(s))."
            )
            timeout.request_sent = not isinstance(error, _NEVER_SENT)
            raise timeout from None
        except httpx.TransportError as error:
            unreachable = ProviderUnavailable(
                f"The provider's {name} endpoint could not be reached "
                f"({type(error).__name__} after {attempt} attempt(s))."
            )
            unreachable.request_sent = not isinstance(error, _NEVER_SENT)
            raise unreachable from None


def _never(_: object) -> bool:
    return False


def _may_have_redeemed(error: ProviderUnavailable) -> bool:
    """Whether a failed code exchange may have redeemed the code at the provider: not when the
    request was never sent, nor when the provider refused it before processing (429, 503)."""
    status = error.extra.get("provider_status")
    if isinstance(status, int):
        return status not in (429, 503)
    return error.request_sent


def _log_call(name: str, attempt: int, started: float, outcome: str) -> None:
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "provider %s attempt %d: %s in %.0f ms",
        name,
        attempt,
        outcome,
        elapsed_ms,
        extra={"provider_call": name, "attempt": attempt, "outcome": outcome, "ms": elapsed_ms},
    )


def _transient_response(response: httpx.Response) -> bool:
    if response.status_code < 400:
        return False
    return is_transient(response.status_code, parse_error_body(response.content))


def _transport_failure(error: BaseException) -> bool:
    # Timeouts, refused or reset connections, a peer that hung up mid-answer.
    return isinstance(error, httpx.TransportError)


def _json_or_raise(name: str, response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        raise ProviderError(f"The provider's {name} document is not JSON.") from None
