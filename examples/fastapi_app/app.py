"""An existing FastAPI app (its own users table, password logins, its own session) that adds
"Sign in with Google" with offline access through grantkeeper's async ``Keeper``.

    GRANTKEEPER_CLIENT_SECRETS_FILE=… GRANTKEEPER_ALLOWED_CLIENT_IDS=… \\
        uvicorn --factory app:create_app

The mobile app POSTs Google's server auth code to /auth/google. The verified ``sub`` is the only
identity trusted; an email is never enough to take over an account.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware
from werkzeug.security import check_password_hash, generate_password_hash  # any hasher

from grantkeeper import Keeper, SignInCandidate, SignInRefused

SCHEMA = """CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, email TEXT UNIQUE, password_hash TEXT, google_sub TEXT UNIQUE)"""


class Credentials(BaseModel):
    email: str
    password: str


class GoogleSignIn(BaseModel):
    code: str
    platform: str = "ios"


def create_app(database: str = "app.sqlite3", keeper: Keeper | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiosqlite.connect(database) as db:
            await db.execute(SCHEMA)
            await db.commit()
        if keeper is not None:  # opened by the caller (a test, a larger app)
            app.state.keeper = keeper
            yield
            return
        async with Keeper() as opened:  # GRANTKEEPER_* settings; migrates unless told not to
            app.state.keeper = opened
            yield

    app = FastAPI(lifespan=lifespan)
    secret = os.environ.get("APP_SECRET_KEY", "dev only: set APP_SECRET_KEY")
    app.add_middleware(SessionMiddleware, secret_key=secret, same_site="strict")

    @app.post("/register", status_code=201)
    async def register(body: Credentials) -> dict[str, Any]:
        async with aiosqlite.connect(database) as db:
            await db.execute(
                "INSERT INTO users (email, password_hash) VALUES (?, ?)",
                (body.email, generate_password_hash(body.password)),
            )
            await db.commit()
        return {"ok": True}

    @app.post("/login")
    async def login(body: Credentials, request: Request) -> dict[str, Any]:
        async with aiosqlite.connect(database) as db:
            cursor = await db.execute(
                "SELECT id, password_hash FROM users WHERE email = ?", (body.email,)
            )
            row = await cursor.fetchone()
        if row is None or not check_password_hash(row[1] or "", body.password):
            raise HTTPException(401, "wrong email or password")
        request.session["user_id"] = row[0]
        return {"user_id": row[0]}

    @app.post("/auth/google")
    async def google_sign_in(
        body: GoogleSignIn,
        request: Request,
        x_requested_with: str | None = Header(None),  # Google's guide: a custom header
    ) -> Any:
        if x_requested_with is None:
            raise HTTPException(403, "X-Requested-With header required")
        current = request.session.get("user_id")

        async def decide(candidate: SignInCandidate) -> None:
            # Runs after Google's answer is verified, before grantkeeper stores anything.
            async with aiosqlite.connect(database) as db:
                cursor = await db.execute(
                    "SELECT id FROM users WHERE google_sub = ?", (candidate.sub,)
                )
                owner = await cursor.fetchone()
                if owner and current and owner[0] != current:
                    raise SignInRefused("This Google account is linked to another user.")
                if owner or current:
                    return  # a returning user, or "connect Google" while logged in
                cursor = await db.execute(
                    "SELECT 1 FROM users WHERE email = ? AND google_sub IS NULL",
                    (candidate.email,),
                )
                if await cursor.fetchone():
                    raise SignInRefused(
                        "An account with this email exists: log in with your password, then "
                        "connect Google."
                    )

        keeper: Keeper = request.app.state.keeper
        try:
            result = await keeper.sign_in(body.code, body.platform, decide=decide)
        except SignInRefused as refused:
            return JSONResponse({"error": refused.code, "detail": refused.message}, 403)
        async with aiosqlite.connect(database) as db:
            if current:
                await db.execute(
                    "UPDATE users SET google_sub = ? WHERE id = ?", (result.sub, current)
                )
            else:
                await db.execute(
                    "INSERT INTO users (email, google_sub) VALUES (?, ?) "
                    "ON CONFLICT (google_sub) DO NOTHING",
                    (result.user.get("email"), result.sub),
                )
            cursor = await db.execute("SELECT id FROM users WHERE google_sub = ?", (result.sub,))
            row = await cursor.fetchone()
            await db.commit()
        assert row is not None
        request.session["user_id"] = row[0]  # the app's own session, as after a password login
        return {"user_id": row[0], "offline": result.offline}

    return app
