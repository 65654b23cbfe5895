"""Verifying a Google ID token: grantkeeper against google-auth, both against the emulator.

google-auth's ``id_token.verify_token`` fetches the certificates on every call (it has no cache;
its docstring suggests adding one). grantkeeper keeps the JWKS per its Cache-Control and checks
more (azp allowlist, at_hash, RS256 only). Prints verifications per second and the ratio, from
this one run on loopback; the machine is shared and noisy.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import google.auth.transport.requests
import requests
from google.oauth2 import id_token as google_id_token

from grantkeeper.emulator import run_emulator
from grantkeeper.oauth import OAuthProvider
from grantkeeper.settings import Settings

ROUNDS = 300


def main() -> int:
    with run_emulator() as emulator, tempfile.TemporaryDirectory() as tmp:
        control = emulator.control
        web = control.create_client("web")
        ios = control.create_client("ios")["client_id"]
        web_id = web["web"]["client_id"]
        secrets_file = Path(tmp) / "client_secret.json"
        secrets_file.write_text(json.dumps(web))
        code = control.server_auth_code(ios, web_id, "bench@example.com", ["openid", "email"])
        answer = requests.post(
            emulator.base_url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "client_id": web_id,
                "client_secret": web["web"]["client_secret"],
                "redirect_uri": "",
            },
            timeout=10,
        ).json()
        token, access = answer["id_token"], answer["access_token"]

        session = requests.Session()
        request = google.auth.transport.requests.Request(session)
        started = time.perf_counter()
        for _ in range(ROUNDS):
            google_id_token.verify_token(
                token, request, audience=web_id, certs_url=emulator.base_url + "/oauth2/v1/certs"
            )
        theirs = time.perf_counter() - started
        session.close()

        settings = Settings(
            client_secrets_file=secrets_file,
            issuer=emulator.base_url,
            allowed_client_ids=[ios],
            data_dir=Path(tmp),
            _env_file=None,
        )

        async def ours() -> float:
            async with OAuthProvider(settings, clock=emulator.state.clock) as provider:
                await provider.verify_id_token(token, access_token=access)  # warm the caches
                began = time.perf_counter()
                for _ in range(ROUNDS):
                    await provider.verify_id_token(token, access_token=access)
                return time.perf_counter() - began

        mine = asyncio.run(ours())
        certs_calls = control.stats().get("certs", "n/a")

    print(f"ID-token verification, {ROUNDS} rounds against the emulator on loopback")
    print(f"  google-auth verify_token (fetches certs each call) {ROUNDS / theirs:8.0f}/s")
    print(f"  grantkeeper verify_id_token (JWKS cached)         {ROUNDS / mine:8.0f}/s")
    print(f"  ratio                                             {theirs / mine:8.1f}x")
    print(f"  certificate fetches seen by the emulator: {certs_calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
