"""The one runner every command shares: its consoles, how it runs async work, how it prints
JSON and tables, how an error ends it.

Exit codes (the same for every command):

- ``0`` — done;
- ``1`` — a grantkeeper error: the first line on stderr is ``code: what happened`` (the
  ``code`` is the one in docs/errors.md), the second says what to do;
- ``2`` — a usage error (an unknown option, a bad value), reported by Click;
- ``130`` — interrupted (Ctrl-C).

Commands raise :class:`~grantkeeper.errors.GrantkeeperError` and let it go: every command is
registered on a :class:`Commands` group, which wraps it in :func:`guarded`, so there is no
``try``/``except`` per command, and the same holds in-process (``typer.testing.CliRunner``) as
from the ``grantkeeper`` script. :func:`main_guard` in ``cli.main`` is the net under the rest
(the root callback, Click itself).
"""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperArgument, TyperCommand

from grantkeeper.errors import GrantkeeperError

T = TypeVar("T")
P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Results go to stdout; progress, warnings and errors to stderr (so ``--json`` output pipes).
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def say(text: str) -> None:
    """A line of plain text (no rich markup read into it) on stdout."""
    out.print(text, markup=False)


def warn(text: str) -> None:
    """A line of plain text on stderr: progress, warnings."""
    err.print(text, markup=False)


def run(work: Callable[[], Awaitable[T]] | Coroutine[Any, Any, T]) -> T:
    """Run async work to completion on a fresh event loop."""
    if isinstance(work, Coroutine):
        return asyncio.run(work)

    async def main() -> T:
        return await work()

    return asyncio.run(main())


def echo_json(value: Any) -> None:
    out.print(json.dumps(value, indent=2, sort_keys=True, default=str), markup=False)


def table(
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    keep_whole: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """A table whose ``keep_whole`` columns (identifiers: ``sub``, email, client id) are never
    cut or folded, however narrow the terminal: other columns fold instead."""
    shown = Table(title=title)
    for index, name in enumerate(columns):
        if name in keep_whole:
            longest = max([len(name), *(len(row[index]) for row in rows)])
            shown.add_column(name, no_wrap=True, min_width=longest, overflow="ignore")
        else:
            shown.add_column(name, overflow="fold")
    for row in rows:
        shown.add_row(*row)
    return shown


def report(error: GrantkeeperError) -> None:
    """``code: message`` then the advice, on stderr: one line a script can match on."""
    err.print(f"{error.code}: {error.message}", markup=False)
    err.print(error.advice, markup=False)


@contextmanager
def main_guard() -> Iterator[None]:
    """Around the whole CLI: a grantkeeper error ends the command in two lines and exit code 1,
    never a traceback; Ctrl-C ends it quietly with 130."""
    try:
        yield
    except GrantkeeperError as error:
        report(error)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(EXIT_INTERRUPTED)


def guarded(command: Callable[P, T]) -> Callable[P, T]:
    """The command, ending on a grantkeeper error in :func:`report` and exit code 1, and on
    Ctrl-C quietly with 130 (Typer reads the parameters through ``__wrapped__``)."""

    @functools.wraps(command)
    def run_command(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except GrantkeeperError as error:
            report(error)
            raise typer.Exit(EXIT_FAILED) from None
        except KeyboardInterrupt:
            err.print("interrupted", markup=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return run_command


def usage_error(message: str) -> NoReturn:
    """A value given on the command line that cannot be used (a file, an option's content):
    the message on stderr and exit code 2, as Click does for a bad option."""
    err.print(message, markup=False)
    raise typer.Exit(EXIT_USAGE)


class _PlainArgument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # "SUB  The user's Google subject id.", not "SUB <str>"


class PlainCommand(TyperCommand):
    """Help in argparse's plain style: a value's placeholder is its name (``--port PORT``,
    ``SUB``) unless the command names one, not a type (``<int range>``, ``<list[str]>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
            if param.metavar is None and not flag and param.name:
                param.metavar = param.name.upper()
            if type(param) is TyperArgument:
                param.__class__ = _PlainArgument


class Commands(typer.Typer):
    """A command group (or the root) whose every command runs :func:`guarded`."""

    def __init__(self, **options: Any) -> None:
        # Click's plain help: flags without a "<bool>" type column, no boxes to garble in a
        # pager, a log or a narrow terminal.
        options.setdefault("rich_markup_mode", None)
        options.setdefault("add_completion", False)
        super().__init__(**options)

    def command(self, name: str | None = None, **options: Any) -> Callable[[F], F]:
        options.setdefault("cls", PlainCommand)
        register = super().command(name, **options)

        def decorator(function: F) -> F:
            register(guarded(function))
            return function

        return decorator
