"""Clients of the control API: :class:`EmulatorControl` (sync) and :class:`AsyncEmulatorControl`.

Both speak plain HTTP to a running emulator, so they work the same against ``run_emulator``, a
``grantkeeper emulator`` process, or (async) an in-process ``httpx.ASGITransport``. A refused
call raises ``httpx.HTTPStatusError`` (the body says why).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

_REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class _Calls:
    """The control API's requests, shared by the sync and async clients."""

    @staticmethod
    def create_client(type: str, opts: dict[str, Any]) -> _Call:
        return _Call("POST", "/emulator/clients", {"type": type, **opts})

    @staticmethod
    def create_user(email: str, claims: dict[str, Any]) -> _Call:
        return _Call("POST", "/emulator/users", {"email": email, **claims})

    @staticmethod
    def server_auth_code(
        client_id: str,
        server_client_id: str | None,
        email: str,
        scopes: Iterable[str],
        prompt: str | None,
        opts: dict[str, Any],
    ) -> _Call:
        body = _drop_none(
            {
                "client_id": client_id,
                "server_client_id": server_client_id,
                "email": email,
                "scopes": list(scopes),
                "prompt": prompt,
            }
        )
        return _Call("POST", "/emulator/server-auth-code", body | opts)

    @staticmethod
    def revoke_user(sub: str, client_id: str | None) -> _Call:
        return _Call("POST", f"/emulator/users/{sub}/revoke", {"client_id": client_id})

    @staticmethod
    def add_fault(endpoint: str | None, opts: dict[str, Any]) -> _Call:
        return _Call("POST", "/emulator/faults", _drop_none({"endpoint": endpoint}) | opts)

    @staticmethod
    def clear_faults(endpoint: str | None) -> _Call:
        return _Call("DELETE", "/emulator/faults", params=_drop_none({"endpoint": endpoint}))

    @staticmethod
    def fill_library(sub: str, count: int, opts: dict[str, Any]) -> _Call:
        return _Call("POST", f"/emulator/users/{sub}/library", {"count": count, **opts})

    @staticmethod
    def pick(session_id: str, count: int | None, media_item_ids: Iterable[str] | None) -> _Call:
        ids = None if media_item_ids is None else list(media_item_ids)
        body = _drop_none({"count": count, "media_item_ids": ids})
        return _Call("POST", f"/emulator/photospicker/sessions/{session_id}/pick", body)


DEFAULT_SCOPES = ("openid", "email", "profile")


