"""The app's say before a sign-in is stored, and what happens to a sign-in that does not end.

**The decision.** ``Keeper.sign_in(code, decide=hook)`` calls ``hook(candidate)`` after the code
was exchanged and the ID token verified, before anything is stored. The hook sees the verified
identity (:class:`SignInCandidate`: ``sub``, email, whether the user is new to this keeper,
whether Google issued a refresh token, the scopes) and refuses by raising
:class:`~grantkeeper.errors.SignInRefused`. A coroutine function is awaited; a plain function
runs in a worker thread (it may block on the app's own database).

**A sign-in that does not end** — refused by the app, an ID token that fails a check (a wrong
``GRANTKEEPER_ALLOWED_CLIENT_IDS``, stale keys, a clock), the keys unreachable, the store down
after the exchange — still holds what Google issued. Google issues a refresh token only on the
first consent, so dropping it silently would leave the user without offline access for good:
every later sign-in answers ``offline: false``. :func:`discard_exchange` therefore revokes what
Google issued (Google then forgets the consent, and the next sign-in asks for it again and
returns a refresh token) — unless the user already has a stored refresh token for this client:
revoking any token of a grant ends the whole grant at Google, and a configuration mistake must
not destroy every returning user's stored grant. When the ID token was refused, its ``sub`` is
read unverified only to make that choice: the token came straight from the token endpoint over
TLS (OIDC Core §3.1.3.7 allows TLS in place of the signature for exactly that case), and the
worst a wrong ``sub`` could do is keep (not revoke) one refresh token. Every discard is logged
with its reason and, when the store answers, audited.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError

from grantkeeper.errors import GrantkeeperError, UntrustedIdToken
from grantkeeper.oauth import OAuthProvider, TokenResponse, VerifiedIdentity
from grantkeeper.store import GrantStatus, GrantStore

log = logging.getLogger("grantkeeper.keeper")

#: How long a discard may wait for Google's revocation endpoint (one attempt).
DISCARD_REVOKE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class SignInCandidate:
    """A verified sign-in the app may still refuse (nothing is stored yet)."""

    sub: str
    email: str | None
    email_verified: bool | None
    name: str | None
    hd: str | None
    azp: str | None
    platform: str
    scopes: frozenset[str]
    offline: bool
    """Google issued a refresh token with this sign-in (it does only on first consent)."""
    new_user: bool
    """No user with this ``sub`` is stored yet: a first sign-in, not a returning user."""
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls, identity: VerifiedIdentity, tokens: TokenResponse, platform: str, *, new_user: bool
    ) -> SignInCandidate:
        return cls(
            sub=identity.sub,
            email=identity.email,
            email_verified=identity.email_verified,
            name=identity.name,
            hd=identity.hd,
            azp=identity.azp,
            platform=platform,
            scopes=frozenset(tokens.scopes or ()),
            offline=tokens.refresh_token is not None,
            new_user=new_user,
            claims=identity.claims,
        )


Decide = Callable[[SignInCandidate], Awaitable[None] | None]


async def decide_on(
    decide: Decide,
    store: GrantStore,
    identity: VerifiedIdentity,
    tokens: TokenResponse,
    platform: str,
) -> None:
    """Ask the app's hook about a verified sign-in (it raises to refuse)."""
    new_user = await store.get_user(identity.sub) is None
    await run_decision(decide, SignInCandidate.of(identity, tokens, platform, new_user=new_user))


@dataclass
class Attempt:
    """The sign-in in progress: ``sub`` is the unverified one until the ID token is verified."""

    sub: str | None


@asynccontextmanager
async def given_back_unless_kept(
    provider: OAuthProvider, store: GrantStore, client_id: str, tokens: TokenResponse
) -> AsyncIterator[Attempt]:
    """Around everything between the exchange and the stored grant: any failure (or refusal,
    or cancellation) gives back what Google issued (:func:`discard_exchange`) and re-raises."""
    attempt = Attempt(sub=unverified_sub(tokens.id_token))
    try:
        yield attempt
    except BaseException as error:
        await asyncio.shield(
            discard_exchange(
                provider=provider,
                store=store,
                client_id=client_id,
                tokens=tokens,
                sub=attempt.sub,
                why=error,
            )
        )
        raise


