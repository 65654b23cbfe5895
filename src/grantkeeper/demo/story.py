"""``grantkeeper demo``: the whole story of Google's guide, told and checked step by step.

An iOS photo app signs a user in with Google and hands its backend (the keeper's real HTTP API)
a one-time server auth code. Later the app asks for Google Photos access incrementally, the user
picks photos with the Google Photos Picker, and, with the user gone, a worker enhances them and
uploads the results to an album the app created: the guide's own example, as Google's 2025 rules
allow it. Google is the emulator; everything else is production code on the embedded default
(SQLite and a key file in the data directory).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Coroutine
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from googleapiclient.discovery import build
from googleapiclient.http import MediaIoBaseUpload
from rich.console import Console

from grantkeeper import SyncKeeper
from grantkeeper.demo.faults import FAULTS
from grantkeeper.demo.narration import Narrator, Step, StepFailed, check
from grantkeeper.demo.photo_steps import PICKED, PhotoSteps
from grantkeeper.demo.serving import serve_in_thread
from grantkeeper.devmode import DevWorld, register_app
from grantkeeper.emulator import EmulatorHandle, run_emulator
from grantkeeper.keeper import Keeper
from grantkeeper.oauth import load_client_secrets
from grantkeeper.store import Grant
from grantkeeper.web import create_app

T = TypeVar("T")

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
SIGN_IN_SCOPES = ("openid", "email", "profile", DRIVE_APPDATA)
#: How many photos the user picks (and the job enhances).
PICTURES = PICKED
#: The claims of Google's guide, in its order.
PROFILE_CLAIMS = (
    "sub",
    "email",
    "email_verified",
    "name",
    "picture",
    "locale",
    "family_name",
    "given_name",
)
#: The iOS app's CSRF header value: any value will do; its presence is what counts.
REQUESTED_WITH = "com.example.photos"


class DemoStory:
    """The steps, sharing what earlier steps set up. Use :func:`run_demo`."""

    def __init__(self, data_dir: Path, narrator: Narrator, fault: str | None = None) -> None:
        self.data_dir = data_dir
        self.narrator = narrator
        self.fault = fault
        self.stack = ExitStack()
        self.secrets_seen: set[str] = set()
        self.photos = PhotoSteps(self)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def emulator(self) -> EmulatorHandle:
        return self.world.emulator

    def steps(self) -> list[Step]:
        steps = [
            Step("Start the emulator (Google on localhost)", self.start_emulator),
            Step("Register the app: a web client and an iOS client", self.register_app),
            Step("Start the keeper's HTTP API on SQLite", self.start_keeper),
            Step("Create a test user with their own photos", self.create_user),
            Step("The iOS app signs in and POSTs its server auth code", self.sign_in),
            Step("Drive: the app folder and a settings file", self.drive),
            Step(
                "The app asks for Google Photos access, incrementally", self.photos.ask_for_photos
            ),
            Step("The user picks photos with the Google Photos Picker", self.photos.pick_photos),
            Step("The user goes offline: time passes", self.go_offline),
            Step("The offline job enhances the pictures", self.photos.offline_job),
            Step("Nothing leaked: no token in the files", self.nothing_leaked),
        ]
        if self.fault is not None:
            title, fault = FAULTS[self.fault]
            steps = [
                Step(s.title, self._with_fault(s, fault)) if s.title == title else s for s in steps
            ]
        return steps

    def _with_fault(self, step: Step, fault: dict[str, Any]) -> Any:
        def run() -> str:
            self.say(f"(testing) the emulator will fail: {self.fault}")
            self.emulator.control.add_fault(**fault)
            return step.run()

        return run

    def say(self, text: str) -> None:
        self.narrator.say(text)

    def on_worker(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the worker keeper's event loop (its store lives there)."""
        loop = self.worker.keeper.loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(work, loop).result(60)

    def grant(self) -> Grant:
        found = self.on_worker(self.worker.keeper.user(self.sub))
        if not found.grants:
            raise StepFailed(f"the store holds no grant for user {self.sub}")
        return found.grants[0]

    def refreshes(self) -> int:
        return int(self.emulator.control.stats()["token"]["refresh_token"])

    def discovery(self, api: str, version: str) -> str:
        return f"{self.emulator.base_url}/discovery/v1/apis/{api}/{version}/rest"

    def close(self) -> None:
        self.stack.close()

    # -- the steps -----------------------------------------------------------------------------

    def start_emulator(self) -> str:
        handle = self.stack.enter_context(run_emulator())
        self._emulator = handle
        config = httpx.get(handle.base_url + "/.well-known/openid-configuration").json()
        jwks = httpx.get(config["jwks_uri"]).json()
        self.say(f"issuer        {config['issuer']}")
        self.say(f"token         {config['token_endpoint']}")
        self.say(f"signing keys  {', '.join(k['kid'][:12] + '…' for k in jwks['keys'])}")
        check(config["issuer"] == handle.base_url, "the issuer is not the emulator's URL")
        check(bool(jwks["keys"]), "the emulator publishes no signing keys")
        return "OpenID discovery and the signing keys answer, as Google's do"

    def register_app(self) -> str:
        self.world: DevWorld = register_app(
            self._emulator, self.data_dir, database_url=None, database_schema=None
        )
        settings = self.world.settings
        assert settings.client_secrets_file is not None
        secrets = load_client_secrets(settings.client_secrets_file)
        mode = settings.client_secrets_file.stat().st_mode & 0o777
        self.say(f"web (server) client  {self.world.web_client_id}")
        self.say(f"iOS client           {self.world.ios_client_id}")
        self.say(f"client_secret.json   {settings.client_secrets_file} (mode {mode:o})")
        check(secrets.client_id == self.world.web_client_id, "client_secret.json names another id")
        check(mode == 0o600, f"client_secret.json is readable by others (mode {mode:o})")
        check(
            self.world.ios_client_id in settings.allowed_client_ids,
            "the iOS client is not among the allowed client ids",
        )
        return "the keeper is configured like production: client_secret.json and allowed ids"

    def start_keeper(self) -> str:
        settings = self.world.settings
        keeper = Keeper(settings, clock=self.emulator.state.clock)
        app = create_app(keeper, owns_keeper=True)
        self.keeper_url = self.stack.enter_context(serve_in_thread(app))
        self.http = self.stack.enter_context(httpx.Client(base_url=self.keeper_url, timeout=30))
        ready = self.http.get("/readyz")
        database = settings.effective_database_url.split("///", 1)[-1]
        self.say(f"keeper   {self.keeper_url}  (OpenAPI at {self.keeper_url}/docs)")
        self.say(f"store    {database}")
        check(ready.status_code == 200, f"/readyz answered {ready.status_code}: {ready.text}")
        check(Path(database).is_file(), "the SQLite database was not created")
        # The worker: a second keeper on the same store, as a job queue's process would be.
        self.worker = self.stack.enter_context(
            SyncKeeper(settings, clock=self.emulator.state.clock)
        )
        return "the HTTP API is up and its store migrated; a worker shares the store"

    def create_user(self) -> str:
        control = self.emulator.control
        user = control.create_user(
            "ada@example.com",
            name="Ada Lovelace",
            given_name="Ada",
            family_name="Lovelace",
            locale="en-GB",
        )
        self.email, self.emulator_sub = user["email"], user["sub"]
        self.say(f"user     {user['name']} <{self.email}>")
        return self.photos.fill_library(self.emulator_sub)

    def post_code(self, code: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """POST a server auth code to the keeper as the iOS app does; the keeper's answer.
        The app makes its retries safe with an ``Idempotency-Key`` (IETF httpapi draft): only a
        retry with the first POST's key gets the answer of a code already spent."""
        answer = self.http.post(
            "/v1/google/signin",
            json={"code": code, "platform": "ios"},
            headers={
                "X-Requested-With": REQUESTED_WITH,
                "Idempotency-Key": idempotency_key or str(uuid.uuid4()),
            },
        )
        check(answer.status_code == 200, f"sign-in answered {answer.status_code}: {answer.text}")
        result: dict[str, Any] = answer.json()
        return result

    def sign_in(self) -> str:
        control = self.emulator.control
        # What GIDSignIn hands the app: signInResult.serverAuthCode.
        code = control.server_auth_code(
            self.world.ios_client_id, self.world.web_client_id, self.email, SIGN_IN_SCOPES
        )
        self.secrets_seen.add(code)
        body = {"code": code, "platform": "ios"}
        forged = self.http.post("/v1/google/signin", json=body)
        check(
            forged.status_code == 403
            and forged.json().get("code") == "csrf_header_missing"
            and forged.headers["content-type"].startswith("application/problem+json"),
            f"a POST without X-Requested-With was not refused (HTTP {forged.status_code})",
        )
        self.say("a POST without X-Requested-With is refused: 403 csrf_header_missing")
        retry_key = str(uuid.uuid4())
        result = self.post_code(code, retry_key)
        user, grant = result["user"], result["grant"]
        self.sub = str(user["sub"])
        for claim in PROFILE_CLAIMS:
            value = user.get(claim)
            self.say(f"{claim:<15}{'(not in the ID token)' if value is None else value}")
        self.say("granted scopes:")
        for scope in grant["scopes"]:
            self.say(f"  {scope}")
        retried = self.http.post(
            "/v1/google/signin",
            json=body,
            headers={"X-Requested-With": REQUESTED_WITH, "Idempotency-Key": retry_key},
        )
        stolen = self.http.post(
            "/v1/google/signin", json=body, headers={"X-Requested-With": REQUESTED_WITH}
        )
        exchanges = self.emulator.control.stats()["token"]["authorization_code"]
        check(self.sub == self.emulator_sub, "the keeper's sub is not the Google account's")
        check(user["email_verified"] is True, "the email is not verified")
        check(grant["offline"] is True, "no refresh token was stored: no offline access")
        wanted = set(SIGN_IN_SCOPES) - {"openid", "email", "profile"}
        check(wanted <= set(grant["scopes"]), f"scopes missing: {wanted - set(grant['scopes'])}")
        again = retried.json()
        check(
            (again["user"], again["grant"]) == (user, grant),
            "a retried POST of the same code got another answer",
        )
        check(again["replayed"] is True, "a retried POST's answer is not marked replayed")
        check(exchanges == 1, f"the code was exchanged {exchanges} times, not once")
        check(
            stolen.status_code == 400 and self.sub not in stolen.text,
            "a POST of the spent code without its Idempotency-Key got an identity",
        )
        self.say("a retried POST of the same code gets the same answer, with no second exchange")
        self.say("the spent code without the first POST's Idempotency-Key: 400, no identity")
        return "the ID token was verified, the user keyed by sub, the refresh token kept"

    def drive(self) -> str:
        credentials = self.worker.credentials(self.sub, [DRIVE_APPDATA])
        service = build(
            "drive",
            "v3",
            credentials=credentials,
            discoveryServiceUrl=self.discovery("{api}", "{apiVersion}"),
            static_discovery=False,
            cache_discovery=False,
        )
        with service:
            folder = service.files().get(fileId="appfolder", fields="id,name").execute()
            self.say(f"files.get('appfolder') -> id {folder['id']}")
            document = json.dumps({"theme": "dark", "enhance": "auto"}).encode()
            media = MediaIoBaseUpload(io.BytesIO(document), mimetype="application/json")
            created = (
                service.files()
                .create(
                    body={"name": "settings.json", "parents": ["appDataFolder"]},
                    media_body=media,
                    fields="id,name",
                )
                .execute()
            )
            listing = service.files().list(spaces="appDataFolder", fields="files(id,name)")
            names = [f["name"] for f in listing.execute()["files"]]
            content = service.files().get_media(fileId=created["id"]).execute()
        self.say(f"appDataFolder now holds {names}")
        check("settings.json" in names, "settings.json is not in appDataFolder")
        check(content == document, "settings.json read back differs from what was written")
        check(self.refreshes() == 0, "a refresh happened though the token was fresh")
        return "google-api-python-client works with the keeper's credentials, as in Google's guide"

    def go_offline(self) -> str:
        grant = self.grant()
        assert grant.access_token is not None
        assert grant.access_token_expires_at is not None
        old_token = grant.access_token
        self.secrets_seen.add(old_token)
        # Away past the access token's hour and past the picked photos' base URLs' hour.
        deadline = max(grant.access_token_expires_at, self.photos.base_urls_die_at())
        step = deadline - self.emulator.state.clock.now() + timedelta(minutes=1)
        now = self.emulator.control.advance_clock(step.total_seconds())
        self.say(f"the access token expired at {grant.access_token_expires_at:%H:%M:%S}")
        self.say(f"the picked photos' base URLs died at {self.photos.base_urls_die_at():%H:%M:%S}")
        self.say(f"the clock moved {step.total_seconds() / 60:.0f} minutes ahead: now {now}")
        refused = httpx.get(
            self.emulator.base_url + "/drive/v3/files/appfolder",
            headers={"Authorization": f"Bearer {old_token}"},
        )
        self.say(f"the app's old access token now gets HTTP {refused.status_code} from Drive")
        check(refused.status_code == 401, "the expired access token still works")
        check(
            self.emulator.state.clock.now() > grant.access_token_expires_at,
            "the keeper's clock did not pass the expiry",
        )
        return "the user is away and the access token is dead: only the refresh token is left"

    def nothing_leaked(self) -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        state = self.emulator.state
        with state.lock:
            self.secrets_seen.update(
                t for t, r in state.refresh_tokens.items() if r.sub == self.sub
            )
            self.secrets_seen.update(t for t, r in state.access_tokens.items() if r.sub == self.sub)
        files = [p for p in self.data_dir.rglob("*") if p.is_file() and p.suffix != ".jpg"]
        found = [
            f"{path.name}"
            for path in files
            for secret in self.secrets_seen
            if secret.encode() in path.read_bytes()
        ]
        names = ", ".join(sorted(p.name for p in files))
        self.say(f"searched {names} for {len(self.secrets_seen)} codes and tokens")
        check(not found, f"a token or code is readable in {sorted(set(found))}")
        return "the database holds tokens only encrypted; logs and files hold none"


def run_demo(data_dir: Path, console: Console, *, fault: str | None = None) -> bool:
    """Tell the story in ``data_dir``; True if every step held."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / "demo.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    narrator = Narrator(console)
    story = DemoStory(data_dir, narrator, fault)
    console.print(
        "[bold]grantkeeper demo[/]: an iOS photo app signs a user in with Google; the user picks "
        "photos with the Google Photos Picker; later, with the user gone, its backend enhances "
        "them (the example of Google's guide).\n"
        f"Data: {data_dir}   Log: {log_file}\n"
    )
    steps = story.steps()
    try:
        held = narrator.run(steps)
    finally:
        try:
            story.close()
        finally:
            root.removeHandler(handler)
            root.setLevel(saved_level)
            handler.close()
    console.print()
    narrator.report(len(steps))
    return held
