"""``make fuzz``: schemathesis against a real ``grantkeeper serve``, over real HTTP.

The keeper serves on a throwaway SQLite data directory in front of a ``grantkeeper emulator``
process, with a service key (token, refresh, disconnect), a management key and an ops key, so
every route of its OpenAPI document is reached past its key check. Cases come from the
document (schemathesis, positive and negative data); some are then given real values so they
go deeper than the key and input checks: a live user's ``sub``, a fresh server auth code, the
access token the keeper handed out last.

Every answer is checked:

- no 5xx (``not_a_server_error``), and no connection dropped;
- no hang: each request has a timeout (``--timeout``);
- the answer matches the document (status, content type, schema);
- no secret echoed: neither the keys and the client secret the keeper was started with, nor a
  code, token or key the request carried, appears in the answer's body or headers.

It prints a summary (requests, 5xx, hangs, dropped, schema, echoes) and exits 1 on any failure.
``--json`` prints the summary as one JSON line instead (the test suite reads it).

    .venv/bin/python fuzz/run.py --requests 10000
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import Failure, FailureGroup

from grantkeeper import errors_doc
from grantkeeper.crypto import generate_key
from grantkeeper.emulator.client import EmulatorControl

SCOPES = ("openid", "email", "profile", "https://www.googleapis.com/auth/drive.appdata")
#: Sent values shorter than this are not looked for in answers: a one-letter "code" turns up in
#: any English sentence.
SHORTEST_SECRET = 8
USERS = 6
OPS_PATHS = ("/metrics", "/readyz", "/openapi.json", "/docs")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schemathesis.serializer("application/secevent+jwt")
def security_event_token(ctx: Any, value: Any) -> bytes:
    """RISC bodies are a bare JWT; a drawn string goes as it is, invalid UTF-8 included."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")


