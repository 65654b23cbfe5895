"""SIGKILL a keeper process in the middle of a refresh, with refresh-token rotation on: no grant
may be lost, on SQLite and on PostgreSQL (a throwaway cluster of this scenario's own).

The emulator answers every refresh with a new refresh token and holds its answer back
(``response_delay_ms``), so a kill can land after Google rotated the token and before the keeper
stored the new one. Each round forces a refresh in a fresh keeper process and kills it:

- ``acted``: as soon as the provider has rotated (its answer still on the way);
- ``answered``: just after the held answer is due (reading it, or writing it to the store);
- ``anywhere``: after a random delay (before the call, during it, or after).

After each kill another keeper process forces a refresh of the same grant: it must get an
access token the provider accepts. A round where it does not is a lost grant.

    .venv/bin/python chaos/sigkill_refresh.py [--kills 50]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from _common import (
    ROOT,
    XRW,
    App,
    register_app,
    report,
    say,
    serving,
    throwaway_postgres,
)

from grantkeeper.emulator import run_emulator

USERS = 5
DELAY_MS = 150
#: A killed refresher's lease lapses this fast, so the next one need not wait 30 s.
LEASE_SECONDS = "0.5"


class Refresher:
    """chaos/_refresher.py: forks a keeper per refresh."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and tools
            [sys.executable, str(ROOT / "chaos" / "_refresher.py")],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def start(self, sub: str) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(sub + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline().split()
        assert line[:1] == ["child"], line
        return int(line[1])

    def finish(self) -> tuple[int, dict[str, str] | None]:
        """(exit status, the child's result if it printed one)."""
        assert self.process.stdout is not None
        result = None
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("the refresher process ended")
            if line.startswith("exit "):
                return int(line.split()[2]), result
            result = json.loads(line)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def sign_in_everyone(app: App) -> list[str]:
    """Sign the users in through ``grantkeeper serve`` (which also migrates the store)."""
    subs = []
    with serving(app.env, Path(app.env["GRANTKEEPER_DATA_DIR"]) / "serve.log") as (base, _):
        for email in app.emails:
            answer = httpx.post(
                base + "/v1/google/signin", json={"code": app.code(email)}, headers=XRW
            )
            answer.raise_for_status()
            subs.append(answer.json()["user"]["sub"])
    return subs


def refreshes(app: App) -> int:
    return int(app.emulator.control.stats()["token"].get("refresh_token", 0))


def run_store(name: str, app: App, kills: int, rng: random.Random) -> tuple[Counter[str], int]:
    subs = sign_in_everyone(app)
    control = app.emulator.control
    control.update_settings(rotate_refresh_tokens=True, response_delay_ms=DELAY_MS)
    tried: Counter[str] = Counter()
    lost = 0
    refresher = Refresher(app.env)
    started = time.monotonic()
    try:
        killed = 0
        round_ = -1
        # A refresh may finish before its kill lands: go on until ``kills`` landed.
        while killed < kills and round_ < 3 * kills:
            round_ += 1
            sub = subs[round_ % len(subs)]
            phase = ("acted", "answered", "anywhere")[round_ % 3]
            before = refreshes(app)
            pid = refresher.start(sub)
            if phase == "anywhere":
                time.sleep(rng.uniform(0, (DELAY_MS + 300) / 1000))
            else:
                deadline = time.monotonic() + 30
                while refreshes(app) == before and time.monotonic() < deadline:
                    time.sleep(0.002)
                if phase == "answered":
                    time.sleep(DELAY_MS / 1000 + rng.uniform(0, 0.04))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            status, _ = refresher.finish()
            killed += status == -signal.SIGKILL
            acted = refreshes(app) > before
            tried[f"{phase}, {'killed' if status == -signal.SIGKILL else 'finished first'}"] += 1
            tried["provider had rotated" if acted else "provider not yet called"] += 1
            # The grant must still mint tokens, from another keeper process.
            refresher.start(sub)
            status, result = refresher.finish()
            token = (result or {}).get("token")
            if status != 0 or token is None or not app.token_is_live(token):
                lost += 1
                say(f"  round {round_} ({phase}): grant of {sub} lost: {result}")
                subs[round_ % len(subs)] = resign(app, app.emails[round_ % len(subs)])
        say(f"{name}: {round_ + 1} rounds in {time.monotonic() - started:.0f} s")
    finally:
        refresher.close()
        control.update_settings(rotate_refresh_tokens=False, response_delay_ms=0)
    return tried, lost


def resign(app: App, email: str) -> str:
    with serving(app.env, Path(app.env["GRANTKEEPER_DATA_DIR"]) / "serve.log") as (base, _):
        answer = httpx.post(base + "/v1/google/signin", json={"code": app.code(email)}, headers=XRW)
        answer.raise_for_status()
        sub: str = answer.json()["user"]["sub"]
        return sub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="kills per store")
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args()
    rng = random.Random(options.seed)  # noqa: S311  # chaos, not secrets
    lost_total = 0
    figures: dict[str, object] = {}
    with (
        tempfile.TemporaryDirectory(prefix="grantkeeper-chaos-") as directory,
        run_emulator() as emulator,
    ):
        for store in ("sqlite", "postgres"):
            emulator.control.reset()
            with contextlib.ExitStack() as stack:
                settings = {"refresh_lease_seconds": LEASE_SECONDS}
                if store == "postgres":
                    cluster = stack.enter_context(throwaway_postgres())
                    settings["database_url"] = cluster.url
                app = register_app(emulator, Path(directory) / store, USERS, **settings)
                say(f"== {store}: {options.kills} SIGKILLs mid-refresh, rotation on")
                tried, lost = run_store(store, app, options.kills, rng)
            kills = sum(v for k, v in tried.items() if k.endswith(", killed"))
            figures[f"{store} kills"] = kills
            figures[f"{store} rounds"] = ", ".join(f"{k}: {v}" for k, v in sorted(tried.items()))
            figures[f"{store} lost"] = lost
            lost_total += lost
    return report(figures, lost_total)


if __name__ == "__main__":
    sys.exit(main())
