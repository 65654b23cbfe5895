"""``--state FILE`` and ``--seed FILE``: an app's tests find the same clients and users (and
their ``sub``s) after the emulator restarts, and can start from a known world."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from grantkeeper.emulator import EmulatorConfig, run_emulator
from grantkeeper.emulator.persistence import StateFileError

GRANTKEEPER = str(Path(sys.executable).with_name("grantkeeper"))
WEB_ID = "1234-web.apps.googleusercontent.com"
IOS_ID = "1234-ios.apps.googleusercontent.com"
SEED = {
    "clients": [
        {"type": "web", "client_id": WEB_ID, "client_secret": "GOCSPX-seeded"},
        {"type": "ios", "client_id": IOS_ID},
    ],
    "users": [{"email": "alice@example.com", "sub": "111111111111111111111"}],
}


def _exchange(base_url: str, web: dict[str, str], code: str) -> httpx.Response:
    return httpx.post(
        base_url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "",
            "client_id": web["client_id"],
            "client_secret": web["client_secret"],
        },
    )


def test_clients_and_users_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "emulator-state.json"
    with run_emulator(EmulatorConfig(state_file=state)) as first:
        web = first.control.create_client("web", redirect_uris=["https://app.example/cb"])["web"]
        ios = first.control.create_client("ios")
        sub = first.control.create_user("bob@example.com", name="Bob B")["sub"]
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    with run_emulator(EmulatorConfig(state_file=state)) as second:
        clients = {
            c.get("web", c).get("client_id"): c
            for c in second.control.http.get("/emulator/clients").json()
        }
        assert clients[web["client_id"]]["web"]["client_secret"] == web["client_secret"]
        assert clients[web["client_id"]]["web"]["redirect_uris"] == ["https://app.example/cb"]
        assert ios["client_id"] in clients
        users = second.control.http.get("/emulator/users").json()
        assert [(u["email"], u["sub"], u["name"]) for u in users] == [
            ("bob@example.com", sub, "Bob B")
        ]
        # The client_secret.json the app's tests hold still works, and bob keeps his sub.
        code = second.control.server_auth_code(
            ios["client_id"], web["client_id"], "bob@example.com"
        )
        answer = _exchange(second.base_url, web, code)
        assert answer.status_code == 200, answer.text
        assert "refresh_token" in answer.json()


def test_seed_creates_clients_and_users_and_survives_reset(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    with run_emulator(EmulatorConfig(seed_file=seed)) as emulator:
        web = {"client_id": WEB_ID, "client_secret": "GOCSPX-seeded"}
        code = emulator.control.server_auth_code(IOS_ID, WEB_ID, "alice@example.com")
        assert _exchange(emulator.base_url, web, code).status_code == 200
        emulator.control.create_user("extra@example.com")
        emulator.control.http.post("/emulator/reset")
        emails = [u["email"] for u in emulator.control.http.get("/emulator/users").json()]
        assert emails == ["alice@example.com"]
        assert emulator.state.user_by_email("alice@example.com").sub == "111111111111111111111"  # type: ignore[union-attr]


def test_seed_with_state_does_not_duplicate(tmp_path: Path) -> None:
    seed, state = tmp_path / "seed.json", tmp_path / "state.json"
    seed.write_text(json.dumps(SEED))
    for _ in range(2):
        with run_emulator(EmulatorConfig(seed_file=seed, state_file=state)) as emulator:
            assert len(emulator.control.http.get("/emulator/clients").json()) == 2
            assert len(emulator.control.http.get("/emulator/users").json()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({"clients": [{"type": "desktop"}]}), "clients.0.type"),
        (json.dumps({"users": [{"email": "a@example.com", "sub": "abc"}]}), "users.0.sub"),
        (json.dumps({"user": []}), "user: Extra inputs are not permitted"),
    ],
)
def test_a_bad_seed_is_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(content)
    with pytest.raises(StateFileError, match=message), run_emulator(EmulatorConfig(seed_file=seed)):
        pass


@pytest.mark.slow
def test_cli_state_and_seed(tmp_path: Path) -> None:
    seed, state = tmp_path / "seed.json", tmp_path / "state.json"
    seed.write_text(json.dumps({"clients": [{"type": "desktop"}]}))
    refused = subprocess.run(
        [GRANTKEEPER, "emulator", "--port", "0", "--seed", str(seed), "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("grantkeeper emulator: The --seed file")
    assert "clients.0.type" in refused.stderr
    assert "Traceback" not in refused.stderr
