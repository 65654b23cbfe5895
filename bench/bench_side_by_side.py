"""Side by side, one emulator, one run: the backend written from Google's guide against
``grantkeeper serve`` on SQLite and on PostgreSQL.

For each server, with CONCURRENCY clients on keep-alive connections:
  - its null route (``/healthz``),
  - SIGNINS sign-ins (POST a fresh server auth code),
  - READS token reads of those users while their access tokens are fresh,
  - REFRESH_READS token reads that must refresh (the emulator issues access tokens that live
    60 s, so every read finds its token inside both backends' refresh margins).
The figure is the CPU time (user + system) of the server's whole process tree per request,
from psutil, with p50/p99 latency as the clients saw it. The PostgreSQL figure leaves out the
database server's own CPU (it is not the keeper's process tree). Ratios are from this one run
on this machine; the emulator runs in its own process and is not counted for anyone.

All servers run at once, each phase sent to them in ``--slices`` slices taken in turn (the
order rotating: guide, SQLite, PostgreSQL, then SQLite, PostgreSQL, guide, ...), each slice on
CONCURRENCY keep-alive connections of its own. So a ratio compares servers
measured within seconds of each other, over the same minutes: on a shared machine a server's
CPU per request drifts by a quarter within minutes, and measured one after another (the way
this bench worked before) a ratio moved with it.

With ``--rounds N`` the whole comparison runs N times, each time on fresh databases, and the
run reports each ratio's median over the rounds with its range.

  python bench/bench_side_by_side.py [--signins 400] [--reads 2000] [--rounds 1] [--slices 5]
      [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    BIN,
    Call,
    Emulator,
    Phase,
    drop_schema,
    free_port,
    grantkeeper_command,
    measure,
    postgres_schema,
    stop,
    wait_until_up,
)

from grantkeeper.crypto import generate_key
from grantkeeper.emulator.client import EmulatorControl

HERE = Path(__file__).resolve().parent
SCOPES = ["openid", "email", "profile"]
WARM_SIGNINS = 16


Launched = tuple[subprocess.Popen[bytes], str, Path]


@dataclass
class Stack:
    name: str
    signin_path: str
    token_path: Callable[[str], str]
    ready_path: str
    #: Starts the server: (its process, its base URL, the file its output goes to).
    launch: Callable[[Path, Emulator, dict[str, Any], str], Launched]
    describe: str


def _launch_guide(
    workdir: Path, emulator: Emulator, web: dict[str, Any], service_key: str
) -> Launched:
    secrets_file = workdir / "guide_client_secret.json"
    secrets_file.write_text(json.dumps(web))
    port = free_port()
    env = {
        **os.environ,
        "GUIDE_CLIENT_SECRETS": str(secrets_file),
        "GUIDE_DB": str(workdir / "guide.sqlite3"),
        "GUIDE_CERTS_URL": emulator.base_url + "/oauth2/v1/certs",
        "GUIDE_SERVICE_KEY": service_key,
        "GUIDE_SCOPES": " ".join(SCOPES),
    }
    command = [
        str(BIN / "gunicorn"),
        "--workers=2",
        "--threads=8",
        f"--bind=127.0.0.1:{port}",
        f"--chdir={HERE / 'guide_backend'}",
        "--log-level=warning",
        "app:app",
    ]
    log_path = workdir / "guide.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
        )
    return process, f"http://127.0.0.1:{port}", log_path


def _serve_supports_workers() -> bool:
    help_text = subprocess.run(
        [*grantkeeper_command(), "serve", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return "--workers" in help_text


def _keeper_launcher(database_url: str | None, schema: str | None) -> Callable[..., Any]:
    """``database_url`` None: a SQLite file in the round's own directory."""

    def launch(
        workdir: Path, emulator: Emulator, web: dict[str, Any], service_key: str
    ) -> Launched:
        tag = schema or "sqlite"
        url = database_url or f"sqlite:///{workdir / 'keeper.sqlite3'}"
        if schema is not None and postgres_schema(schema, exact=True) is None:
            raise SystemExit(f"[postgresql] not reachable for schema {schema}")
        secrets_file = workdir / f"keeper_{tag}_client_secret.json"
        secrets_file.write_text(json.dumps(web))
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")},
            "GRANTKEEPER_CLIENT_SECRETS_FILE": str(secrets_file),
            "GRANTKEEPER_ISSUER": emulator.base_url,
            "GRANTKEEPER_ALLOWED_CLIENT_IDS": IOS_CLIENT[0],
            "GRANTKEEPER_DATABASE_URL": url,
            "GRANTKEEPER_ENCRYPTION_KEYS": generate_key(),
            "GRANTKEEPER_SERVICE_API_KEYS": service_key,
            "GRANTKEEPER_ALLOW_INSECURE_HTTP": "true",
            "GRANTKEEPER_DATA_DIR": str(workdir / f"keeper_{tag}"),
            # Every bench client comes from 127.0.0.1 with one key: the per-address and per-key
            # limits (60 sign-ins a minute by default) would answer 429 and measure nothing.
            "GRANTKEEPER_SIGNIN_RATE_PER_MINUTE": "0",
            "GRANTKEEPER_TOKEN_RATE_PER_MINUTE": "0",
        }
        if schema is not None:
            env["GRANTKEEPER_DATABASE_SCHEMA"] = schema
        env.update(KEEPER_ENV)
        subprocess.run(
            [*grantkeeper_command(), "db", "upgrade"],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
        )
        command = [*grantkeeper_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        log_path = workdir / f"keeper_{tag}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )
        return process, f"http://127.0.0.1:{port}", log_path

    return launch


IOS_CLIENT: list[str] = []
#: --keeper-env: settings the keeper's servers run with on top of the bench's own.
KEEPER_ENV: dict[str, str] = {}


@dataclass
class Running:
    """A started, warmed server of one stack and what its phases send it."""

    stack: Stack
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    signins: Callable[[list[dict[str, Any]]], list[Call]]
    reads: Callable[[list[dict[str, Any]], int], list[Call]]
    concurrency: int

    def measure(self, phase: str, calls: list[Call]) -> Phase:
        # Connections of its own (not kept while the others take their turn: idle that long
        # they pass gunicorn's 2 s keep-alive and fail as the guide closes them).
        return measure(phase, self.base_url, self.process.pid, calls, self.concurrency)


def start_stack(
    stack: Stack,
    emulator: Emulator,
    control: EmulatorControl,
    users: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    workdir: Path,
) -> Running:
    web = control.create_client("web")
    server_id = web["web"]["client_id"]
    service_key = secrets.token_urlsafe(24)
    auth = {"Authorization": f"Bearer {service_key}"}

    def signins(group: list[dict[str, Any]]) -> list[Call]:
        return [
            Call(
                "POST",
                stack.signin_path,
                {"X-Requested-With": "com.example.bench"},
                {
                    "code": control.server_auth_code(IOS_CLIENT[0], server_id, u["email"], SCOPES),
                    "platform": "ios",
                },
            )
            for u in group
        ]

    def reads(group: list[dict[str, Any]], count: int) -> list[Call]:
        return [
            Call("GET", stack.token_path(group[i % len(group)]["sub"]), auth) for i in range(count)
        ]

    process, base_url, log_path = stack.launch(workdir, emulator, web, service_key)
    running = Running(stack, process, base_url, log_path, signins, reads, args.concurrency)
    try:
        wait_until_up(base_url + stack.ready_path, process)
        # Warm every worker: imports, discovery, JWKS, connection pools.
        running.measure("warm", [Call("GET", "/healthz")] * 200)
        running.measure("warm", signins(users["warm"]))
        running.measure("warm", reads(users["warm"], 200))
    except BaseException:
        stop(process)
        raise
    return running


def stop_stack(running: Running) -> None:
    """Stop the server, saying why from its log if it exited during the run (the requests
    after that failed, so the run fails)."""
    exited = running.process.poll()
    stop(running.process)
    if exited is None:
        return
    # Every request after this failed to connect: say why, while the log still exists.
    tail = running.log_path.read_text(errors="replace").splitlines()[-15:]
    print(f"  FAILED: the {running.stack.name} server exited with code {exited} during the run:")
    for line in tail:
        print(f"    | {line}")


def slices(calls: list[Call], count: int) -> list[list[Call]]:
    """``calls`` cut into ``count`` runs of consecutive calls, as even as they come."""
    size, extra = divmod(len(calls), count)
    cuts = [i * size + min(i, extra) for i in range(count + 1)]
    return [calls[cuts[i] : cuts[i + 1]] for i in range(count)]


def run_round(
    stacks: list[Stack],
    emulator: Emulator,
    control: EmulatorControl,
    users: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, dict[str, Phase]]:
    """Every server up at once; each phase sent to them in ``args.slices`` slices taken in
    turn (the order rotating), so each server's figure and the guide's sample the same minutes
    of a machine whose speed drifts."""
    running: list[Running] = []
    parts: dict[str, dict[str, list[Phase]]] = {}
    refreshes: dict[str, int] = {}
    try:
        for stack in stacks:
            print(f"  starting {stack.name} ...", file=sys.stderr, flush=True)
            running.append(start_stack(stack, emulator, control, users, args, workdir))
            parts[stack.name] = {}
            refreshes[stack.name] = 0

        def interleaved(phase: str, calls_of: Callable[[Running], list[Call]]) -> None:
            print(f"  {phase} ...", file=sys.stderr, flush=True)
            cut = {r.stack.name: slices(calls_of(r), args.slices) for r in running}
            counting = phase == "refresh"
            for index in range(args.slices):
                turn = index % len(running)
                for r in running[turn:] + running[:turn]:
                    before = control.stats()["token"]["refresh_token"] if counting else 0
                    part = r.measure(phase, cut[r.stack.name][index])
                    parts[r.stack.name].setdefault(phase, []).append(part)
                    if counting:
                        refreshes[r.stack.name] += (
                            control.stats()["token"]["refresh_token"] - before
                        )

        interleaved("null", lambda r: [Call("GET", r.stack.ready_path)] * args.null)
        interleaved("signin", lambda r: r.signins(users["main"]))
        interleaved("read", lambda r: r.reads(users["main"], args.reads))
        control.update_settings(access_token_ttl=60)
        try:
            for r in running:
                r.measure("setup", r.signins(users["refresh"]))
            interleaved("refresh", lambda r: r.reads(users["refresh"], args.refresh_reads))
        finally:
            control.update_settings(access_token_ttl=3599)
    finally:
        for r in running:
            stop_stack(r)
    results = {
        name: {phase: Phase.combined(phase, pieces) for phase, pieces in phases.items()}
        for name, phases in parts.items()
    }
    for name, count in refreshes.items():
        if count < args.refresh_reads * 0.95:
            print(
                f"  warning: {name} made {count} refreshes for {args.refresh_reads} reads",
                file=sys.stderr,
            )
    for name, phases in results.items():
        for phase in phases.values():
            if phase.failures:
                print(
                    f"  FAILED: {name} {phase.name}: {phase.failures} failed requests (a failed "
                    "request is cheaper than a served one: the run's ratios mean nothing)"
                )
                for sample in phase.failure_samples:
                    print(f"    {sample}")
    return results


def table(results: dict[str, dict[str, Phase]], descriptions: dict[str, str]) -> None:
    print(
        f"{'':<24}{'null ms':>9}{'sign-in':>9}{'read':>8}{'refresh':>9}"
        f"{'in p99':>9}{'read p99':>9}{'ref p99':>9}   (CPU ms per request; p99 ms)"
    )
    for name, phases in results.items():
        print(
            f"{name:<24}{phases['null'].cpu_ms:9.2f}{phases['signin'].cpu_ms:9.2f}"
            f"{phases['read'].cpu_ms:8.2f}{phases['refresh'].cpu_ms:9.2f}"
            f"{phases['signin'].p99_ms:9.0f}{phases['read'].p99_ms:9.0f}"
            f"{phases['refresh'].p99_ms:9.0f}"
        )
    for name, text in descriptions.items():
        print(f"  {name}: {text}")


def goals(results: dict[str, dict[str, Phase]]) -> list[tuple[str, float, float]]:
    """(what, ratio, the most the ratio may be) for every goal of the issue, per keeper store."""
    guide = results["guide"]
    rows: list[tuple[str, float, float]] = []
    for name, phases in results.items():
        if name == "guide":
            continue

        def row(what: str, value: float, reference: float, limit: float, _name: str = name) -> None:
            # A reference of 0 (a phase that failed) is reported, not divided by.
            ratio = value / reference if reference > 0 else float("inf")
            rows.append((f"{_name}: {what}", ratio, limit))

        row("sign-in CPU / guide's", phases["signin"].cpu_ms, guide["signin"].cpu_ms, 0.5)
        row("sign-in p99 / guide's", phases["signin"].p99_ms, guide["signin"].p99_ms, 1.0)
        row("read CPU / guide's", phases["read"].cpu_ms, guide["read"].cpu_ms, 0.5)
        row("read CPU / own null route", phases["read"].cpu_ms, phases["null"].cpu_ms, 1.3)
        row("read p99 / guide's", phases["read"].p99_ms, guide["read"].p99_ms, 1.0)
        row("refresh CPU / guide's", phases["refresh"].cpu_ms, guide["refresh"].cpu_ms, 0.5)
        row("refresh p99 / guide's", phases["refresh"].p99_ms, guide["refresh"].p99_ms, 1.0)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signins", type=int, default=400)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--null", type=int, default=2000)
    parser.add_argument("--refresh-users", type=int, default=100)
    parser.add_argument("--refresh-reads", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--stacks", default="guide,sqlite,postgresql")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the whole comparison this many times"
    )
    parser.add_argument(
        "--slices",
        type=int,
        default=5,
        help="send each phase to the servers in this many slices, taken in turn",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--keeper-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the keeper's servers (GRANTKEEPER_ACCESS_LOG=false, say); repeatable",
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.slices < 1:
        parser.error("--rounds and --slices must be at least 1")
    for setting in args.keeper_env:
        name, equals, value = setting.partition("=")
        if not equals or not name.startswith("GRANTKEEPER_"):
            parser.error(f"--keeper-env takes GRANTKEEPER_NAME=VALUE, not {setting!r}")
        KEEPER_ENV[name] = value
    wanted = args.stacks.split(",")

    with tempfile.TemporaryDirectory(prefix="gk-bench-") as tmp:
        workdir = Path(tmp)
        emulator = Emulator.start(workdir)
        schema: str | None = None
        rounds: list[dict[str, dict[str, Phase]]] = []
        try:
            control = EmulatorControl(emulator.base_url)
            IOS_CLIENT.append(control.create_client("ios")["client_id"])
            groups = {"warm": WARM_SIGNINS, "main": args.signins, "refresh": args.refresh_users}
            users = {
                group: [control.create_user(f"{group}{i}@example.com") for i in range(count)]
                for group, count in groups.items()
            }
            workers = "--workers default" if _serve_supports_workers() else "one process"
            stacks = [
                Stack(
                    "guide",
                    "/signin",
                    lambda sub: f"/users/{sub}/token",
                    "/healthz",
                    _launch_guide,
                    "Flask + Flow.fetch_token + id_token.verify_token + sqlite3, "
                    "gunicorn 2 workers x 8 threads",
                ),
                Stack(
                    "keeper sqlite",
                    "/v1/google/signin",
                    lambda sub: f"/v1/users/{sub}/token",
                    "/healthz",
                    _keeper_launcher(None, None),
                    f"grantkeeper serve ({workers}), SQLite",
                ),
            ]
            if "postgresql" in wanted:
                schema = postgres_schema("gk_side")
                if schema is None:
                    print("[postgresql] skipped: not reachable at 127.0.0.1:5432")
                else:
                    stacks.append(
                        Stack(
                            "keeper postgresql",
                            "/v1/google/signin",
                            lambda sub: f"/v1/users/{sub}/token",
                            "/healthz",
                            _keeper_launcher(
                                os.environ.get("GRANTKEEPER_BENCH_POSTGRES", "")
                                or "postgresql://postgres@127.0.0.1:5432/test",
                                schema,
                            ),
                            f"grantkeeper serve ({workers}), PostgreSQL "
                            "(its figures exclude the PostgreSQL server's own CPU)",
                        )
                    )
            stacks = [s for s in stacks if s.name.split()[-1] in wanted or s.name in wanted]
            for number in range(1, args.rounds + 1):
                print(f"round {number} of {args.rounds} ...", file=sys.stderr, flush=True)
                # A fresh database (file, schema) for every server in every round: a round
                # signs the same users in again, and a returning user's sign-in is another path.
                round_dir = workdir / f"round{number}"
                round_dir.mkdir(exist_ok=True)
                rounds.append(run_round(stacks, emulator, control, users, args, round_dir))
            control.close()
        finally:
            emulator.stop()
            if schema is not None:
                drop_schema(schema)

    print(
        f"Side by side, one run: {args.signins} sign-ins, {args.reads} fresh-token reads, "
        f"{args.refresh_reads} reads that refresh, {args.null} null-route calls; "
        f"{args.concurrency} concurrent clients; {os.cpu_count()} cores"
        + (f"; {len(rounds)} rounds" if len(rounds) > 1 else "")
    )
    descriptions = {s.name: s.describe for s in stacks if rounds and s.name in rounds[0]}
    for number, results in enumerate(rounds, 1):
        if len(rounds) > 1:
            print(f"\nround {number}:")
        table(results, descriptions if number == len(rounds) else {})
    failed = sum(
        ph.failures for results in rounds for phases in results.values() for ph in phases.values()
    )
    if rounds and "guide" in rounds[0] and len(rounds[0]) > 1:
        per_round = [goals(results) for results in rounds]
        if len(rounds) == 1:
            print("\nGoals (issue 9), ratios from this run:")
        else:
            print(
                f"\nGoals (issue 9): each ratio within a round, the median of {len(rounds)} "
                "rounds judged (range in brackets):"
            )
        for index, (what, _, limit) in enumerate(per_round[0]):
            ratios = sorted(rows[index][1] for rows in per_round)
            middle = statistics.median(ratios)
            spread = f" [{ratios[0]:.2f}-{ratios[-1]:.2f}]" if len(ratios) > 1 else ""
            met = middle <= limit
            print(
                f"  {what:<44}{middle:7.2f}x{spread:<13}  goal {f'<= {limit}':<7} "
                f"{'met' if met else 'NOT met'}"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        name: {p: ph.to_json() for p, ph in phases.items()}
                        for name, phases in results.items()
                    }
                    for results in rounds
                ],
                indent=2,
            )
        )
    if failed:
        print(f"\n{failed} request(s) failed: these figures are not a measurement.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
