"""The keeper's side of Cross-Account Protection: verify a SET, drop redeliveries, act, audit.

Order of work for one delivery:

1. header, key (RISC JWKS by ``kid``), signature and claims — :mod:`grantkeeper.risc.verify`;
2. the events parsed — :func:`grantkeeper.risc.events.parse_events`; anything malformed is a
   400 and changes nothing;
3. the ``jti`` claimed in the store (:mod:`grantkeeper.store.security_event_claims`); a
   redelivery is acknowledged (202) and changes nothing but an audit line;
4. each event's :func:`grantkeeper.risc.events.plan` applied to the grants, each grant moved by
   compare-and-swap on its version; an audit event per security event; webhooks for revoked,
   disabled and recovered grants and for what the app must do (end sessions, review).

If step 4 fails (database down), the claim is withdrawn so Google's redelivery is processed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from grantkeeper import metrics
from grantkeeper.clock import SYSTEM_CLOCK, Clock
from grantkeeper.errors import InvalidSecurityEvent
from grantkeeper.risc.discovery import RiscKeySource
from grantkeeper.risc.events import (
    MalformedEvent,
    Plan,
    SecurityEvent,
    TokenSubject,
    Transition,
    applies_to,
    parse_events,
    plan,
)
from grantkeeper.risc.verify import VerifiedSet, read_kid, verify_set
from grantkeeper.store import GrantStatus, GrantStore
from grantkeeper.store.fingerprints import normalize_sha512x2, refresh_token_sha512x2
from grantkeeper.webhooks import WebhookEvent, WebhookSender

log = logging.getLogger(__name__)

AUDIT_KIND = "risc"
_CAS_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class EventOutcome:
    event: str
    outcome: str
    sub: str | None
    grants_changed: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What one delivery did (the route answers 202 with it)."""

    jti: str
    duplicate: bool
    events: list[EventOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "duplicate": self.duplicate,
            "events": [
                {"event": e.event, "outcome": e.outcome, "grants_changed": e.grants_changed}
                for e in self.events
            ],
        }


