"""Telling the demo as numbered steps: each says what it does, checks what it claims, and
ends with what it proved (or why it failed) and how long it took."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from google.auth.exceptions import GoogleAuthError
from googleapiclient.errors import HttpError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from grantkeeper.errors import GrantkeeperError


class StepFailed(Exception):
    """A step's check did not hold; the message says what was expected and what was seen."""


def check(condition: bool, why: str) -> None:
    """Hold the step to a claim: ``why`` describes the failure if ``condition`` is false."""
    if not condition:
        raise StepFailed(why)


@dataclass(frozen=True)
class Step:
    title: str
    run: Callable[[], str]
    """Does the step and returns one sentence: what it proved."""


@dataclass(frozen=True)
class Outcome:
    number: int
    title: str
    ok: bool
    seconds: float
    proved: str = ""
    error: str = ""


def explain(error: BaseException) -> str:
    """One line a person can act on, for any failure a step can meet (never a token)."""
    if isinstance(error, StepFailed):
        return str(error)
    if isinstance(error, GrantkeeperError):
        return f"{error.code}: {error.message} {error.advice}".strip()
    if isinstance(error, HttpError):
        return f"the API answered {error.status_code}: {error.reason}"
    if isinstance(error, GoogleAuthError):
        return f"{type(error).__name__}: {error}"
    return f"{type(error).__name__}: {error}"


class Narrator:
    """Runs steps in order, stops at the first that fails, and prints the report."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.outcomes: list[Outcome] = []

    def say(self, text: str) -> None:
        """A detail of the current step (plain text: never parsed as markup)."""
        self.console.print("   " + escape(text), highlight=False, soft_wrap=True)

    def run(self, steps: Sequence[Step]) -> bool:
        total = len(steps)
        for number, step in enumerate(steps, start=1):
            self.console.rule(f"[bold]{number}/{total}  {escape(step.title)}", align="left")
            started = time.perf_counter()
            try:
                proved = step.run()
            except Exception as error:  # every failure is reported, then the demo stops
                outcome = Outcome(
                    number, step.title, False, time.perf_counter() - started, error=explain(error)
                )
                self.outcomes.append(outcome)
                self.console.print(f"   [red bold]✗ failed:[/] {escape(outcome.error)}")
                return False
            outcome = Outcome(number, step.title, True, time.perf_counter() - started, proved)
            self.outcomes.append(outcome)
            self.console.print(
                f"   [green bold]✓ proved:[/] {escape(proved)}  [dim]({outcome.seconds:.2f} s)[/]"
            )
        return True

    def report(self, total_steps: int) -> None:
        table = Table(title="What the demo showed", title_justify="left", show_lines=False)
        table.add_column("#", justify="right")
        table.add_column("step")
        table.add_column("time", justify="right")
        table.add_column("result")
        for outcome in self.outcomes:
            result = (
                f"[green]✓[/] {escape(outcome.proved)}"
                if outcome.ok
                else f"[red]✗ {escape(outcome.error)}[/]"
            )
            table.add_row(
                str(outcome.number), escape(outcome.title), f"{outcome.seconds:.2f} s", result
            )
        self.console.print(table)
        elapsed = sum(o.seconds for o in self.outcomes)
        failed = next((o for o in self.outcomes if not o.ok), None)
        if failed is None and len(self.outcomes) == total_steps:
            self.console.print(
                f"[green bold]Every step held[/] ({total_steps} steps in {elapsed:.1f} s)."
            )
        elif failed is not None:
            self.console.print(
                f"[red bold]The demo failed at step {failed.number}, "
                f"{escape(failed.title)}:[/] {escape(failed.error)}"
            )
