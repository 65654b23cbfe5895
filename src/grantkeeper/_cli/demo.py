"""``grantkeeper demo``: the whole story on the embedded default, checked step by step."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from grantkeeper._cli.runner import EXIT_FAILED
from grantkeeper.demo.faults import FAULTS
from grantkeeper.extras import require_extra


def demo(
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the SQLite store, key file, log and before/after pictures go "
        "(default: a fresh temporary directory, kept and named at the end).",
    ),
    inject_fault: str | None = typer.Option(
        None,
        "--inject-fault",
        hidden=True,
        help=f"Testing the demo: make the emulator fail ({', '.join(FAULTS)}).",
    ),
) -> None:
    """The whole story on the emulator, each step checked; exit 0 only if every step held.

    An iOS app signs a user in; later, with the user gone, a job enhances the user's photos.
    """
    if inject_fault is not None and inject_fault not in FAULTS:
        raise typer.BadParameter(f"one of {', '.join(FAULTS)}", param_hint="--inject-fault")
    require_extra("demo", "grantkeeper demo")
    from grantkeeper.demo.story import run_demo

    where = data_dir or Path(tempfile.mkdtemp(prefix="grantkeeper-demo-"))
    # Logs and CI capture read better a little wider than rich's 80-column default.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    held = run_demo(where, console, fault=inject_fault)
    console.print(f"The demo's data stays in {where}")
    if not held:
        raise typer.Exit(EXIT_FAILED)