class RiscReceiver:
    """Receives security event tokens for our client ids.

    Args:
        store: the grant store (grants, audit log, seen ``jti`` values).
        keys: the RISC issuer's configuration and keys.
        audiences: our client ids: the server client id and the allowed app client ids.
        clock: stamps the seen-events table.
        webhooks: notifies the app, if configured.
    """

    def __init__(
        self,
        store: GrantStore,
        keys: RiscKeySource,
        *,
        audiences: Collection[str],
        clock: Clock = SYSTEM_CLOCK,
        webhooks: WebhookSender | None = None,
    ) -> None:
        if not audiences:
            raise ValueError("a RISC receiver needs at least one client id")
        self.store = store
        self.keys = keys
        self.audiences = frozenset(audiences)
        self._clock = clock
        self._webhooks = webhooks

    @classmethod
    def create(
        cls,
        store: GrantStore,
        *,
        issuer: str,
        audiences: Collection[str],
        clock: Clock = SYSTEM_CLOCK,
        webhooks: WebhookSender | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> RiscReceiver:
        """A receiver fetching the RISC configuration under ``issuer`` (``GRANTKEEPER_ISSUER``)."""
        keys = RiscKeySource(issuer, clock=clock, transport=transport, timeout=timeout)
        return cls(store, keys, audiences=audiences, clock=clock, webhooks=webhooks)

    async def aclose(self) -> None:
        await self.keys.aclose()

    async def receive(self, token: str) -> Receipt:
        """Process one delivery.

        Raises:
            InvalidSecurityEvent: the token is malformed, forged or not for us (answer 400).
            ProviderUnavailable: the issuer's keys cannot be fetched (answer 503; Google
                retries).
            StoreUnavailable: the database is down (answer 503).
        """
        try:
            verified = await self._verify(token.strip())
            events = parse_events(verified.claims)
        except MalformedEvent as error:
            metrics.RISC_EVENTS.labels(event="unknown", outcome="rejected").inc()
            raise InvalidSecurityEvent("invalid_request", f"Malformed events: {error}") from None
        except InvalidSecurityEvent as error:
            metrics.RISC_EVENTS.labels(event="unknown", outcome="rejected").inc()
            log.info("security event token rejected: %s (%s)", error.extra.get("err"), error)
            raise
        now = self._clock.now()
        fresh = await self.store.claim_security_event(
            issuer=verified.issuer, jti=verified.jti, at=now
        )
        if not fresh:
            return await self._duplicate(verified, events)
        try:
            outcomes = [await self._apply(verified, plan(event)) for event in events]
        except BaseException:
            await self._withdraw(verified)
            raise
        await self.store.finish_security_event(
            issuer=verified.issuer, jti=verified.jti, at=self._clock.now()
        )
        return Receipt(jti=verified.jti, duplicate=False, events=outcomes)

    async def _verify(self, token: str) -> VerifiedSet:
        kid = read_kid(token)
        config, key = await self.keys.key(kid)
        return verify_set(token, key, issuer=config.issuer, audiences=self.audiences)

    async def _duplicate(self, verified: VerifiedSet, events: list[SecurityEvent]) -> Receipt:
        for event in events:
            metrics.RISC_EVENTS.labels(event=event.name, outcome="duplicate").inc()
        await self.store.append_audit(
            AUDIT_KIND,
            sub=next((e.sub for e in events if e.sub), None),
            client_id=verified.audience,
            outcome="duplicate",
            detail={"jti": verified.jti, "events": [e.name for e in events]},
        )
        return Receipt(jti=verified.jti, duplicate=True)

    async def _apply(self, verified: VerifiedSet, what: Plan) -> EventOutcome:
        event = what.event
        changed: list[tuple[str, str]] = []
        if what.transition is not None:
            changed = await self._transition(event, what.transition)
        outcome = what.outcome
        if what.transition is not None and not changed:
            outcome = "no_match"
        sub = event.sub or (changed[0][0] if changed else None)
        detail: dict[str, Any] = {
            "jti": verified.jti,
            "event": event.name,
            "event_type": event.uri,
            "grants_changed": [client for _, client in changed],
        }
        if event.reason:
            detail["reason"] = event.reason
        if event.state is not None:
            detail["state"] = event.state[:200]
        if event.token is not None:
            # Which kind of identifier matched, never the identifier itself.
            detail["token_identifier_alg"] = event.token.algorithm
        if what.app_action:
            detail["app_action"] = what.app_action
        await self.store.append_audit(
            AUDIT_KIND, sub=sub, client_id=verified.audience, outcome=outcome, detail=detail
        )
        metrics.RISC_EVENTS.labels(event=event.name, outcome=outcome).inc()
        log.info("RISC %s for %s: %s (%d grants)", event.name, sub, outcome, len(changed))
        self._notify(what, sub, changed)
        return EventOutcome(event=event.name, outcome=outcome, sub=sub, grants_changed=len(changed))

    async def _transition(
        self, event: SecurityEvent, transition: Transition
    ) -> list[tuple[str, str]]:
        """Move the targeted grants; returns the (sub, client_id) of each grant moved."""
        if transition.target == "token":
            assert event.token is not None
            if event.token.algorithm == "prefix":
                refs = await self.store.find_grants_by_refresh_token(prefix=event.token.identifier)
            else:
                refs = await self.store.find_grants_by_refresh_token(
                    sha512x2=event.token.identifier
                )
            targets = sorted({(ref.sub, ref.client_id) for ref in refs})
        else:
            assert event.sub is not None
            targets = [(g.sub, g.client_id) for g in await self.store.list_grants(sub=event.sub)]
        token = event.token if transition.target == "token" else None
        moved = []
        for sub, client_id in targets:
            if await self._move(sub, client_id, transition, token):
                moved.append((sub, client_id))
        return moved

    async def _move(
        self, sub: str, client_id: str, transition: Transition, token: TokenSubject | None
    ) -> bool:
        """Compare-and-swap on the grant's version; for a ``token-revoked`` event the grant must
        still hold the revoked refresh token (a sign-in may have replaced it meanwhile)."""
        for _ in range(_CAS_ATTEMPTS):
            grant = await self.store.get_grant(sub, client_id)
            if grant is None or not applies_to(transition, grant.status, grant.status_reason):
                return False
            if token is not None and not _holds(grant.refresh_token, token):
                return False
            if transition.erase_tokens:
                changed = await self.store.erase_tokens(
                    sub,
                    client_id,
                    status=transition.to_status,
                    reason=transition.reason,
                    expected_version=grant.version,
                )
            else:
                changed = await self.store.set_status(
                    sub,
                    client_id,
                    transition.to_status,
                    transition.reason,
                    expected_version=grant.version,
                )
            if changed:
                return True
        log.warning("RISC transition of a grant of %s lost %d races", sub, _CAS_ATTEMPTS)
        return False

    def _notify(self, what: Plan, sub: str | None, changed: list[tuple[str, str]]) -> None:
        if self._webhooks is None:
            return
        transition = what.transition
        for grant_sub, client_id in changed:
            assert transition is not None
            kind = (
                WebhookEvent.GRANT_RECOVERED
                if transition.to_status == GrantStatus.ACTIVE
                else WebhookEvent.GRANT_REVOKED
            )
            self._webhooks.notify(
                kind,
                sub=grant_sub,
                client_id=client_id,
                status=str(transition.to_status),
                reason=transition.reason,
                source="risc",
            )
        if what.app_action and sub:
            self._webhooks.notify(
                WebhookEvent.SECURITY_EVENT,
                sub=sub,
                event=what.event.name,
                action=what.app_action,
                reason=what.event.reason,
            )

    async def _withdraw(self, verified: VerifiedSet) -> None:
        try:
            await self.store.release_security_event(issuer=verified.issuer, jti=verified.jti)
        except Exception:
            log.exception("could not withdraw the claim on RISC event %s", verified.jti)


def _holds(refresh_token: str | None, token: TokenSubject) -> bool:
    """Whether ``refresh_token`` is the one a ``token-revoked`` event names."""
    if refresh_token is None:
        return False
    if token.algorithm == "prefix":
        return refresh_token[:16] == token.identifier
    return refresh_token_sha512x2(refresh_token) == normalize_sha512x2(token.identifier)
