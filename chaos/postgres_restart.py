"""Restart PostgreSQL under load: the keeper answers 503 while the database is away, names no
infrastructure, and recovers by itself; no grant is lost.

A throwaway cluster of this scenario's own (initdb into a temporary directory, a free port, its
socket directory beside it; never the shared server) holds the store of one ``grantkeeper
serve``. Client threads sign users in and read tokens (access tokens live 320 s against a
refresh margin of 300 s, so reads also refresh) while the cluster is restarted with
``pg_ctl restart -m fast`` and ``-m immediate``, and stopped for a few seconds each way.

Every answer must be 200, or 503 ``application/problem+json`` that names neither the
database, its host nor its port. The keeper process is never restarted: it must answer again
once the database is back. At the end every user who signed in gets a token the provider
accepts; one who does not is a lost grant.

    .venv/bin/python chaos/postgres_restart.py
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import (
    SCOPES,
    XRW,
    App,
    Cluster,
    register_app,
    report,
    say,
    serving,
    throwaway_postgres,
)

from grantkeeper.emulator import run_emulator

USERS = 20
THREADS = 4
OUTAGE_SECONDS = 3.0
#: A restart: how the cluster goes away, and for how long before it starts again.
RESTARTS = (
    ("restart -m fast", "fast", 0.0),
    ("restart -m immediate", "immediate", 0.0),
    ("stop -m fast, 3 s away", "fast", OUTAGE_SECONDS),
    ("stop -m immediate, 3 s away", "immediate", OUTAGE_SECONDS),
)


@dataclass
class Load:
    """What the client threads saw."""

    app: App
    base: str
    cluster: Cluster
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[str] = field(default_factory=Counter)
    signed_in: dict[str, str] = field(default_factory=dict)  # sub -> email
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def judge(self, what: str, response: httpx.Response) -> None:
        with self.lock:
            self.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code == 200:
            return
        problem = "application/problem+json" in response.headers.get("content-type", "")
        if response.status_code != 503 or not problem:
            self.fail(f"{what}: {response.status_code} {response.text[:300]}")
            return
        named = [
            word
            for word in (
                str(self.cluster.port),
                str(self.cluster.directory),
                "127.0.0.1",
                "postgres",
                "psycopg",
                "sqlalchemy",
            )
            if word in response.text.lower()
        ]
        if named:
            self.fail(f"{what}: the 503 names {named}: {response.text[:300]}")

    def fail(self, line: str) -> None:
        with self.lock:
            self.failures.append(line)

    def sign_in(self, client: httpx.Client, email: str) -> None:
        answer = client.post("/v1/google/signin", json={"code": self.app.code(email)}, headers=XRW)
        self.judge("sign-in", answer)
        if answer.status_code != 200:
            return
        signed = answer.json()
        if not signed["grant"]["offline"]:
            # Google gives a refresh token at the first consent only: when that sign-in was
            # answered 503 after Google had redeemed its code, the token never reached the
            # store, and the keeper says so (action). The app asks for consent again, as an
            # app must; this is counted, not a lost grant (no grant was ever stored).
            with self.lock:
                self.statuses["sign-in without offline access: consent again"] += 1
            consent = self.app.emulator.control.server_auth_code(
                self.app.ios_client, self.app.web_client, email, SCOPES, prompt="consent"
            )
            answer = client.post("/v1/google/signin", json={"code": consent}, headers=XRW)
            self.judge("sign-in", answer)
            if answer.status_code != 200 or not answer.json()["grant"]["offline"]:
                return
            signed = answer.json()
        with self.lock:
            self.signed_in[signed["user"]["sub"]] = email

    def work(self, seed: int) -> None:
        rng = random.Random(seed)  # noqa: S311  # chaos, not secrets
        auth = {"Authorization": f"Bearer {self.app.service_key}"}
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    with self.lock:
                        subs = list(self.signed_in)
                    if not subs or rng.random() < 0.25:
                        self.sign_in(client, rng.choice(self.app.emails))
                    else:
                        sub = rng.choice(subs)
                        self.judge("token", client.get(f"/v1/users/{sub}/token", headers=auth))
                except httpx.TransportError as error:
                    self.fail(f"the keeper did not answer: {type(error).__name__}: {error}")
                    time.sleep(0.2)


def wait_for_recovery(load: Load, started: float, limit: float = 60.0) -> float:
    """Seconds from ``started`` until a token read answers 200 again."""
    auth = {"Authorization": f"Bearer {load.app.service_key}"}
    sub = next(iter(load.signed_in))
    while time.monotonic() - started < limit:
        try:
            if httpx.get(f"{load.base}/v1/users/{sub}/token", headers=auth).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    load.fail(f"no recovery within {limit:.0f} s")
    return limit


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="times through the restarts")
    options = parser.parse_args()
    figures: dict[str, object] = {}
    with (
        tempfile.TemporaryDirectory(prefix="grantkeeper-chaos-") as directory,
        run_emulator() as emulator,
        throwaway_postgres() as cluster,
    ):
        emulator.control.update_settings(access_token_ttl=320)
        app = register_app(
            emulator,
            Path(directory),
            USERS,
            database_url=cluster.url,
            signin_rate_per_minute="0",
            token_rate_per_minute="0",
        )
        say(f"cluster of our own on port {cluster.port}; {THREADS} client threads")
        with serving(app.env, Path(directory) / "serve.log", workers=2) as (base, pid):
            load = Load(app, base, cluster)
            threads = [
                threading.Thread(target=load.work, args=(n,), daemon=True) for n in range(THREADS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(5)  # users sign in before the first restart
            recoveries = []
            done = 0
            for round_ in range(options.rounds):
                for label, mode, away in RESTARTS:
                    before = load.statuses.copy()
                    started = time.monotonic()
                    if away:
                        cluster.stop(mode)
                        time.sleep(away)
                        cluster.start()
                    else:
                        cluster.restart(mode)
                    recovered = wait_for_recovery(load, started)
                    recoveries.append(recovered)
                    done += 1
                    during = load.statuses - before
                    answered_503 = sum(v for k, v in during.items() if k.endswith(" 503"))
                    say(
                        f"round {round_ + 1}, {label}: answering 200 again after "
                        f"{recovered:.1f} s; {answered_503} answers 503 meanwhile"
                    )
                    time.sleep(3)  # load on a healthy database between restarts
            load.stop.set()
            for thread in threads:
                thread.join(timeout=60)
            # Every user who signed in still gets a token the provider accepts, from the same
            # keeper process (never restarted).
            lost = 0
            auth = {"Authorization": f"Bearer {app.service_key}"}
            for sub in load.signed_in:
                answer = httpx.get(f"{base}/v1/users/{sub}/token", headers=auth, timeout=30)
                if answer.status_code != 200 or not app.token_is_live(
                    answer.json()["access_token"]
                ):
                    lost += 1
                    say(f"  lost: {sub}: {answer.status_code} {answer.text[:200]}")
            figures["keeper process"] = f"pid {pid}, never restarted"
        statuses = sorted(load.statuses.items())
        figures["restarts"] = done
        figures["answers"] = ", ".join(f"{k}: {v}" for k, v in statuses)
        figures["longest until 200 again"] = f"{max(recoveries):.1f} s"
        figures["users signed in"] = len(load.signed_in)
        # The keeper claims a code in the store before it calls Google, so an outage mostly
        # refuses sign-ins before their code is spent; this many were spent and answered 503
        # (the advice then says the user must sign in again).
        exchanges = int(emulator.control.stats()["token"].get("authorization_code", 0))
        signed = sum(v for k, v in load.statuses.items() if k == "sign-in 200")
        figures["codes redeemed at Google, sign-in answered 503"] = exchanges - signed
        figures["other failures (5xx but 503, 503 naming the database, no answer)"] = len(
            load.failures
        )
        for line in load.failures[:20]:
            say(f"  {line}")
    return report(figures, lost + len(load.failures))


if __name__ == "__main__":
    sys.exit(main())
