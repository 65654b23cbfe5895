"""``grantkeeper demo`` as a user runs it: a subprocess that tells the whole story."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from grantkeeper.demo.story import PICTURES

from ..cli_in_process import invoke

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

STEPS = (
    "Start the emulator",
    "Register the app",
    "Start the keeper's HTTP API",
    "Create a test user with their own photos",
    "The iOS app signs in",
    "Drive: the app folder",
    "The app asks for Google Photos access, incrementally",
    "The user picks photos with the Google Photos Picker",
    "The user goes offline",
    "The offline job enhances the pictures",
    "Nothing leaked",
)
PICKER = "https://www.googleapis.com/auth/photospicker.mediaitems.readonly"


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "grantkeeper", "demo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # A clean environment (nothing of the user's configures it); coverage.py's own
        # variables pass so `make coverage` measures the demo too.
        env={
            "PATH": "/usr/bin:/bin",
            "COLUMNS": "200",
            **{k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")},
        },
    )


def test_the_demo_tells_every_step_and_exits_0(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    result = run_demo("--data-dir", str(data))
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for number, step in enumerate(STEPS, start=1):
        assert re.search(rf"{number}/11\s+{re.escape(step)}", out), step
    assert out.count("✓ proved:") == len(STEPS)
    assert "Every step held (11 steps" in out
    # The profile claims of Google's guide and the granted scopes are printed.
    for claim in ("sub", "email_verified", "given_name", "family_name"):
        assert re.search(rf"^\s+{claim}\s", out, re.M), claim
    assert "https://www.googleapis.com/auth/photoslibrary.appendonly" in out
    # The Picker step: the scope asked for incrementally, the pickerUri, the base URLs' hour.
    assert PICKER in out
    assert re.search(r"pickerUri http://127\.0\.0\.1:\d+/picker/[0-9a-f-]{36}", out)
    assert "mediaItemsSet true" in out
    assert re.search(r"base URLs listed at .* they die at ", out)
    assert "base URL now answers HTTP 403: expired" in out
    assert "seed" not in out.lower()
    originals = sorted((data / "photos" / "originals").glob("*.jpg"))
    assert len(originals) == PICTURES
    # The before/after pictures are where the demo says, and they differ.
    before = sorted((data / "photos" / "before").glob("*.jpg"))
    after = sorted((data / "photos" / "after").glob("*.jpg"))
    assert len(before) == len(after) == PICTURES
    assert f"{data / 'photos'}/before" in out
    for was, now in zip(before, after, strict=True):
        with Image.open(was) as a, Image.open(now) as b:
            assert a.size == b.size
            assert a.tobytes() != b.tobytes()
    # The embedded default: a SQLite store holding the user and an active grant.
    with sqlite3.connect(data / "grantkeeper.sqlite3") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        assert any("grant" in name for name in tables)
    assert (data / "encryption.key").stat().st_mode & 0o777 == 0o600


def test_a_revoked_grant_fails_the_offline_step_and_exits_non_zero(tmp_path: Path) -> None:
    result = run_demo("--data-dir", str(tmp_path / "demo"), "--inject-fault", "refresh")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert out.count("✓ proved:") == 9
    assert "The demo failed at step 10, The offline job enhances the pictures: grant_revoked" in out
    assert "Every step held" not in out
    assert "11/11" not in out  # the story stops at the failing step


def test_a_photos_outage_names_the_step_and_the_answer(tmp_path: Path) -> None:
    result = run_demo("--data-dir", str(tmp_path / "demo"), "--inject-fault", "photos")
    assert result.returncode == 1
    assert "failed at step 10" in result.stdout
    assert "the API answered 503" in result.stdout


def test_an_unknown_fault_is_a_usage_error() -> None:
    # Refused while parsing the options, before anything starts: in-process is enough.
    result = invoke({}, "demo", "--inject-fault", "gremlins")
    assert result.returncode == 2
    assert "refresh" in result.stderr
