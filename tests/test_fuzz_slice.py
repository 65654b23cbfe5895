"""A slice of ``make fuzz``: the same harness (fuzz/run.py), 1,000 requests against a served
keeper. No 5xx, no hang, no dropped connection, no answer outside the OpenAPI document, no
secret echoed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_a_thousand_fuzzed_requests_find_nothing() -> None:
    run = subprocess.run(
        [sys.executable, "fuzz/run.py", "--requests", "1000", "--json"],
        cwd=ROOT,
        # Outside coverage (make test measures subprocesses through this variable): the slice
        # is a check, and tracing schemathesis and the served keeper would triple its time.
        env={k: v for k, v in os.environ.items() if k != "COVERAGE_PROCESS_CONFIG"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = run.stdout.strip().splitlines()
    assert lines, run.stderr
    summary = json.loads(lines[-1])
    assert summary["requests"] >= 1000
    found = {
        kind: summary[kind] for kind in ("server_errors", "hangs", "dropped", "schema", "echoes")
    }
    assert found == dict.fromkeys(found, 0), "\n".join(summary["examples"])
    assert run.returncode == 0, run.stderr
    # The cases reached the keeper's work, not only its key and input checks.
    assert summary["statuses"].get("200", 0) >= 100
