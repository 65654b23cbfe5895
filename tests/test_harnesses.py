"""``make fuzz`` and ``make chaos`` are not run by the suite (too slow), but their scripts must
still start: each imports what it needs and answers ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Starts processes: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    [ROOT / "fuzz" / "run.py", *(p for p in (ROOT / "chaos").glob("*.py") if p.name[0] != "_")]
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_script_starts(script: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "usage:" in run.stdout
