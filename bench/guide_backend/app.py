"""The backend an engineer writes from Google's guide, for the side-by-side benchmark.

Flask under gunicorn (2 workers x 8 threads); the code exchange with google-auth-oauthlib's
``Flow.fetch_token``; the ID token checked with google-auth's ``id_token.verify_token`` against
the certificates URL; the grant in SQLite through the standard library's ``sqlite3``; a fresh
access token from google-auth ``Credentials``, refreshed with ``Credentials.refresh`` when it is
no longer valid. It is deliberately plain, as the guide's fragments are: the refresh token is
kept as the guide keeps it (no encryption), there is no single-flight refresh, no replay cache,
no audit log. That makes it cheaper per request than a keeper that does all of that, so the
ratios the benchmark reports are conservative.

Configured by environment variables (the harness sets them): ``GUIDE_CLIENT_SECRETS`` (the web
client's client_secret.json), ``GUIDE_DB`` (SQLite file), ``GUIDE_CERTS_URL`` (the PEM
certificates, Google's ``/oauth2/v1/certs``), ``GUIDE_SERVICE_KEY`` (bearer key of the token
route), ``GUIDE_SCOPES`` (space-separated).
"""

from __future__ import annotations

import hmac
import json
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import Any

import google.auth.transport.requests
from flask import Flask, abort, g, jsonify, request
from google.oauth2 import id_token
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import Flow

# The token endpoint of a local emulator is plain HTTP; Google answers with scope names that
# differ from the requested short forms ("email" -> ".../userinfo.email").
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

CLIENT_SECRETS = os.environ["GUIDE_CLIENT_SECRETS"]
DATABASE = os.environ["GUIDE_DB"]
CERTS_URL = os.environ["GUIDE_CERTS_URL"]
SERVICE_KEY = os.environ["GUIDE_SERVICE_KEY"].encode()
SCOPES = os.environ.get("GUIDE_SCOPES", "openid email profile").split()

with open(CLIENT_SECRETS, encoding="utf-8") as handle:
    _CLIENT = json.load(handle)["web"]
CLIENT_ID = _CLIENT["client_id"]

app = Flask(__name__)
_local = threading.local()

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    sub TEXT PRIMARY KEY, email TEXT, name TEXT, picture TEXT,
    given_name TEXT, family_name TEXT
);
CREATE TABLE IF NOT EXISTS grants (
    sub TEXT PRIMARY KEY, refresh_token TEXT, access_token TEXT, expiry TEXT, scopes TEXT
);
"""


def _init_db() -> None:
    # Both gunicorn workers run this at import, at the same moment on a fresh file; switching
    # to WAL does not wait on SQLite's busy timeout, so the loser would see "database is
    # locked" and fail to boot, and gunicorn would stop the whole server.
    for attempt in range(50):
        try:
            with sqlite3.connect(DATABASE, timeout=10) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
            return
        except sqlite3.OperationalError:
            if attempt == 49:
                raise
            time.sleep(0.1)


_init_db()


def get_db() -> sqlite3.Connection:
    # Flask's tutorial pattern: one connection per request, closed at teardown.
    if "db" not in g:
        g.db = sqlite3.connect(DATABASE, timeout=10)
        g.db.row_factory = sqlite3.Row
    return g.db  # type: ignore[no-any-return]


@app.teardown_appcontext
def close_db(_: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def google_request() -> google.auth.transport.requests.Request:
    # One requests.Session per thread, so calls to Google reuse their connections.
    if not hasattr(_local, "request"):
        _local.request = google.auth.transport.requests.Request()
    return _local.request  # type: ignore[no-any-return]


@app.get("/healthz")
def healthz() -> Any:
    return jsonify(status="ok")


@app.post("/signin")
def signin() -> Any:
    # The guide: "Without the X-Requested-With header, this request could be forged."
    if not request.headers.get("X-Requested-With"):
        abort(403)
    body = request.get_json(silent=True) or request.form
    code = body.get("code")
    if not code:
        abort(400)
    flow = Flow.from_client_secrets_file(CLIENT_SECRETS, scopes=SCOPES, redirect_uri="postmessage")
    flow.fetch_token(code=code)
    credentials = flow.credentials
    info = id_token.verify_token(
        credentials.id_token, google_request(), audience=CLIENT_ID, certs_url=CERTS_URL
    )
    db = get_db()
    db.execute(
        "INSERT INTO users (sub, email, name, picture, given_name, family_name) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sub) DO UPDATE SET email=excluded.email, "
        "name=excluded.name, picture=excluded.picture, given_name=excluded.given_name, "
        "family_name=excluded.family_name",
        (
            info["sub"],
            info.get("email"),
            info.get("name"),
            info.get("picture"),
            info.get("given_name"),
            info.get("family_name"),
        ),
    )
    db.execute(
        "INSERT INTO grants (sub, refresh_token, access_token, expiry, scopes) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sub) DO UPDATE SET "
        "refresh_token=COALESCE(excluded.refresh_token, grants.refresh_token), "
        "access_token=excluded.access_token, expiry=excluded.expiry, scopes=excluded.scopes",
        (
            info["sub"],
            credentials.refresh_token,
            credentials.token,
            credentials.expiry.isoformat() if credentials.expiry else None,
            " ".join(credentials.granted_scopes or credentials.scopes or []),
        ),
    )
    db.commit()
    return jsonify(
        sub=info["sub"],
        email=info.get("email"),
        email_verified=info.get("email_verified"),
        name=info.get("name"),
        picture=info.get("picture"),
        given_name=info.get("given_name"),
        family_name=info.get("family_name"),
        offline=credentials.refresh_token is not None,
    )


@app.get("/users/<sub>/token")
def user_token(sub: str) -> Any:
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
    if not hmac.compare_digest(presented, SERVICE_KEY):
        abort(401)
    db = get_db()
    row = db.execute(
        "SELECT refresh_token, access_token, expiry, scopes FROM grants WHERE sub = ?", (sub,)
    ).fetchone()
    if row is None or row["refresh_token"] is None:
        abort(404)
    credentials = Credentials(
        token=row["access_token"],
        refresh_token=row["refresh_token"],
        token_uri=_CLIENT["token_uri"],
        client_id=CLIENT_ID,
        client_secret=_CLIENT["client_secret"],
        scopes=row["scopes"].split(),
        # google-auth compares naive UTC datetimes.
        expiry=datetime.fromisoformat(row["expiry"]) if row["expiry"] else None,
    )
    if not credentials.valid:
        credentials.refresh(google_request())
        db.execute(
            "UPDATE grants SET access_token = ?, expiry = ? WHERE sub = ?",
            (credentials.token, credentials.expiry.isoformat(), sub),
        )
        db.commit()
    expires_at = credentials.expiry.replace(tzinfo=UTC).isoformat() if credentials.expiry else None
    return jsonify(access_token=credentials.token, expires_at=expires_at)