async def run_decision(decide: Decide, candidate: SignInCandidate) -> None:
    """Call the app's hook; a synchronous hook runs in a worker thread."""
    if inspect.iscoroutinefunction(decide):
        await decide(candidate)
        return
    outcome = await asyncio.to_thread(decide, candidate)
    if inspect.isawaitable(outcome):
        await outcome


def unverified_sub(id_token: str | None) -> str | None:
    """The ``sub`` claim of an ID token whose verification failed (see the module docstring)."""
    if not id_token:
        return None
    try:
        payload = json.loads(jws.extract_compact(id_token.encode("ascii")).payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        return None
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return sub if isinstance(sub, str) and 0 < len(sub) <= 255 else None


async def discard_exchange(
    *,
    provider: OAuthProvider,
    store: GrantStore,
    client_id: str,
    tokens: TokenResponse,
    sub: str | None,
    why: BaseException,
) -> bool:
    """Give back what an unfinished sign-in received; True if it was revoked at Google."""
    reason = _describe(why)
    if tokens.refresh_token is None:
        log.warning(
            "sign-in of sub=%s did not complete (%s); Google issued no refresh token, so "
            "nothing is lost",
            sub or "?",
            reason,
        )
        return False
    keeps_offline = await _has_stored_refresh_token(store, sub, client_id)
    if keeps_offline is None:
        log.error(
            "sign-in of sub=%s did not complete (%s) and the store cannot say whether the user "
            "already has offline access; the refresh token Google issued was dropped. If the "
            "user's next sign-in answers offline=false, ask them to sign in with "
            "prompt=consent.",
            sub or "?",
            reason,
        )
        return False
    if keeps_offline:
        log.warning(
            "sign-in of sub=%s did not complete (%s); the stored grant keeps offline access, "
            "so the new refresh token was dropped, not revoked",
            sub,
            reason,
        )
        await _audit(store, sub, client_id, why, revoked=False)
        return False
    try:
        await provider.revoke(tokens.refresh_token, retry=False, time_limit=DISCARD_REVOKE_SECONDS)
    except GrantkeeperError as error:
        log.error(
            "sign-in of sub=%s did not complete (%s) and revoking what Google issued failed "
            "(%s); the user's next sign-in may answer offline=false (then: prompt=consent)",
            sub or "?",
            reason,
            error.code,
        )
        return False
    log.warning(
        "sign-in of sub=%s did not complete (%s); revoked what Google issued, so the next "
        "sign-in asks for consent again and brings a refresh token",
        sub or "?",
        reason,
    )
    await _audit(store, sub, client_id, why, revoked=True)
    return True


async def _has_stored_refresh_token(
    store: GrantStore, sub: str | None, client_id: str
) -> bool | None:
    if sub is None:
        return False  # no identity at all: nothing stored can be at stake
    try:
        grant = await store.get_grant(sub, client_id)
    except GrantkeeperError:
        return None
    return (
        grant is not None and grant.status == GrantStatus.ACTIVE and grant.refresh_token is not None
    )


async def _audit(
    store: GrantStore, sub: str | None, client_id: str, why: BaseException, *, revoked: bool
) -> None:
    code = why.code if isinstance(why, GrantkeeperError) else "internal_error"
    detail: dict[str, Any] = {"revoked_at_provider": revoked}
    if isinstance(why, UntrustedIdToken):
        detail["check"] = why.check
    try:
        await store.append_audit(
            "sign_in", sub=sub, client_id=client_id, outcome=code[:32], detail=detail
        )
    except GrantkeeperError:
        log.warning("could not audit the discarded sign-in of sub=%s", sub)


def _describe(why: BaseException) -> str:
    if isinstance(why, UntrustedIdToken):
        return f"{why.code}: {why.reason}"
    if isinstance(why, GrantkeeperError):
        return f"{why.code}: {why.message}"
    return type(why).__name__
