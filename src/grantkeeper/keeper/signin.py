"""Sign-in: redeem a server auth code once, however many times the app retries the POST.

A code is claimed in the store before it is exchanged, so a retry reaching another instance
waits for the first answer instead of spending (and failing) a second exchange; the answer is
kept (under a hash of the code) for :data:`REPLAY_TTL`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import timedelta

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from grantkeeper.errors import (
    GrantkeeperError,
    InvalidCode,
    InvalidRequest,
    SignInIncomplete,
    StoreUnavailable,
)
from grantkeeper.keeper import sign_in_decision as decision
from grantkeeper.keeper.decisions import PLATFORMS, access_token_expiry, check_code
from grantkeeper.keeper.parts import Parts
from grantkeeper.keeper.results import SignInResult
from grantkeeper.oauth import TokenResponse, VerifiedIdentity
from grantkeeper.store import (
    OutboxMessage,
    ReplayEntry,
    SignInRecord,
    UserProfile,
    idempotency_key_hash,
    signin_code_hash,
)
from grantkeeper.store.codec import PROFILE_FIELDS
from grantkeeper.store.signin_replay_cache import PENDING as PENDING_SIGN_IN
from grantkeeper.tracing import span

log = logging.getLogger("grantkeeper.keeper")

#: How long a retried POST of the same code gets the same answer (issue 3).
REPLAY_TTL = timedelta(minutes=10)
#: How long a claim on a code protects its exchange if the claiming instance dies.
SIGN_IN_CLAIM_TTL = timedelta(seconds=60)


class SignIns:
    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._locks: dict[str, asyncio.Lock] = {}

    async def sign_in(
        self,
        code: str,
        platform: str,
        *,
        nonce: str | None,
        idempotency_key: str | None,
        decide: decision.Decide | None,
    ) -> SignInResult:
        """See :meth:`Keeper.sign_in`."""
        try:
            problem = check_code(code)
            if problem:
                raise InvalidRequest(problem)
            if platform not in PLATFORMS:
                raise InvalidRequest("platform must be one of ios, android, web.")
            if nonce is None and self._parts.settings.require_nonce:
                raise InvalidRequest(
                    "The field 'nonce' is required (GRANTKEEPER_REQUIRE_NONCE): send the nonce "
                    "the app gave Google Sign-In with the code."
                )
        except GrantkeeperError as error:
            await self.failed(error)  # refused before the provider: counted too
            raise
        store = self._parts.store
        code_hash = signin_code_hash(code)
        key_hash = idempotency_key_hash(idempotency_key) if idempotency_key else None
        lock = self._locks.setdefault(code_hash, asyncio.Lock())
        try:
            async with lock:
                # Claim first: a first POST (nearly every one) costs one statement; only a
                # code someone else holds or answered is read back.
                while not await store.claim_signin(code_hash, SIGN_IN_CLAIM_TTL):
                    answer = await self._settled_answer(code_hash, key_hash)
                    if answer is not None:
                        return answer
                try:
                    with span("grantkeeper.sign_in", platform=platform):
                        return await self._sign_in(
                            code, code_hash, platform, nonce, key_hash, decide
                        )
                except BaseException:
                    await asyncio.shield(store.release_signin_claim(code_hash))
                    raise
        except GrantkeeperError as error:
            await self.failed(error)
            raise
        finally:
            if not lock.locked():
                self._locks.pop(code_hash, None)

    async def failed(self, error: GrantkeeperError) -> None:
        """Announce a failed (or refused) sign-in: metrics count every one."""
        await self._parts.emit("sign_in_failed", "", self._client_id(), code=error.code)

    def _client_id(self) -> str:
        try:
            return self._parts.client_id
        except GrantkeeperError:
            return ""  # no client configured: that is the failure being reported

    async def _settled_answer(self, code_hash: str, key_hash: str | None) -> SignInResult | None:
        """The stored answer for this code if this caller may have it (same idempotency key);
        while another instance holds the claim, wait for its answer (or for the claim to be
        released or to lapse: then None).

        Raises:
            InvalidCode: the code was spent by a sign-in with another key or none.
        """
        poll = 0.02
        while True:
            cached = await self._parts.store.recall_signin_response(code_hash)
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
            await self._parts.sleep(poll)
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
        parts = self._parts
        provider = parts.provider()
        tokens = await provider.exchange_for_sign_in(code, platform)  # type: ignore[arg-type]
        # From here on Google has issued tokens: a sign-in that does not end gives them back.
        async with decision.given_back_unless_kept(
            provider, parts.store, parts.client_id, tokens
        ) as attempt:
            identity = await provider.verify_sign_in(tokens, nonce=nonce)
            attempt.sub = identity.sub
            if decide is not None:
                await decision.decide_on(decide, parts.store, identity, tokens, platform)
            return await self._keep(identity, tokens, code_hash, platform, key_hash)

    async def _keep(
        self,
        identity: VerifiedIdentity,
        tokens: TokenResponse,
        code_hash: str,
        platform: str,
        key_hash: str | None,
    ) -> SignInResult:
        parts = self._parts
        client_id = parts.client_id
        profile = UserProfile(
            sub=identity.sub, **{name: getattr(identity, name) for name in PROFILE_FIELDS}
        )
        expires_at = access_token_expiry(tokens.expires_at, parts.clock.now())
        recovered = parts.event("recovered", identity.sub, client_id)

        def notify_if_reactivated(record: SignInRecord) -> list[OutboxMessage]:
            return parts.outbox(recovered) if record.reactivated else []

        def answer_for_retries(record: SignInRecord) -> str:
            return SignInResult.from_record(record, platform).dumps(key_hash)

        # The tokens exist only in memory now: a store hiccup must not lose them.
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(StoreUnavailable),
                stop=stop_after_attempt(4),
                wait=wait_exponential(multiplier=0.2, max=2),
                sleep=parts.sleep,
                reraise=True,
            ):
                with attempt:
                    record = await parts.store.record_sign_in(
                        profile,
                        client_id,
                        set(tokens.scopes or ()),
                        tokens.refresh_token,
                        tokens.access_token,
                        expires_at,
                        tokens.refresh_token_expires_at,
                        audit_detail={"azp": identity.azp, "platform": platform},
                        # The answer to a retry lands with the grant: one transaction, and no
                        # moment when the grant is kept but a retry would find no answer.
                        replay=ReplayEntry(code_hash, REPLAY_TTL, answer_for_retries),
                        outbox=notify_if_reactivated,
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
        log.info(
            "sign-in sub=%s new_user=%s offline=%s added_scopes=%d",
            identity.sub,
            record.new_user,
            record.grant.offline,
            len(record.added_scopes),
        )
        await parts.emit(
            "signed_in",
            identity.sub,
            client_id,
            added_scopes=sorted(record.added_scopes),
            offline=record.grant.offline,
        )
        if record.reactivated:
            await parts.events.emit(recovered)
        return result
