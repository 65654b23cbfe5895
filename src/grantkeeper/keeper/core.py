"""The keeper: the whole application API. The CLI, the HTTP API and the library call this one
class; its parts (sign-in, offline access, revocation, the sweep, security events, keys) each
get the store, the provider, the clock and the event bus, never the keeper.

The store opens with the keeper; the provider client is built the first time something needs
Google (a sign-in, a refresh, a revocation), so read-only work (``users``, ``audit``, key
status, a report-only sweep) runs without client secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import httpx

from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import ConfigurationError, GrantkeeperError, UnknownUser
from grantkeeper.keeper import keys, reads
from grantkeeper.keeper.events import EventBus, GrantEvent, Listener
from grantkeeper.keeper.listeners import attach
from grantkeeper.keeper.notifications import NOTIFYING_KINDS
from grantkeeper.keeper.offline import OfflineAccess
from grantkeeper.keeper.parts import Parts, Sleep
from grantkeeper.keeper.results import (
    AccessToken,
    AuditEntry,
    DisconnectOutcome,
    Receipt,
    SignInResult,
    UserGrants,
)
from grantkeeper.keeper.revocation import Revocations
from grantkeeper.keeper.signin import SignIns
from grantkeeper.keeper.sweep import SweepOptions, SweepReport, sweep
from grantkeeper.keeper.user_ids import checked_sub
from grantkeeper.keeper.webhook_delivery import DeliveryPolicy, DeliveryReport, WebhookDeliverer
from grantkeeper.metrics import TimedTransport
from grantkeeper.oauth import OAuthProvider
from grantkeeper.settings import Settings
from grantkeeper.store import GrantStore

if TYPE_CHECKING:
    from grantkeeper.keeper.credentials import KeeperCredentials
    from grantkeeper.keeper.security_events import SecurityEvents
    from grantkeeper.keeper.sign_in_decision import Decide
    from grantkeeper.webhooks import WebhookSender

log = logging.getLogger("grantkeeper.keeper")

#: How long closing the keeper may spend delivering the notifications it wrote (one attempt
#: each; what is left waits in the outbox for the next deliverer).
WEBHOOK_DRAIN_SECONDS = 30.0


class Keeper:
    """Keeps Google grants for your users.

    ::

        async with Keeper(Settings()) as keeper:
            result = await keeper.sign_in(code, platform="ios")
            token = await keeper.access_token(result.sub)

    Args:
        settings: the ``GRANTKEEPER_*`` configuration.
        clock: the time source of every expiry rule.
        store: an open :class:`GrantStore`; by default opened from the settings.
        provider: an :class:`OAuthProvider`; by default built from the settings on first need.
        transport: an httpx transport for the default provider (tests mount an ASGI app).
        migrate: run the store's migrations when opening it from the settings (reading
            commands pass False: migrating is ``grantkeeper db upgrade``'s job).
        webhooks: the webhook sender; by default the one ``GRANTKEEPER_WEBHOOK_URL`` names.
            With one, every change the app is told about writes its notification to the
            store's outbox in its own transaction; :meth:`start_webhook_delivery` (``serve``
            and :class:`SyncKeeper` call it), :meth:`deliver_webhooks` or ``grantkeeper
            webhooks deliver`` send them.
        sleep: how the keeper waits between polls of the store and between store retries
            (tests pass one that returns at once).
        webhook_wait: how the webhook deliverer sleeps when nothing is due (tests).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: GrantStore | None = None,
        provider: OAuthProvider | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        migrate: bool = True,
        webhooks: WebhookSender | None = None,
        sleep: Sleep = asyncio.sleep,
        webhook_wait: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings or Settings()
        self.clock = clock
        self._store = store
        self._owns_store = store is None
        self._provider = provider
        self._owns_provider = provider is None
        self._transport = transport
        self._migrate = migrate
        self._sleep = sleep
        self._owner = f"keeper-{secrets.token_hex(6)}"
        self._parts: Parts | None = None
        self._signins: SignIns | None = None
        self._offline: OfflineAccess | None = None
        self._revocations: Revocations | None = None
        self._security_events: SecurityEvents | None = None
        self._key_problems: list[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events = EventBus()
        # Metrics always; Standard Webhooks when GRANTKEEPER_WEBHOOK_URL is set. Attached here so
        # a worker (SyncKeeper, the CLI) notifies the app as the web service does.
        self._webhooks: WebhookSender | None = attach(
            self._events, self.settings, self.clock, webhooks
        )
        self._webhook_wait = webhook_wait
        self._deliverer: WebhookDeliverer | None = None
        self._delivery: asyncio.Task[None] | None = None
        self._wrote_webhooks = False
        if self._webhooks is not None:
            self._events.add(self._on_notified)

    # -- life ----------------------------------------------------------------------------------

    async def open(self) -> Self:
        """Open the store (running migrations unless told not to). Idempotent."""
        self._loop = asyncio.get_running_loop()
        if self._store is None:
            self._store = await GrantStore.open_from_settings(
                self.settings, self.clock, migrate=self._migrate
            )
        return self

    def _get_provider(self) -> OAuthProvider:
        """The provider client, built on first need (raises ``ConfigurationError`` without
        client secrets)."""
        if self._provider is None:
            self._provider = OAuthProvider(
                self.settings, clock=self.clock, transport=TimedTransport(self._transport)
            )
        return self._provider

    def _open_parts(self) -> Parts:
        """The parts, made on first use after :meth:`open` (so they see the settings as they
        are then)."""
        if self._store is None:
            raise RuntimeError("Keeper is not open: use 'async with Keeper(...)' or await open()")
        if self._parts is None:
            parts = Parts(
                store=self._store,
                provider=self._get_provider,
                clock=self.clock,
                events=self._events,
                settings=self.settings,
                owner=self._owner,
                sleep=self._sleep,
                webhooks=self._webhooks is not None,
            )
            self._parts = parts
            self._signins = SignIns(parts)
            self._offline = OfflineAccess(parts)
            self._revocations = Revocations(parts)
        return self._parts

    async def close(self, *, webhook_drain: float = WEBHOOK_DRAIN_SECONDS) -> None:
        """Close the provider client and the store. Stops webhook delivery, and first tries
        once to deliver the notifications this keeper wrote, ``webhook_drain`` seconds at most
        for both (``grantkeeper worker`` passes its ``--grace``): what is left stays in the
        outbox for the next deliverer."""
        await self._finish_webhooks(webhook_drain)
        self._parts = self._signins = self._offline = self._revocations = None
        self._deliverer = None
        if self._security_events is not None:
            await self._security_events.keys.aclose()
            self._security_events = None
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
    def client_id(self) -> str:
        """The server (web) client id: the grant's holder and the ID token's ``aud``."""
        return self._get_provider().client_secrets.client_id

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the keeper was opened on (synchronous callers hop onto it)."""
        return self._loop

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`GrantEvent`; its failures are only logged."""
        self._events.add(listener)

    async def readiness(self) -> list[str]:
        """What keeps the service from serving (empty when ready)."""
        store = self._open_parts().store
        try:
            await store.ping()
            if self._key_problems is None:
                self._key_problems = await keys.key_ring_problems(store)
        except GrantkeeperError as error:
            # The answer is public (/readyz): where the store lives goes to the log only.
            log.warning("not ready: %s: %s", error.code, error.message)
            return [f"{error.code}: {error.public_message}"]
        try:
            await self._get_provider().discover()  # cached (Cache-Control): not a call per probe
        except GrantkeeperError as error:  # a wrong GRANTKEEPER_ISSUER, or the issuer down
            log.warning("not ready: issuer %s: %s", self.settings.issuer, error)
            return [f"issuer_unreachable: OpenID discovery failed ({error.code})"]
        return list(self._key_problems)

    # -- sign-in and offline access ------------------------------------------------------------

    async def sign_in(
        self,
        code: str,
        platform: str = "ios",
        *,
        nonce: str | None = None,
        idempotency_key: str | None = None,
        decide: Decide | None = None,
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
        self._open_parts()
        assert self._signins is not None
        return await self._signins.sign_in(
            code, platform, nonce=nonce, idempotency_key=idempotency_key, decide=decide
        )

    async def sign_in_refused(self, error: GrantkeeperError) -> None:
        """Count a sign-in the HTTP API refused before calling :meth:`sign_in` (no HTTPS, no
        ``X-Requested-With``, a malformed body, a rate limit): metrics see every refusal."""
        self._open_parts()
        assert self._signins is not None
        await self._signins.failed(error)

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
            InvalidRequest: ``sub`` holds a control character (no Google sub does).
            MissingScopes: the grant lacks a requested scope.
            GrantRevoked: the grant is dead (stored with its reason); the user must sign in.
            ProviderUnavailable, ProviderTimeout: transient; the grant is unchanged.
        """
        self._open_parts()
        assert self._offline is not None
        return await self._offline.access_token(
            checked_sub(sub), scopes, rejected=rejected, caller=caller
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
        self._open_parts()
        assert self._offline is not None
        return await self._offline.refresh(checked_sub(sub), rejected=rejected, caller=caller)

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

    # -- the end of a grant --------------------------------------------------------------------

    async def disconnect(
        self, sub: str, *, forget: bool = False, caller: str | None = None
    ) -> DisconnectOutcome:
        """Revoke the user's grant at the provider, erase the stored tokens, keep an audit
        record (naming ``caller``, a service key's name, when given); ``forget`` also erases
        the profile. Idempotent.

        The provider gets one short attempt: if it cannot be reached the revocation is recorded
        as pending (:meth:`sweep` retries it, and forgets the user afterwards when asked to)
        and the call still succeeds, so the app's answer never waits on Google. Either way the
        ``disconnected`` event is announced once the provider has confirmed.
        """
        self._open_parts()
        assert self._revocations is not None
        return await self._revocations.disconnect(checked_sub(sub), forget=forget, caller=caller)

    async def receive_security_event(self, token: str) -> Receipt:
        """Process one Cross-Account Protection delivery (a Security Event Token): verify it,
        drop a redelivery, apply each event's plan to the grants, audit, announce.

        Raises:
            InvalidSecurityEvent: the token is malformed, forged or not for us (answer 400).
            ProviderUnavailable: the issuer's keys cannot be fetched (answer 503; Google
                retries).
            StoreUnavailable: the database is down (answer 503).
        """
        parts = self._open_parts()
        if self._security_events is None:
            from grantkeeper.keeper.security_events import SecurityEvents
            from grantkeeper.risc import RiscKeySource

            source = RiscKeySource(
                self.settings.issuer,
                clock=self.clock,
                transport=self._transport,
                timeout=self.settings.http_timeout_seconds,
            )
            audiences = {self.client_id, *self.settings.allowed_client_ids}
            self._security_events = SecurityEvents(parts, source, audiences=audiences)
        return await self._security_events.receive(token)

    async def sweep(
        self,
        options: SweepOptions | None = None,
        *,
        report_only: bool | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> SweepReport:
        """Every grant's health; retries pending revocations, announces expiring grants and,
        with ``options.keep_alive``, refreshes idle grants. ``report_only`` (by default: when
        no client secrets are configured) only reports. Safe on several hosts at once."""
        parts = self._open_parts()
        if report_only is None:
            report_only = self._provider is None and self.settings.client_secrets_file is None
        return await sweep(
            parts,
            options=options,
            revocations=None if report_only else self._revocations,
            offline=None if report_only else self._offline,
            on_progress=on_progress,
        )

    # -- webhooks ------------------------------------------------------------------------------

    def _on_notified(self, event: GrantEvent) -> None:
        # The notification is committed (events are announced after their write): send it now
        # rather than at the deliverer's next poll.
        if event.kind in NOTIFYING_KINDS:
            self._wrote_webhooks = True
            if self._deliverer is not None:
                self._deliverer.wake()

    def _webhook_deliverer(self) -> WebhookDeliverer:
        if self._webhooks is None:
            raise ConfigurationError(
                "No webhook is configured: set GRANTKEEPER_WEBHOOK_URL and "
                "GRANTKEEPER_WEBHOOK_SECRET (grantkeeper webhooks secret makes one)."
            )
        if self._deliverer is None:
            self._deliverer = WebhookDeliverer(
                self._open_parts().store,
                self._webhooks,
                clock=self.clock,
                policy=DeliveryPolicy.from_settings(self.settings, timeout=self._webhooks.timeout),
                wait=self._webhook_wait,
            )
        return self._deliverer

    @property
    def webhooks_configured(self) -> bool:
        """Whether the app is notified (``GRANTKEEPER_WEBHOOK_URL`` or a ``webhooks`` sender)."""
        return self._webhooks is not None

    async def start_webhook_delivery(self) -> bool:
        """Deliver the outbox in the background on this loop until :meth:`close` (``serve``
        and :class:`SyncKeeper` do). Any number of keepers may deliver one store at once.
        Returns False when no webhook is configured (nothing to deliver). Idempotent."""
        if self._webhooks is None:
            return False
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.create_task(
                self._webhook_deliverer().run(), name="grantkeeper-webhooks"
            )
        return True

    async def stop_webhook_delivery(self, *, drain: float = WEBHOOK_DRAIN_SECONDS) -> None:
        """Stop background delivery after the attempts in flight (``drain`` seconds at most;
        then they are cancelled and stay in the outbox)."""
        task, self._delivery = self._delivery, None
        if task is None:
            return
        if self._deliverer is not None:
            self._deliverer.stop()
        try:
            async with asyncio.timeout(drain):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _finish_webhooks(self, drain: float) -> None:
        # One deadline for stopping the background deliverer and the last round together.
        drain = max(drain, 0.0)
        deadline = asyncio.get_running_loop().time() + drain
        await self.stop_webhook_delivery(drain=drain)
        if not self._wrote_webhooks or self._parts is None or self._webhooks is None:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await self._webhook_deliverer().deliver_due()
        except TimeoutError:
            log.warning("webhooks still being delivered when the keeper closed stay in the outbox")
        except GrantkeeperError as error:
            log.warning("webhooks not delivered at close (%s); they stay in the outbox", error.code)

    async def deliver_webhooks(self) -> DeliveryReport:
        """Deliver every notification due now, one attempt each (``grantkeeper webhooks
        deliver --once``); failures are scheduled for later with backoff.

        Raises:
            ConfigurationError: no webhook is configured.
            StoreUnavailable: the database is down.
        """
        return await self._webhook_deliverer().deliver_due()

    async def run_webhook_delivery(self) -> None:
        """Deliver until cancelled (``grantkeeper webhooks deliver``)."""
        await self._webhook_deliverer().run()

    async def webhooks_page(
        self, *, state: str | None = None, before: int | None = None, limit: int = 50
    ) -> reads.Page:
        """Notifications in the outbox, newest first, a page at a time (``before``: the
        previous page's ``next``); ``state``: ``pending``, ``delivered`` or ``failed``."""
        return await reads.webhooks_page(
            self._open_parts().store, state=state, before=before, limit=limit
        )

    async def replay_webhooks(
        self, ids: Iterable[str] = (), *, failed: bool = False
    ) -> list[dict[str, Any]]:
        """Send notifications again with the same ``webhook-id``: those named by ``ids`` and,
        with ``failed``, every failed one. They become pending, due now, with fresh attempts;
        this keeper's deliverer (if it runs) or the next one sends them. Returns them as listed.

        Raises:
            UnknownWebhook: an id names no stored notification (nothing is replayed then).
            InvalidRequest: neither ids nor ``failed``.
        """
        replayed = await reads.replay_webhooks(self._open_parts().store, ids, failed=failed)
        if replayed and self._deliverer is not None:
            self._deliverer.wake()
        return replayed

    async def pending_webhooks(self) -> int:
        """How many notifications wait for delivery (the ``/metrics`` gauge)."""
        return await self._open_parts().store.count_pending_webhooks()

    # -- reading -------------------------------------------------------------------------------

    async def users(self) -> list[UserGrants]:
        """Every user with their grants (never a token)."""
        store = self._open_parts().store
        found = []
        for user in await store.list_users():
            found.append(UserGrants(user, await store.list_grants(sub=user.sub)))
        return found

    async def user(self, sub: str) -> UserGrants:
        """One user's profile and grants. Raises :class:`UnknownUser`."""
        store = self._open_parts().store
        profile = await store.get_user(checked_sub(sub))
        if profile is None:
            raise UnknownUser(f"No user {sub} is stored.")
        return UserGrants(profile, await store.list_grants(sub=sub))

    async def audit(
        self, sub: str | None = None, *, kind: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """The audit log, newest first: sign-ins, failed refreshes, revocations, RISC events,
        sweeps, key rotations."""
        store = self._open_parts().store
        if sub is not None:
            checked_sub(sub)
        return [AuditEntry(e) for e in await store.list_audit(sub, kind=kind, limit=limit)]

    async def users_page(
        self, *, status: str | None = None, after: str | None = None, limit: int = 50
    ) -> reads.Page:
        """Users with their grants, ordered by ``sub``, a page at a time (``after``: the
        previous page's ``next``); ``status`` keeps users with a grant in that state."""
        store = self._open_parts().store
        if after is not None:
            checked_sub(after)
        return await reads.users_page(store, status=status, after=after, limit=limit)

    async def user_detail(self, sub: str, *, history: int = 50) -> dict[str, Any]:
        """One user's profile, grants and newest ``history`` audit events (never a token)."""
        return await reads.user_detail(self._open_parts().store, checked_sub(sub), history=history)

    async def audit_page(
        self,
        *,
        sub: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> reads.Page:
        """Audit events, newest first, a page at a time (``before``: the previous ``next``)."""
        if sub is not None:
            checked_sub(sub)
        return await reads.audit_page(
            self._open_parts().store,
            sub=sub,
            kind=kind,
            since=since,
            until=until,
            before=before,
            limit=limit,
        )

    async def grant_counts(self) -> dict[str, int]:
        """How many grants are in each state (``active``, ``revoked``, …)."""
        return dict(await self._open_parts().store.count_by_status())

    # -- keys ----------------------------------------------------------------------------------

    async def key_status(self) -> keys.KeyStatus:
        """Stored tokens per encryption key id: when an old key can leave the ring."""
        return await keys.status(self._open_parts().store)

    async def rotate_keys(
        self,
        *,
        batch_size: int = 500,
        pause: float = 0.0,
        on_progress: Callable[[int], None] | None = None,
    ) -> keys.RotationReport:
        """Re-encrypt every stored token under the primary key, in short batches; safe to
        interrupt and run again."""
        return await keys.rotate(
            self._open_parts().store, batch_size=batch_size, pause=pause, on_progress=on_progress
        )