def forged_security_event(rng: random.Random) -> str:
    """A JWT-shaped body: a header and claims that parse, signed by nobody."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": rng.choice(["RS256", "none", "HS256"]), "kid": secrets.token_hex(8)}
    claims = {
        "iss": "https://accounts.google.com/",
        "aud": rng.choice(["", "fuzz", secrets.token_hex(4)]),
        "iat": rng.randint(0, 2**33),
        "jti": secrets.token_hex(8),
        "events": {
            "https://schemas.openid.net/secevent/risc/event-type/sessions-revoked": {
                "subject": {"subject_type": "iss-sub", "sub": secrets.token_hex(6)}
            }
        },
    }
    return f"{part(header)}.{part(claims)}.{secrets.token_urlsafe(rng.randint(0, 300))}"


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    hangs: int = 0
    dropped: int = 0
    schema: int = 0
    echoes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def failed(self, kind: str, case: Case, detail: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 20:
            query = f" query={case.query}" if case.query else ""
            self.examples.append(f"{kind}: {case.method} {case.formatted_path}{query}: {detail}")

    @property
    def failures(self) -> int:
        return self.server_errors + self.hangs + self.dropped + self.schema + self.echoes


# -- the processes ---------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def grantkeeper(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    """A ``grantkeeper`` command whose output goes to ``log`` (a pipe nobody reads would fill
    up and stop the server)."""
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "grantkeeper", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )


def first_line(log: Path, process: subprocess.Popen[str], seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines()
        if lines:
            return lines[0].strip()
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"{log.name}: no first line:\n{log.read_text()}")


@contextmanager
def running(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_up(url: str, process: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the process ended before answering {url} (see its log)")
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing answered {url} within {seconds:.0f} s")
        time.sleep(0.1)


@dataclass
class Keeper:
    """A served keeper in front of an emulator, and what the fuzzer may use of it."""

    base: str
    control: EmulatorControl
    ios_client: str
    web_client: str
    service_key: str
    manage_key: str
    ops_key: str
    #: Never to be seen in an answer, whatever the request.
    fixed_secrets: tuple[str, ...]
    emails: list[str]


@contextmanager
def keeper_served(directory: Path, workers: int) -> Iterator[Keeper]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRANTKEEPER_")}
    with ExitStack() as stack:
        emulator_log = directory / "emulator.log"
        emulator = stack.enter_context(
            running(
                grantkeeper(
                    "emulator",
                    "--port",
                    "0",
                    "--data-dir",
                    str(directory),
                    env=env,
                    log=emulator_log,
                )
            )
        )
        emulator_url = first_line(emulator_log, emulator)
        if not emulator_url.startswith("http"):
            raise SystemExit(f"the emulator did not start: {emulator_url}")
        wait_until_up(emulator_url + "/.well-known/openid-configuration", emulator)
        control = stack.enter_context(EmulatorControl(emulator_url))
        web = control.create_client("web")
        ios = control.create_client("ios")["client_id"]
        android = control.create_client("android")["client_id"]
        emails = [f"fuzz{n}@example.com" for n in range(USERS)]
        for email in emails:
            control.create_user(email, name=f"Fuzz {email}")
        secrets_file = directory / "client_secret.json"
        secrets_file.write_text(json.dumps(web))
        service_key = "svc-" + secrets.token_urlsafe(24)
        manage_key = "mgr-" + secrets.token_urlsafe(24)
        ops_key = "ops-" + secrets.token_urlsafe(24)
        encryption_key = generate_key("fuzz")
        env.update(
            GRANTKEEPER_CLIENT_SECRETS_FILE=str(secrets_file),
            GRANTKEEPER_ISSUER=emulator_url,
            GRANTKEEPER_ALLOWED_CLIENT_IDS=f"{ios},{android},{web['web']['client_id']}",
            GRANTKEEPER_DATA_DIR=str(directory / "data"),
            GRANTKEEPER_ENCRYPTION_KEYS=encryption_key,
            GRANTKEEPER_SERVICE_API_KEYS=f"fuzz-worker:{service_key},fuzz-admin:{manage_key};"
            "ops=manage+token+refresh+disconnect",
            GRANTKEEPER_OPS_KEY=ops_key,
            GRANTKEEPER_ALLOW_INSECURE_HTTP="true",
            # The fuzzer is one client at one address, faster than any app: limits ten times
            # the defaults still answer some of its requests with 429, not most.
            GRANTKEEPER_SIGNIN_RATE_PER_MINUTE="600",
            GRANTKEEPER_TOKEN_RATE_PER_MINUTE="60000",
            GRANTKEEPER_LOG_FORMAT="json",
        )
        port = free_port()
        serve = stack.enter_context(
            running(
                grantkeeper(
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                    env=env,
                    log=directory / "keeper.log",
                )
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base + "/healthz", serve)
        client_secret = web["web"]["client_secret"]
        yield Keeper(
            base=base,
            control=control,
            ios_client=ios,
            web_client=web["web"]["client_id"],
            service_key=service_key,
            manage_key=manage_key,
            ops_key=ops_key,
            fixed_secrets=(service_key, manage_key, ops_key, client_secret, encryption_key),
            emails=emails,
        )


# -- the fuzzing -----------------------------------------------------------------------------


class Fuzzer:
    """Draws cases for each operation, makes some of them real, sends them and checks the
    answers."""

    def __init__(self, keeper: Keeper, timeout: float, rng: random.Random) -> None:
        self.keeper = keeper
        self.timeout = timeout
        self.rng = rng
        self.session = requests.Session()
        self.tally = Tally()
        self.subs: list[str] = []
        self.last_access_token: dict[str, str] = {}
        #: The OpenAPI document's text (see sent_secrets).
        self.vocabulary = ""
        #: Operation and mode pairs that have no case to draw (no input to make invalid).
        self.exhausted: set[tuple[str, GenerationMode]] = set()

    # Real values, so that cases get past the checks in front of the keeper's work.

    def fresh_code(self) -> str:
        email = self.rng.choice(self.keeper.emails)
        return self.keeper.control.server_auth_code(
            self.keeper.ios_client, self.keeper.web_client, email, SCOPES
        )

    def sign_in_everyone(self) -> None:
        for email in self.keeper.emails:
            code = self.keeper.control.server_auth_code(
                self.keeper.ios_client, self.keeper.web_client, email, SCOPES
            )
            answer = self.session.post(
                self.keeper.base + "/v1/google/signin",
                json={"code": code},
                headers={"X-Requested-With": "fuzz"},
                timeout=self.timeout,
            )
            if answer.status_code != 200:
                continue  # 429: the next round signs them in
            sub = answer.json()["user"]["sub"]
            if sub not in self.subs:
                self.subs.append(sub)

    def key_for(self, case: Case) -> str:
        path = case.operation.path
        if path in OPS_PATHS:
            return self.keeper.ops_key
        if path.startswith("/v1/manage"):
            return self.keeper.manage_key
        return self.rng.choice((self.keeper.service_key, self.keeper.manage_key))

    def make_real(self, case: Case) -> None:
        rng = self.rng
        headers = dict(case.headers or {})
        parameters = case.path_parameters
        if parameters and "sub" in parameters and self.subs and rng.random() < 0.7:
            parameters["sub"] = rng.choice(self.subs)
        if "security" in case.operation.definition.raw or case.operation.path in OPS_PATHS:
            roll = rng.random()
            if roll < 0.8:
                headers["Authorization"] = f"Bearer {self.key_for(case)}"
            elif roll < 0.9:
                headers["Authorization"] = f"Bearer {secrets.token_urlsafe(rng.randint(1, 40))}"
        if case.operation.path == "/v1/google/signin":
            if rng.random() < 0.9:
                headers["X-Requested-With"] = "com.example.fuzz"
            if isinstance(case.body, dict) and rng.random() < 0.25:
                case.body["code"] = self.fresh_code()
                if rng.random() < 0.5:
                    case.body.pop("nonce", None)
                if rng.random() < 0.5:
                    case.body["platform"] = "ios"
        if case.operation.path.endswith("/token/refresh") and isinstance(case.body, dict):
            sub = (case.path_parameters or {}).get("sub")
            if sub in self.last_access_token and rng.random() < 0.5:
                case.body["rejected_token"] = self.last_access_token[sub]
        if case.operation.path == "/v1/google/risc" and rng.random() < 0.4:
            case.body = forged_security_event(rng)
        case.headers = headers

    # What the request carried that must not come back.

    def sent_secrets(self, case: Case) -> set[str]:
        sent: set[str] = set()
        authorization = (case.headers or {}).get("Authorization")
        if isinstance(authorization, str):
            sent.add(authorization.removeprefix("Bearer ").strip())
        if isinstance(case.body, dict):
            for name in ("code", "rejected_token"):
                value = case.body.get(name)
                if isinstance(value, str):
                    sent.add(value)
        elif isinstance(case.body, str | bytes) and case.operation.path == "/v1/google/risc":
            sent.add(
                case.body.decode("utf-8", "replace") if isinstance(case.body, bytes) else case.body
            )
        # schemathesis reuses what it drew and what the document says: a value that is also in
        # the request's path or query (which the keeper may name in "instance"), or a word of
        # the document ("instance", "access_token"), is not a secret of this request.
        public = unquote(case.formatted_path) + " " + json.dumps(case.query or {})
        made_up = {
            value
            for value in sent
            if len(value.strip()) >= SHORTEST_SECRET
            and value not in public
            and value not in self.vocabulary
        }
        return made_up | set(self.keeper.fixed_secrets)

    def echoed(self, case: Case, response: requests.Response) -> str | None:
        text = response.content.decode("utf-8", "replace")
        fixed = set(self.keeper.fixed_secrets)
        for value in self.sent_secrets(case):
            # A value the fuzzer made up may be shown; the keeper's own secrets never are.
            shown = "one of the keeper's secrets" if value in fixed else repr(value)
            if value in text:
                return f"{shown} is in the answer's body"
            for name, header in response.headers.items():
                if value in header:
                    return f"{shown} is in the answer's {name} header: {header!r}"
        return None

    # One case.

    def run_case(self, case: Case) -> None:
        self.make_real(case)
        tally = self.tally
        tally.requests += 1
        tally.per_operation[f"{case.method} {case.operation.path}"] += 1
        try:
            response = case.call(
                base_url=self.keeper.base, session=self.session, timeout=self.timeout
            )
        except requests.Timeout:
            tally.failed("hangs", case, f"no answer within {self.timeout} s")
            self.session = requests.Session()
            return
        except requests.ConnectionError as error:
            tally.failed("dropped", case, f"{type(error).__name__}: {error}")
            self.session = requests.Session()
            return
        status = response.status_code
        tally.statuses[status] += 1
        echo = self.echoed(case, response)
        if echo:
            tally.failed("echoes", case, echo)
        self.learn(case, response)
        try:
            case.validate_response(response, checks=CHECKS)
        except (Failure, FailureGroup) as error:
            # No outage is staged here: any 5xx, 503 included, is a finding.
            kind = "server_errors" if status >= 500 else "schema"
            tally.failed(kind, case, f"{status} {response.text[:2000]}: {error}")

    def learn(self, case: Case, response: requests.Response) -> None:
        if response.status_code != 200:
            return
        try:
            answer = response.json()
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        if case.operation.path == "/v1/google/signin" and isinstance(answer.get("user"), dict):
            sub = answer["user"].get("sub")
            if isinstance(sub, str) and sub not in self.subs:
                self.subs.append(sub)
        if "access_token" in answer and isinstance(answer.get("sub"), str):
            self.last_access_token[answer["sub"]] = answer["access_token"]

    # All cases.

    def fuzz(self, total: int, progress: Callable[[str], None]) -> Tally:
        document = self.session.get(
            self.keeper.base + "/openapi.json",
            headers={"Authorization": f"Bearer {self.keeper.ops_key}"},
            timeout=self.timeout,
        )
        document.raise_for_status()
        # The keeper's own words: its document, and every error's title and advice (Hypothesis
        # draws strings from the source's constants too: a made-up body "emulator" came back in
        # the advice of a refused security event, "… (or the emulator's) …").
        self.vocabulary = document.text + "\n" + errors_doc.render()
        schema = schemathesis.openapi.from_dict(document.json())
        operations = [result.ok() for result in schema.get_all_operations()]
        self.sign_in_everyone()
        started = time.monotonic()
        rounds = 0
        while self.tally.requests < total:
            rounds += 1
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    left = total - self.tally.requests
                    if left <= 0:
                        break
                    self.draw(operation, mode, min(left, 25))
            if rounds % 5 == 0:
                self.sign_in_everyone()  # disconnects and RISC may have ended some grants
                progress(
                    f"{self.tally.requests} requests, {time.monotonic() - started:.0f} s, "
                    f"{self.tally.failures} failures"
                )
        return self.tally

    def draw(self, operation: Any, mode: GenerationMode, count: int) -> None:
        if (operation.label, mode) in self.exhausted:
            return
        strategy = operation.as_strategy(generation_mode=mode)

        @hypothesis.settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=False,
            verbosity=hypothesis.Verbosity.quiet,  # no "@seed" note for an exhausted case space
        )
        @given(case=strategy)
        def run(case: Case) -> None:
            self.run_case(case)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            self.exhausted.add((operation.label, mode))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="at least this many")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--workers", type=int, default=1, help="keeper worker processes")
    parser.add_argument("--seed", type=int, default=None, help="for the real-value choices")
    parser.add_argument("--json", action="store_true", help="the summary as one JSON line")
    parser.add_argument("--logs", type=Path, help="copy the keeper's and emulator's logs here")
    options = parser.parse_args(argv)
    rng = random.Random(options.seed)
    quiet = options.json

    def progress(line: str) -> None:
        if not quiet:
            print(line, flush=True)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grantkeeper-fuzz-") as directory:
        with keeper_served(Path(directory), options.workers) as keeper:
            progress(f"keeper {keeper.base} (SQLite in {directory}), emulator beside it")
            tally = Fuzzer(keeper, options.timeout, rng).fuzz(options.requests, progress)
        if options.logs:
            options.logs.mkdir(parents=True, exist_ok=True)
            for log in Path(directory).glob("*.log"):
                shutil.copy(log, options.logs / log.name)
    seconds = time.monotonic() - started
    summary = {
        "requests": tally.requests,
        "seconds": round(seconds, 1),
        "server_errors": tally.server_errors,
        "hangs": tally.hangs,
        "dropped": tally.dropped,
        "schema": tally.schema,
        "echoes": tally.echoes,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "operations": dict(sorted(tally.per_operation.items())),
        "examples": tally.examples,
    }
    if options.json:
        print(json.dumps(summary))
    else:
        print(f"requests: {tally.requests} in {seconds:.0f} s")
        print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items())))
        for name, count in sorted(tally.per_operation.items()):
            print(f"  {count:6d}  {name}")
        for example in tally.examples:
            print("  " + example)
        print(
            f"5xx: {tally.server_errors}  hangs: {tally.hangs}  dropped: {tally.dropped}  "
            f"schema: {tally.schema}  echoes: {tally.echoes}"
        )
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
