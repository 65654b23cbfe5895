"""The grant life cycle: sign in with a server auth code, hand out fresh access tokens,
disconnect. The CLI, the HTTP API and the library all call this one class.

Fresh tokens and the single-flight refresh live in :mod:`grantkeeper.keeper.offline`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import (
    GrantkeeperError,
    InvalidCode,
    InvalidRequest,
    SignInIncomplete,
    StoreUnavailable,
    UnknownUser,
)
from grantkeeper.keeper import sign_in_decision as decision
from grantkeeper.keeper.decisions import (
    DISCONNECT_REVOKE_TIMEOUT,
    FORGET_AFTER_REVOCATION,
    PLATFORMS,
    access_token_expiry,
    check_code,
)
from grantkeeper.keeper.events import EventBus, GrantEvent, Listener
from grantkeeper.keeper.keys import key_ring_problems
from grantkeeper.keeper.listeners import attach
from grantkeeper.keeper.offline import OfflineAccess
from grantkeeper.keeper.results import AccessToken, DisconnectOutcome, SignInResult
from grantkeeper.metrics import TimedTransport
from grantkeeper.oauth import OAuthProvider, TokenResponse, VerifiedIdentity
from grantkeeper.settings import Settings
from grantkeeper.store import (
    GrantStatus,
    GrantStore,
    UserProfile,
    idempotency_key_hash,
    signin_code_hash,
)
from grantkeeper.store.codec import PROFILE_FIELDS
from grantkeeper.store.signin_replay_cache import PENDING as PENDING_SIGN_IN

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials
    from grantkeeper.webhooks import WebhookSender

log = logging.getLogger("grantkeeper.keeper")

#: How long a retried POST of the same code gets the same answer (issue 3).
REPLAY_TTL = timedelta(minutes=10)
#: How long closing the keeper waits for webhook deliveries still being retried.
WEBHOOK_DRAIN_SECONDS = 30.0
#: How long a claim on a code protects its exchange if the claiming instance dies.
SIGN_IN_CLAIM_TTL = timedelta(seconds=60)


class Keeper:
    """Keeps Google grants for your users.

    ::

        async with Keeper(Settings()) as keeper:
            result = await keeper.sign_in(code, platform="ios")
            token = await keeper.access_token(result.sub)

    Args:
        settings: the ``GRANTKEEPER_*`` configuration.
        clock: the time source of every expiry rule.
        store: an open :class:`GrantStore`; by default opened (and migrated) from the settings.
        provider: an :class:`OAuthProvider`; by default built from the settings.
        transport: an httpx transport for the default provider (tests mount an ASGI app).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: GrantStore | None = None,
        provider: OAuthProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        self._store = store
        self._owns_store = store is None
        self._provider = provider
        self._owns_provider = provider is None
        self._transport = transport
        self._owner = f"keeper-{secrets.token_hex(6)}"
        self._offline: OfflineAccess | None = None
        self._key_problems: list[str] | None = None
        self._signin_locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.events = EventBus()
        # Metrics always; Standard Webhooks when GRANTKEEPER_WEBHOOK_URL is set. Attached here so
        # a worker (SyncKeeper, the CLI) notifies the app as the web service does.
        self.webhooks: WebhookSender | None = attach(self.events, self.settings, self.clock)

    # -- life ----------------------------------------------------------------------------------

    async def open(self) -> Self:
        """Open the store (running migrations) and the provider client. Idempotent."""
        self._loop = asyncio.get_running_loop()
        if self._provider is None:
            self._provider = OAuthProvider(
                self.settings, clock=self.clock, transport=TimedTransport(self._transport)
            )
        if self._store is None:
            self._store = await GrantStore.open_from_settings(self.settings, self.clock)
        return self

    async def close(self) -> None:
        """Close the provider client and the store; wait (30 s at most) for webhooks in flight."""
        self._offline = None
        if self.webhooks is not None:
            try:
                async with asyncio.timeout(WEBHOOK_DRAIN_SECONDS):
                    await self.webhooks.drain()
            except TimeoutError:
                log.warning("webhooks were still being retried when the keeper closed")
        if self._owns_provider and self._provider is not None:
            await self._provider.aclose()
            self._provider = None
        if self._owns_store and self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def store(self) -> GrantStore:
        if self._store is None:
            raise RuntimeError("Keeper is not open: use 'async with Keeper(...)' or await open()")
        return self._store

    @property
    def provider(self) -> OAuthProvider:
        if self._provider is None:
            raise RuntimeError("Keeper is not open: use 'async with Keeper(...)' or await open()")
        return self._provider

    @property
    def client_id(self) -> str:
        """The server (web) client id: the grant's holder and the ID token's ``aud``."""
        return self.provider.client_secrets.client_id

    @property
    def transport(self) -> httpx.AsyncBaseTransport | None:
        """The httpx transport given for the provider (tests mount an ASGI emulator)."""
        return self._transport

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the keeper was opened on (synchronous callers hop onto it)."""
        return self._loop

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`GrantEvent`; its failures are only logged."""
        self.events.add(listener)

    async def readiness(self) -> list[str]:
        """What keeps the service from serving (empty when ready)."""
        try:
            await self.store.ping()
            if self._key_problems is None:
                self._key_problems = await key_ring_problems(self.store)
        except GrantkeeperError as error:
            # The answer is public (/readyz): where the store lives goes to the log only.
            log.warning("not ready: %s: %s", error.code, error.message)
            return [f"{error.code}: {error.public_message}"]
        try:
            await self.provider.discover()  # cached (Cache-Control): not a call per probe
        except GrantkeeperError as error:  # a wrong GRANTKEEPER_ISSUER, or the issuer down
            log.warning("not ready: issuer %s: %s", self.settings.issuer, error)
            return [f"issuer_unreachable: OpenID discovery failed ({error.code})"]
        return list(self._key_problems)

    # -- sign-in -------------------------------------------------------------------------------

    async def sign_in(
        self,
        code: str,
        platform: str = "ios",
        *,
        nonce: str | None = None,
        idempotency_key: str | None = None,
        decide: decision.Decide | None = None,
    ) -> SignInResult:
        """Redeem a one-time server auth code: exchange it, verify the ID token, keep the grant.

        ``platform`` (``ios``, ``android``, ``web``) only chooses the ``redirect_uri`` of the
        exchange. ``nonce``, when the app gave Google Sign-In one, must equal the ID token's
        ``nonce`` claim (OIDC Core §3.1.3.7).

        A code is spent once. A retry of the same code with the same ``idempotency_key`` (the
        app's ``Idempotency-Key`` header, IETF httpapi idempotency-key draft) within 10 minutes
        gets the first answer, marked ``replayed``, without a second exchange; a spent code
        without that key, or with another, is :class:`InvalidCode` and names no identity, so
        whoever replays someone else's code learns nothing and links nothing. Only hashes of
        the code and the key are kept, and they are erased with the grant (revocation, RISC,
        disconnect, forget).

        ``decide(candidate)`` is the app's say before anything is stored; a sign-in that does
        not end gives back what Google issued (:mod:`grantkeeper.keeper.sign_in_decision`).

        Raises:
            InvalidRequest, InvalidCode: a malformed code or platform; a code Google refused.
            UntrustedIdToken, SignInRefused: the ID token failed a check, or ``decide`` refused.
            ProviderError, ProviderUnavailable, ProviderTimeout, StoreUnavailable.
        """
        try:
            problem = check_code(code)
            if problem:
                raise InvalidRequest(problem)
            if platform not in PLATFORMS:
                raise InvalidRequest("platform must be one of ios, android, web.")
            if nonce is None and self.settings.require_nonce:
                raise InvalidRequest(
                    "The field 'nonce' is required (GRANTKEEPER_REQUIRE_NONCE): send the nonce "
                    "the app gave Google Sign-In with the code."
                )
        except GrantkeeperError as error:
            await self._sign_in_failed(error)  # refused before the provider: counted too
            raise
        code_hash = signin_code_hash(code)
        key_hash = idempotency_key_hash(idempotency_key) if idempotency_key else None
        lock = self._signin_locks.setdefault(code_hash, asyncio.Lock())
        try:
            async with lock:
                # Claim the code in the store so that a retry reaching another instance waits
                # for this answer instead of spending (and failing) a second exchange.
                while True:
                    answer = await self._settled_answer(code_hash, key_hash)
                    if answer is not None:
                        return answer
                    if await self.store.claim_signin(code_hash, SIGN_IN_CLAIM_TTL):
                        break
                try:
                    return await self._sign_in(code, code_hash, platform, nonce, key_hash, decide)
                except BaseException:
                    await asyncio.shield(self.store.release_signin_claim(code_hash))
                    raise
        except GrantkeeperError as error:
            await self._sign_in_failed(error)
            raise
        finally:
            if not lock.locked():
                self._signin_locks.pop(code_hash, None)

    async def _sign_in_failed(self, error: GrantkeeperError) -> None:
        await self.events.emit(
            GrantEvent("sign_in_failed", "", self.client_id, self.clock.now(), {"code": error.code})
        )

    async def sign_in_refused(self, error: GrantkeeperError) -> None:
        """Count a sign-in the HTTP API refused before calling :meth:`sign_in` (no HTTPS, no
        ``X-Requested-With``, a malformed body, a rate limit): metrics see every refusal."""
        await self._sign_in_failed(error)

    async def _settled_answer(self, code_hash: str, key_hash: str | None) -> SignInResult | None:
        """The stored answer for this code if this caller may have it (same idempotency key);
        while another instance holds the claim, wait for its answer (or for the claim to be
        released or to lapse: then None).

        Raises:
            InvalidCode: the code was spent by a sign-in with another key or none.
        """
        poll = 0.02
        while True:
            cached = await self.store.recall_signin_response(code_hash)
            if cached is None:
                return None
            if cached != PENDING_SIGN_IN:
                answer, bound_to = SignInResult.loads_bound(cached)
                if (
                    bound_to is None
                    or key_hash is None
                    or not hmac.compare_digest(bound_to, key_hash)
                ):
                    raise InvalidCode(
                        "This server auth code was already used. A retry gets the first answer "
                        "only with the Idempotency-Key header of the first POST."
                    )
                return answer
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 0.25)

    async def _sign_in(
        self,
        code: str,
        code_hash: str,
        platform: str,
        nonce: str | None,
        key_hash: str | None,
        decide: decision.Decide | None,
    ) -> SignInResult:
        tokens = await self.provider.exchange_for_sign_in(code, platform)  # type: ignore[arg-type]
        # From here on Google has issued tokens: a sign-in that does not end gives them back.
        async with decision.given_back_unless_kept(
            self.provider, self.store, self.client_id, tokens
        ) as attempt:
            identity = await self.provider.verify_sign_in(tokens, nonce=nonce)
            attempt.sub = identity.sub
            if decide is not None:
                await decision.decide_on(decide, self.store, identity, tokens, platform)
            return await self._keep_sign_in(identity, tokens, code_hash, platform, key_hash)

    async def _keep_sign_in(
        self,
        identity: VerifiedIdentity,
        tokens: TokenResponse,
        code_hash: str,
        platform: str,
        key_hash: str | None,
    ) -> SignInResult:
        profile = UserProfile(
            sub=identity.sub, **{name: getattr(identity, name) for name in PROFILE_FIELDS}
        )
        expires_at = access_token_expiry(tokens.expires_at, self.clock.now())
        # The tokens exist only in memory now: a store hiccup must not lose them.
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(StoreUnavailable),
                stop=stop_after_attempt(4),
                wait=wait_exponential(multiplier=0.2, max=2),
                reraise=True,
            ):
                with attempt:
                    record = await self.store.record_sign_in(
                        profile,
                        self.client_id,
                        set(tokens.scopes or ()),
                        tokens.refresh_token,
                        tokens.access_token,
                        expires_at,
                        tokens.refresh_token_expires_at,
                        audit_detail={"azp": identity.azp, "platform": platform},
                    )
        except StoreUnavailable as error:
            # The code is spent: "retry later" would be untrue, the same code cannot succeed.
            raise SignInIncomplete(
                f"The code was redeemed but the grant store could not keep the result "
                f"({error.message}).",
                public_detail="The code was redeemed but the grant store could not keep the "
                "result.",
            ) from None
        result = SignInResult.from_record(record, platform)
        await self.store.remember_signin_response(
            code_hash, result.dumps(key_hash), REPLAY_TTL, sub=identity.sub
        )
        log.info(
            "sign-in sub=%s new_user=%s offline=%s added_scopes=%d",
            identity.sub,
            record.new_user,
            record.grant.offline,
            len(record.added_scopes),
        )
        now = self.clock.now()
        detail = {"added_scopes": sorted(record.added_scopes), "offline": record.grant.offline}
        await self.events.emit(GrantEvent("signed_in", identity.sub, self.client_id, now, detail))
        if record.reactivated:
            await self.events.emit(GrantEvent("recovered", identity.sub, self.client_id, now))
        return result

    # -- offline access ------------------------------------------------------------------------

    async def access_token(
        self,
        sub: str,
        scopes: Iterable[str] | str | None = None,
        *,
        rejected: str | None = None,
        caller: str | None = None,
    ) -> AccessToken:
        """An access token for ``sub`` valid for at least the refresh margin.

        A stored token that is fresh enough is returned without calling the provider; else one
        refresh per grant runs, however many callers ask at once, in however many processes.
        ``rejected`` names a token an API just refused (a 401): it is never handed out again.
        ``caller`` (a service key's name) puts the hand-out in the audit log under that name.

        Raises:
            UnknownUser: no grant for ``sub``.
            MissingScopes: the grant lacks a requested scope.
            GrantRevoked: the grant is dead (stored with its reason); the user must sign in.
            ProviderUnavailable, ProviderTimeout: transient; the grant is unchanged.
        """
        return await self._offline_access().access_token(
            sub, scopes, rejected=rejected, caller=caller
        )

    async def refresh(
        self, sub: str, *, rejected: str | None = None, caller: str | None = None
    ) -> AccessToken:
        """Force a refresh: for a worker whose token Google refused (a 401).

        With ``rejected`` (the refused token) the keeper refreshes unless it already stores a
        newer token than that one, which it then hands out: 20 workers that hit the same 401
        cause one refresh and all get the same new token. Without it the token stored now is
        replaced; callers arriving together still share one refresh.

        Raises:
            The errors of :meth:`access_token`.
        """
        return await self._offline_access().refresh(sub, rejected=rejected, caller=caller)

    def _offline_access(self) -> OfflineAccess:
        if self._offline is None:
            self._offline = OfflineAccess(
                store=self.store,
                provider=self.provider,
                settings=self.settings,
                clock=self.clock,
                events=self.events,
                owner=self._owner,
            )
        return self._offline

    async def credentials(
        self, sub: str, scopes: Iterable[str] | str | None = None
    ) -> KeeperCredentials:
        """``google.oauth2.credentials.Credentials`` for ``googleapiclient``; its refresh goes
        through this keeper (single-flight, persisted). Use it from synchronous code, or from
        async code through a worker thread (``asyncio.to_thread``)."""
        from grantkeeper.keeper.credentials import KeeperCredentials

        token = await self.access_token(sub, scopes)
        assert self._loop is not None

        async def fetch(rejected: str | None) -> AccessToken:
            return await self.access_token(sub, scopes, rejected=rejected)

        return KeeperCredentials(fetch, self._loop, token, scopes=sorted(token.scopes))

    # -- disconnect ----------------------------------------------------------------------------

    async def disconnect(
        self, sub: str, *, forget: bool = False, caller: str | None = None
    ) -> DisconnectOutcome:
        """Revoke the user's grant at the provider, erase the stored tokens, keep an audit
        record (naming ``caller``, a service key's name, when given); ``forget`` also erases
        the profile. Idempotent.

        The provider gets one short attempt: if it cannot be reached the revocation is recorded
        as pending (``grantkeeper sweep`` retries it, and forgets the user afterwards when asked
        to) and the call still succeeds, so the app's answer never waits on Google.
        """
        user = await self.store.get_user(sub)
        grants = await self.store.list_grants(sub=sub)
        if user is None and not grants:
            if forget:
                return DisconnectOutcome(sub, False, False, False, 0)
            raise UnknownUser(f"No user {sub} is stored.")
        revoked = pending = False
        by = {"caller": caller} if caller else {}
        for grant in grants:
            token = grant.refresh_token or grant.access_token
            if token is None:
                continue
            try:
                await self.provider.revoke(token, retry=False, time_limit=DISCONNECT_REVOKE_TIMEOUT)
            except GrantkeeperError as error:
                if not error.retryable:
                    raise
                pending = True
                reason = FORGET_AFTER_REVOCATION if forget else "disconnect"
                await self.store.mark_pending_revocation(sub, grant.client_id, reason)
                await self.store.append_audit(
                    "disconnect",
                    sub=sub,
                    client_id=grant.client_id,
                    outcome="revocation_pending",
                    detail={"error": error.code, "forget": forget, **by},
                )
                continue
            revoked = True
            await self.store.erase_tokens(
                sub, grant.client_id, status=GrantStatus.DISCONNECTED, reason="disconnect"
            )
            await self.store.append_audit(
                "disconnect", sub=sub, client_id=grant.client_id, outcome="revoked", detail=by
            )
            await self.events.emit(
                GrantEvent(
                    "disconnected", sub, grant.client_id, self.clock.now(), {"forget": forget}
                )
            )
        forgotten = False
        if forget and not pending:
            forgotten = await self.store.forget_user(sub)
            await self.store.append_audit("forget", sub=sub, outcome="ok", detail=by)
        return DisconnectOutcome(sub, revoked, pending, forgotten, len(grants))
