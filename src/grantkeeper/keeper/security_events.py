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
from typing import Any

from grantkeeper.errors import InvalidSecurityEvent
from grantkeeper.keeper.events import GrantEvent
from grantkeeper.keeper.parts import Parts
from grantkeeper.keeper.results import EventOutcome, Receipt
from grantkeeper.risc.delivery import read_delivery
from grantkeeper.risc.discovery import RiscKeySource
from grantkeeper.risc.events import Plan, SecurityEvent, TokenSubject, Transition, plan
from grantkeeper.risc.verify import VerifiedSet
from grantkeeper.store import GrantStatus
from grantkeeper.store.fingerprints import normalize_sha512x2, refresh_token_sha512x2

log = logging.getLogger(__name__)

AUDIT_KIND = "risc"
#: The event that says a security event was handled (``event``, ``outcome``), whatever it did.
RECEIVED = "security_event_received"
_CAS_ATTEMPTS = 3


class SecurityEvents:
    """The keeper's receiver of security event tokens for our client ids.

    Args:
        parts: the store (grants, audit log, claimed ``jti`` values), clock and event bus.
        keys: the RISC issuer's configuration and keys.
        audiences: our client ids: the server client id and the allowed app client ids.
    """

    def __init__(self, parts: Parts, keys: RiscKeySource, *, audiences: Collection[str]) -> None:
        self._parts = parts
        self.store = parts.store
        self.keys = keys
        self.audiences = frozenset(audiences)
        self._clock = parts.clock

    async def receive(self, token: str) -> Receipt:
        """See :meth:`Keeper.receive_security_event`."""
        try:
            verified, events = await read_delivery(token, self.keys, audiences=self.audiences)
        except InvalidSecurityEvent as error:
            log.info("security event token rejected: %s (%s)", error.extra.get("err"), error)
            await self._parts.emit(RECEIVED, "", "", event="unknown", outcome="rejected")
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

    async def _duplicate(self, verified: VerifiedSet, events: list[SecurityEvent]) -> Receipt:
        await self.store.append_audit(
            AUDIT_KIND,
            sub=next((e.sub for e in events if e.sub), None),
            client_id=verified.audience,
            outcome="duplicate",
            detail={"jti": verified.jti, "events": [e.name for e in events]},
        )
        for event in events:
            await self._parts.emit(
                RECEIVED, event.sub or "", verified.audience, event=event.name, outcome="duplicate"
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
        action = None
        if what.app_action and sub:
            action = self._parts.event(
                "security_event",
                sub,
                verified.audience,
                event=event.name,
                action=what.app_action,
                reason=event.reason,
            )
        # What the app must do is written with the audit event that records it.
        await self.store.append_audit(
            AUDIT_KIND,
            sub=sub,
            client_id=verified.audience,
            outcome=outcome,
            detail=detail,
            outbox=self._parts.outbox(action) if action is not None else [],
        )
        log.info("RISC %s for %s: %s (%d grants)", event.name, sub, outcome, len(changed))
        await self._announce(what, changed, action)
        await self._parts.emit(
            RECEIVED, sub or "", verified.audience, event=event.name, outcome=outcome
        )
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
            to_status = _TO_STATUS[transition.effect]
            # The app's notification is committed with the change (or not at all); the event
            # itself is announced by _announce once every grant has moved.
            outbox = self._parts.outbox(_status_changed(self._parts, sub, client_id, transition))
            if transition.effect == "revoke":
                changed = await self.store.erase_tokens(
                    sub,
                    client_id,
                    status=to_status,
                    reason=transition.reason,
                    expected_version=grant.version,
                    outbox=outbox,
                )
            else:
                changed = await self.store.set_status(
                    sub,
                    client_id,
                    to_status,
                    transition.reason,
                    expected_version=grant.version,
                    outbox=outbox,
                )
            if changed:
                return True
        log.warning("RISC transition of a grant of %s lost %d races", sub, _CAS_ATTEMPTS)
        return False

    async def _announce(
        self, what: Plan, changed: list[tuple[str, str]], action: GrantEvent | None
    ) -> None:
        transition = what.transition
        for grant_sub, client_id in changed:
            assert transition is not None
            await self._parts.events.emit(
                _status_changed(self._parts, grant_sub, client_id, transition)
            )
        if action is not None:
            await self._parts.events.emit(action)

    async def _withdraw(self, verified: VerifiedSet) -> None:
        try:
            await self.store.release_security_event(issuer=verified.issuer, jti=verified.jti)
        except Exception:
            log.exception("could not withdraw the claim on RISC event %s", verified.jti)


def _status_changed(parts: Parts, sub: str, client_id: str, transition: Transition) -> GrantEvent:
    return parts.event(
        "status_changed",
        sub,
        client_id,
        status=str(_TO_STATUS[transition.effect]),
        reason=transition.reason,
        source="risc",
    )


def _holds(refresh_token: str | None, token: TokenSubject) -> bool:
    """Whether ``refresh_token`` is the one a ``token-revoked`` event names."""
    if refresh_token is None:
        return False
    if token.algorithm == "prefix":
        return refresh_token[:16] == token.identifier
    return refresh_token_sha512x2(refresh_token) == normalize_sha512x2(token.identifier)


#: What each effect of a RISC plan makes of a grant, and from which states it may do so.
_TO_STATUS = {
    "revoke": GrantStatus.REVOKED,
    "disable": GrantStatus.DISABLED,
    "enable": GrantStatus.ACTIVE,
}
_FROM_STATUSES: dict[str, frozenset[str] | None] = {
    "revoke": None,
    "disable": frozenset({GrantStatus.ACTIVE.value}),
    "enable": frozenset({GrantStatus.DISABLED.value}),
}


def applies_to(transition: Transition, status: str, status_reason: str | None) -> bool:
    """Whether a grant in ``status`` (with ``status_reason``) is moved by ``transition``."""
    allowed = _FROM_STATUSES[transition.effect]
    if allowed is not None and status not in allowed:
        return False
    prefix = transition.only_reason_prefix
    return prefix is None or (status_reason or "").startswith(prefix)
