"""The async shell that talks to the provider (Google or the emulator — same code path).

:class:`OAuthProvider` owns one ``httpx.AsyncClient`` and does only I/O, caching and retries:
the calls themselves (timing, logs, error mapping) are :mod:`.provider_calls`, the cached
discovery document and keys :mod:`.provider_documents`; every decision is a pure function in
:mod:`.token_endpoint`, :mod:`.discovery`, :mod:`.jwks`, :mod:`.id_token` and :mod:`.http_cache`.

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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http.cookiejar import Cookie, CookieJar
from typing import TYPE_CHECKING, Self

import httpx

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import (
    ConfigurationError,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    SignInIncomplete,
    UntrustedIdToken,
)
from grantkeeper.oauth.client_secrets import ClientSecrets, load_client_secrets
from grantkeeper.oauth.discovery import ProviderMetadata
from grantkeeper.oauth.id_token import (
    IdTokenPolicy,
    VerifiedIdentity,
    read_header,
    verify_id_token,
)
from grantkeeper.oauth.provider_calls import (
    NEVER_SENT,
    ProviderCalls,
    RetryException,
    RetryResponse,
    never,
    transient_response,
    transport_failure,
)
from grantkeeper.oauth.provider_documents import ProviderDocuments
from grantkeeper.oauth.provider_options import ProviderOptions
from grantkeeper.oauth.retry import RetryPolicy
from grantkeeper.oauth.token_endpoint import (
    MOBILE_REDIRECT_URIS,
    GrantType,
    Platform,
    TokenResponse,
    authorization_code_form,
    is_web_redirect_uri,
    parse_token_response,
    redirect_uri_for,
    refresh_token_form,
    revoke_error,
)

if TYPE_CHECKING:
    # Only the type: settings load client secrets through this package (no import cycle).
    from grantkeeper.settings import Settings

__all__ = ["OAuthProvider", "ProviderOptions", "SignIn"]


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
        self._http = _CookielessClient(
            transport=transport,
            timeout=httpx.Timeout(settings.http_timeout_seconds),
            headers={"Accept": "application/json", "User-Agent": "grantkeeper"},
            follow_redirects=False,
        )
        self._calls = ProviderCalls(self._http, clock, self.options.retry)
        self._documents = ProviderDocuments(self._calls, self.issuer, clock, self.options)

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
        return await self._documents.metadata()

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
        return await self._token_grant(
            "authorization_code",
            form,
            # Retried only when the provider cannot have redeemed the code (see above).
            retry_response=_refused_before_redeeming,
            retry_exception=_never_sent,
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
        form = refresh_token_form(
            refresh_token,
            client_id=self.client_secrets.client_id,
            client_secret=self.client_secrets.client_secret,
            scopes=frozenset(scopes) if scopes else None,
        )
        return await self._token_grant(
            "refresh_token",
            form,
            retry_response=transient_response,
            retry_exception=transport_failure,
        )

    async def _token_grant(
        self,
        grant_type: GrantType,
        form: dict[str, str],
        *,
        retry_response: RetryResponse,
        retry_exception: RetryException,
        platform: Platform | None = None,
        redirect_uri: str | None = None,
    ) -> TokenResponse:
        """POST a grant to the token endpoint and read the answer (``platform`` and
        ``redirect_uri`` explain a refused code exchange)."""
        metadata = await self.discover()
        response = await self._calls.post(
            f"token:{grant_type}",
            metadata.token_endpoint,
            form,
            retry_response=retry_response,
            retry_exception=retry_exception,
        )
        with self._calls.passing_retry_after(response):
            return parse_token_response(
                response.status_code,
                response.content,
                grant_type=grant_type,
                now=self.clock.now(),
                platform=platform,
                redirect_uri=redirect_uri,
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
        response = await self._calls.post(
            "revoke",
            metadata.revocation_endpoint,
            {"token": token},
            retry_response=transient_response if retry else never,
            retry_exception=transport_failure if retry else never,
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
        key = await self._documents.signing_key(header.kid, metadata)
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


def _may_have_redeemed(error: ProviderUnavailable) -> bool:
    """Whether a failed code exchange may have redeemed the code at the provider: not when the
    request was never sent, nor when the provider refused it before processing (429, 503)."""
    status = error.extra.get("provider_status")
    if isinstance(status, int):
        return status not in (429, 503)
    return error.request_sent


def _refused_before_redeeming(response: httpx.Response) -> bool:
    # Module functions, not lambdas: the retry rule is built once per rule (oauth/retry.py).
    return response.status_code in (429, 503)


def _never_sent(error: BaseException) -> bool:
    return isinstance(error, NEVER_SENT)


class _KeepNothing(CookieJar):
    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing, whether an answer or the code sets a cookie."""

    def __init__(self) -> None:
        super().__init__(_KeepNothing())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """httpx's client that keeps no cookies. Google's OAuth endpoints need none, and a jar
    shared by every user's calls could carry a cookie set in one user's answer into another's
    request. httpx also built two urllib objects per response to look for cookies (~4% of a
    bulk refresh's CPU)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None  # there are none to keep


_NO_COOKIES = _NoCookies()