class EmulatorControl:
    """Synchronous client of ``/emulator/*``; also drives the consent page (:meth:`authorize`)."""

    def __init__(
        self, base_url: str, *, timeout: float = 30.0, ca_path: Path | None = None
    ) -> None:
        """``ca_path``: the CA certificate of an emulator that serves HTTPS."""
        self.base_url = base_url.rstrip("/")
        verify = ssl.create_default_context(cafile=str(ca_path)) if ca_path else True
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, verify=verify)

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _do(self, call: _Call) -> Any:
        response = self.http.request(call.method, call.path, json=call.json, params=call.params)
        response.raise_for_status()
        return response.json()

    def create_client(self, type: str = "web", **opts: Any) -> dict[str, Any]:
        """``type``: ``web`` (answer: a ``client_secret.json`` dict), ``installed``, ``ios``,
        ``android``. ``opts``: ``client_id``, ``client_secret``, ``redirect_uris``,
        ``javascript_origins``, ``project_id``."""
        result: dict[str, Any] = self._do(_Calls.create_client(type, opts))
        return result

    def create_user(self, email: str, **claims: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._do(_Calls.create_user(email, claims))
        return result

    def server_auth_code(
        self,
        client_id: str,
        server_client_id: str | None,
        email: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        prompt: str | None = None,
        **opts: Any,
    ) -> str:
        """The code ``GIDSignIn`` would hand the app. ``opts``: ``nonce``,
        ``include_granted_scopes``, ``offline``, ``code_challenge``, ``code_challenge_method``,
        ``time_limited_seconds``, ``redirect_uri``."""
        call = _Calls.server_auth_code(client_id, server_client_id, email, scopes, prompt, opts)
        code: str = self._do(call)["code"]
        return code

    def advance_clock(self, seconds: float) -> str:
        now: str = self._do(_Call("POST", "/emulator/clock", {"advance_seconds": seconds}))["now"]
        return now

    def update_settings(self, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._do(_Call("POST", "/emulator/settings", settings))
        return result

    def add_fault(self, endpoint: str | None = None, **opts: Any) -> dict[str, Any]:
        """``opts``: ``status``, ``body``, ``headers``, ``delay_ms``, ``malformed_json``,
        ``drop_connection``, ``count`` (``None``: until cleared), ``id_token``."""
        result: dict[str, Any] = self._do(_Calls.add_fault(endpoint, opts))
        return result

    def clear_faults(self, endpoint: str | None = None) -> int:
        cleared: int = self._do(_Calls.clear_faults(endpoint))["cleared"]
        return cleared

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._do(_Call("GET", "/emulator/stats"))
        return result

    def revoke_user(self, sub: str, client_id: str | None = None) -> int:
        count: int = self._do(_Calls.revoke_user(sub, client_id))["revoked_refresh_tokens"]
        return count

    def password_change(self, sub: str) -> int:
        call = _Call("POST", f"/emulator/users/{sub}/password-change")
        count: int = self._do(call)["revoked_refresh_tokens"]
        return count

    def rotate_keys(self, overlap_seconds: int | None = None) -> dict[str, Any]:
        body = _drop_none({"overlap_seconds": overlap_seconds})
        result: dict[str, Any] = self._do(_Call("POST", "/emulator/keys/rotate", body))
        return result

    def keys(self) -> dict[str, Any]:
        result: dict[str, Any] = self._do(_Call("GET", "/emulator/keys"))
        return result

    def fill_library(self, sub: str, count: int = 6, **opts: Any) -> list[dict[str, Any]]:
        """``count`` photos no app created in the user's Google Photos library (the Picker shows
        them, the Library API hides them). ``opts``: ``width``, ``height``, ``seed``."""
        items: list[dict[str, Any]] = self._do(_Calls.fill_library(sub, count, opts))["mediaItems"]
        return items

    def pick(
        self,
        session_id: str,
        *,
        count: int | None = None,
        media_item_ids: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """The user picks (their ``count`` newest photos, or ``media_item_ids``) and taps Done."""
        result: dict[str, Any] = self._do(_Calls.pick(session_id, count, media_item_ids))
        return result

    def reset(self) -> None:
        self._do(_Call("POST", "/emulator/reset"))

    def authorize(
        self,
        url: str,
        email: str,
        *,
        keep_scopes: Iterable[str] | None = None,
        deny: bool = False,
        time_limited_seconds: int | None = None,
        hd: str | None = None,
    ) -> str:
        """Click through the consent page at ``url`` as ``email``; return the redirect location
        (``redirect_uri?code=...&state=...``). ``keep_scopes``: the optional scopes left ticked
        (default all). ``hd`` makes a new ``email`` a Workspace account of that domain."""
        page = self.http.get(urljoin(self.base_url + "/", url))
        page.raise_for_status()
        found = _REQUEST_ID.search(page.text)
        if found is None:
            raise ValueError("the consent page has no request_id")
        optional = re.findall(r'name="scope" value="([^"]+)"', page.text)
        kept = optional if keep_scopes is None else [s for s in optional if s in set(keep_scopes)]
        form: dict[str, str | list[str]] = {
            "request_id": found.group(1),
            "email": "",
            "new_email": email,
            "new_hd": hd or "",
            "action": "deny" if deny else "allow",
            "time_limited_seconds": str(time_limited_seconds or ""),
            "scope": kept,
        }
        answer = self.http.post(page.url.path, data=form)
        if answer.status_code != 302:
            answer.raise_for_status()
            raise ValueError(f"the consent page answered {answer.status_code}, not a redirect")
        return answer.headers["location"]


class AsyncEmulatorControl:
    """The async twin of :class:`EmulatorControl` (without the consent-page helper)."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_path: Path | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        verify = ssl.create_default_context(cafile=str(ca_path)) if ca_path else True
        self.http = httpx.AsyncClient(
            base_url=self.base_url, transport=transport, timeout=30.0, verify=verify
        )

    async def __aenter__(self) -> AsyncEmulatorControl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _do(self, call: _Call) -> Any:
        response = await self.http.request(
            call.method, call.path, json=call.json, params=call.params
        )
        response.raise_for_status()
        return response.json()

    async def create_client(self, type: str = "web", **opts: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Calls.create_client(type, opts))
        return result

    async def create_user(self, email: str, **claims: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Calls.create_user(email, claims))
        return result

    async def server_auth_code(
        self,
        client_id: str,
        server_client_id: str | None,
        email: str,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        prompt: str | None = None,
        **opts: Any,
    ) -> str:
        call = _Calls.server_auth_code(client_id, server_client_id, email, scopes, prompt, opts)
        code: str = (await self._do(call))["code"]
        return code

    async def advance_clock(self, seconds: float) -> str:
        call = _Call("POST", "/emulator/clock", {"advance_seconds": seconds})
        now: str = (await self._do(call))["now"]
        return now

    async def update_settings(self, **settings: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Call("POST", "/emulator/settings", settings))
        return result

    async def add_fault(self, endpoint: str | None = None, **opts: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Calls.add_fault(endpoint, opts))
        return result

    async def clear_faults(self, endpoint: str | None = None) -> int:
        cleared: int = (await self._do(_Calls.clear_faults(endpoint)))["cleared"]
        return cleared

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Call("GET", "/emulator/stats"))
        return result

    async def revoke_user(self, sub: str, client_id: str | None = None) -> int:
        result = await self._do(_Calls.revoke_user(sub, client_id))
        count: int = result["revoked_refresh_tokens"]
        return count

    async def rotate_keys(self, overlap_seconds: int | None = None) -> dict[str, Any]:
        body = _drop_none({"overlap_seconds": overlap_seconds})
        result: dict[str, Any] = await self._do(_Call("POST", "/emulator/keys/rotate", body))
        return result

    async def fill_library(self, sub: str, count: int = 6, **opts: Any) -> list[dict[str, Any]]:
        result = await self._do(_Calls.fill_library(sub, count, opts))
        items: list[dict[str, Any]] = result["mediaItems"]
        return items

    async def pick(
        self,
        session_id: str,
        *,
        count: int | None = None,
        media_item_ids: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._do(_Calls.pick(session_id, count, media_item_ids))
        return result

    async def reset(self) -> None:
        await self._do(_Call("POST", "/emulator/reset"))
