"""The one runner every command shares: its consoles, how it runs async work, how it prints
JSON and tables, how an error ends it.

Exit codes (the same for every command):

- ``0`` — done;
- ``1`` — a grantkeeper error: the first line on stderr is ``code: what happened`` (the
  ``code`` is the one in docs/errors.md), the second says what to do;
- ``2`` — a usage error (an unknown option, a bad value), reported by Click;
- ``130`` — interrupted (Ctrl-C).

Commands raise :class:`~grantkeeper.errors.GrantkeeperError` and let it go: :func:`main_guard`
in ``cli.main`` reports it, so there is no ``try``/``except`` per command.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table

from grantkeeper.errors import GrantkeeperError

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

#: Results go to stdout; progress, warnings and errors to stderr (so ``--json`` output pipes).
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, keep_whole: Sequence[str] = ()
) -> Table:
    """A table whose ``keep_whole`` columns (identifiers: ``sub``, email, client id) are never
    cut or folded, however narrow the terminal: other columns fold instead."""
    shown = Table(*[], title=None)
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
