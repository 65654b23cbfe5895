"""An existing Flask app (its own users table, password logins, its own session) that adds
"Sign in with Google" with offline access through grantkeeper, used as a library.

    GRANTKEEPER_CLIENT_SECRETS_FILE=… GRANTKEEPER_ALLOWED_CLIENT_IDS=… flask --app app run

The mobile app POSTs Google's server auth code to /auth/google. The verified ``sub`` is the only
identity trusted; an email is never enough to take over an account.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from flask import Flask, g, jsonify, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from grantkeeper import SignInCandidate, SignInRefused, SyncKeeper

SCHEMA = """CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, email TEXT UNIQUE, password_hash TEXT, google_sub TEXT UNIQUE)"""


def create_app(database: str, keeper: SyncKeeper | None = None) -> Flask:
    app = Flask(__name__)
    app.secret_key = os.environ.get("APP_SECRET_KEY", "dev only: set APP_SECRET_KEY")
    # Made once, before gunicorn --preload forks: each worker builds its own on first use.
    app.extensions["keeper"] = keeper or SyncKeeper()
    with sqlite3.connect(database) as db:
        db.execute(SCHEMA)

    def users() -> sqlite3.Connection:
        if "db" not in g:
            g.db = sqlite3.connect(database)
            g.db.row_factory = sqlite3.Row
        return g.db  # type: ignore[no-any-return]

    @app.teardown_appcontext
    def close_db(_: BaseException | None) -> None:
        if (db := g.pop("db", None)) is not None:
            db.close()

    @app.post("/register")
    def register() -> Any:
        body = request.get_json()
        with users() as db:
            db.execute(
                "INSERT INTO users (email, password_hash) VALUES (?, ?)",
                (body["email"], generate_password_hash(body["password"])),
            )
        return jsonify(ok=True), 201

    @app.post("/login")
    def login() -> Any:
        body = request.get_json()
        row = users().execute("SELECT * FROM users WHERE email = ?", (body["email"],)).fetchone()
        if row is None or not check_password_hash(row["password_hash"] or "", body["password"]):
            return jsonify(error="wrong email or password"), 401
        session["user_id"] = row["id"]
        return jsonify(user_id=row["id"])

    @app.post("/auth/google")
    def google_sign_in() -> Any:
        if "X-Requested-With" not in request.headers:  # Google's guide: a custom header
            return jsonify(error="X-Requested-With header required"), 403
        body = request.get_json()
        current = session.get("user_id")

        def decide(candidate: SignInCandidate) -> None:
            # Runs before grantkeeper stores anything (in a worker thread: own connection).
            with sqlite3.connect(database) as db:
                owner = db.execute(
                    "SELECT id FROM users WHERE google_sub = ?", (candidate.sub,)
                ).fetchone()
                if owner and current and owner[0] != current:
                    raise SignInRefused("This Google account is linked to another user.")
                if owner or current:
                    return  # a returning user, or "connect Google" while logged in
                taken = db.execute(
                    "SELECT 1 FROM users WHERE email = ? AND google_sub IS NULL",
                    (candidate.email,),
                ).fetchone()
                if taken:
                    raise SignInRefused(
                        "An account with this email exists: log in with your password, then "
                        "connect Google."
                    )

        keeper: SyncKeeper = app.extensions["keeper"]
        try:
            result = keeper.sign_in(body["code"], body.get("platform", "ios"), decide=decide)
        except SignInRefused as refused:
            return jsonify(error=refused.code, detail=refused.message), 403
        with users() as db:
            if current:
                db.execute("UPDATE users SET google_sub = ? WHERE id = ?", (result.sub, current))
            else:
                db.execute(
                    "INSERT INTO users (email, google_sub) VALUES (?, ?) "
                    "ON CONFLICT (google_sub) DO NOTHING",
                    (result.user.get("email"), result.sub),
                )
            row = db.execute("SELECT id FROM users WHERE google_sub = ?", (result.sub,)).fetchone()
        session["user_id"] = row["id"]  # the app's own session, as after a password login
        return jsonify(user_id=row["id"], offline=result.offline)

    return app
