"""Everything the emulator knows, in memory, behind one lock.

Routers run on the server's event loop while tests and embedding code read the same state from
other threads (``run_emulator(...).state``), so every read and write goes through ``lock``. The
rules that change the state (issuing codes, minting and killing tokens) are in
:mod:`grantkeeper.emulator.oauth.grants`; this module only holds and indexes the records.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from grantkeeper.clock import Clock, OffsetClock
from grantkeeper.emulator.config import EmulatorConfig, EmulatorSettings
from grantkeeper.emulator.faults import FaultBook
from grantkeeper.emulator.oauth.keys import KeyRing
from grantkeeper.emulator.oauth.models import (
    AccessTokenRecord,
    AuthCode,
    Client,
    RefreshTokenRecord,
    User,
)
from grantkeeper.emulator.persistence import apply_seed, load_seed, load_state, save_state

T = TypeVar("T")


class EmulatorClock(OffsetClock):
    """System time plus an offset that ``POST /emulator/clock`` grows and a reset clears."""

    def reset(self) -> None:
        with self._lock:
            self._offset = timedelta()


class EmulatorState:
    """Users, clients, codes, tokens, keys, faults, settings and call counts of one emulator."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.lock = threading.RLock()
        self.clock: Clock = self.config.clock or EmulatorClock()
        self.base_url: str | None = self.config.base_url
        self.keys = KeyRing(self.clock, self.config.signing_keys)
        self.faults = FaultBook()
        self._persisting = False
        self._init_records()
        self._seed = load_seed(self.config.seed_file) if self.config.seed_file else None
        if self.config.state_file is not None:
            load_state(self, self.config.state_file)
        self._start_persisting()

    def _start_persisting(self) -> None:
        """Create the --seed file's clients and users, then keep every change in the state file."""
        if self._seed is not None:
            apply_seed(self, self._seed)
        self._persisting = True
        self._persist()

    def _persist(self) -> None:
        if self._persisting and self.config.state_file is not None:
            save_state(self, self.config.state_file)

    def _init_records(self) -> None:
        self._settings = self.config.settings.model_copy()
        self.users: dict[str, User] = {}
        self.users_by_email: dict[str, str] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, AccessTokenRecord] = {}
        self.refresh_tokens: dict[str, RefreshTokenRecord] = {}
        """By token value; a token is never removed, only marked revoked or left to expire."""
        self.refresh_tokens_by_grant: dict[tuple[str, str], list[str]] = {}
        """(sub, client_id) -> refresh token values, oldest first (for the 100-token cap)."""
        self.consents: dict[tuple[str, str], frozenset[str]] = {}
        """Scopes each user has granted each (redeeming) client."""
        self.pending_authorizations: dict[str, dict[str, str]] = {}
        """Consent-page requests by their form id."""
        self.minted_id_tokens = 0
        """ID tokens minted so far (``id_token_iss_form="alternate"`` takes turns by it)."""
        self._calls: Counter[str] = Counter()
        self._token_calls: Counter[str] = Counter()
        self._refreshes: Counter[str] = Counter()
        self._extensions: dict[str, Any] = {}

    # -- settings ---------------------------------------------------------------------------

    @property
    def settings(self) -> EmulatorSettings:
        with self.lock:
            return self._settings

    def update_settings(self, **changes: Any) -> EmulatorSettings:
        """Validate and apply any subset of :class:`EmulatorSettings` fields."""
        with self.lock:
            merged = self._settings.model_dump() | changes
            self._settings = EmulatorSettings.model_validate(merged)
            return self._settings

    def issuer(self, request_base_url: str | None = None) -> str:
        return self.settings.issuer or self.origin(request_base_url)

    def origin(self, request_base_url: str | None = None) -> str:
        """The emulator's base URL (configured, or the one the request came in on)."""
        if self.base_url:
            return self.base_url
        return (request_base_url or "http://127.0.0.1").rstrip("/")

    # -- what API routers use ----------------------------------------------------------------

    def lookup_access_token(self, token: str) -> AccessTokenRecord | None:
        """The record of a live access token; ``None`` if unknown, revoked or expired."""
        now = self.clock.now()
        with self.lock:
            record = self.access_tokens.get(token)
            if record is None or now >= record.expires_at:
                return None
            user = self.users.get(record.sub)
            if user is not None and user.disabled:
                return None
            return record

    def record_call(self, endpoint: str) -> None:
        """Count one call of ``endpoint`` for ``GET /emulator/stats``."""
        with self.lock:
            self._calls[endpoint] += 1

    def record_token_call(self, grant_type: str) -> None:
        known = grant_type if grant_type in ("authorization_code", "refresh_token") else "other"
        with self.lock:
            self._token_calls[known] += 1

    def record_refresh(self, sub: str) -> None:
        with self.lock:
            self._refreshes[sub] += 1

    def extension(self, name: str, factory: Callable[[], T]) -> T:
        """Per-emulator storage for API routers (Drive files, Photos albums, ...), made on first
        use and dropped by :meth:`reset`, so a fresh-state test sees empty APIs too."""
        with self.lock:
            if name not in self._extensions:
                self._extensions[name] = factory()
            value: T = self._extensions[name]
            return value

    # -- users and clients -------------------------------------------------------------------

    def user_by_email(self, email: str) -> User | None:
        with self.lock:
            sub = self.users_by_email.get(email.lower())
            return self.users.get(sub) if sub else None

    def add_user(self, user: User) -> User:
        with self.lock:
            self.users[user.sub] = user
            self.users_by_email[user.email.lower()] = user.sub
            self._persist()
            return user

    def add_client(self, client: Client) -> Client:
        with self.lock:
            self.clients[client.client_id] = client
            self._persist()
            return client

    # -- statistics and reset ----------------------------------------------------------------

    def live_refresh_tokens(self, sub: str | None = None) -> list[RefreshTokenRecord]:
        from grantkeeper.emulator.oauth.rules import refresh_token_problem

        now = self.clock.now()
        settings = self.settings
        with self.lock:
            return [
                r
                for r in self.refresh_tokens.values()
                if (sub is None or r.sub == sub) and refresh_token_problem(r, now, settings) is None
            ]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            live: Counter[str] = Counter(r.sub for r in self.live_refresh_tokens())
            body: dict[str, Any] = dict(self._calls)
            body["token"] = {
                "authorization_code": self._token_calls["authorization_code"],
                "refresh_token": self._token_calls["refresh_token"],
                **({"other": self._token_calls["other"]} if self._token_calls["other"] else {}),
            }
            body["refreshes_per_user"] = dict(self._refreshes)
            body["live_refresh_tokens_per_user"] = dict(live)
            return body

    def reset(self) -> None:
        """Forget users, clients, grants, faults, counts and settings; rewind the clock offset.
        Signing keys survive unless they were rotated (making RSA keys is the slow part)."""
        with self.lock:
            self._persisting = False
            self._init_records()
            self._start_persisting()
            self.faults.clear()
            if isinstance(self.clock, EmulatorClock):
                self.clock.reset()
            if len(self.keys.all_keys()) != self.config.signing_keys or any(
                k.retire_at for k in self.keys.all_keys()
            ):
                self.keys = KeyRing(self.clock, self.config.signing_keys)
