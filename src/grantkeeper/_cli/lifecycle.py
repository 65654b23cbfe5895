"""``grantkeeper keys|sweep|audit|revoke``: the grant life cycle from the command line.

Each command opens the :class:`Keeper` from the ``GRANTKEEPER_*`` settings (its provider client
only when it must talk to Google, so reading commands need no client secrets), does one thing,
and exits non-zero with the error's code and advice when it cannot.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grantkeeper._cli import runner
from grantkeeper._cli.runner import Commands, echo_json, err, out, run, say, table, warn
from grantkeeper.errors import GrantkeeperError
from grantkeeper.keeper import (
    MAX_PAGE,
    Keeper,
    KeyStatus,
    RotationReport,
    SweepOptions,
    SweepReport,
    generate_key,
)
from grantkeeper.settings import Settings
from grantkeeper.webhooks import generate_secret

keys_app = Commands(help="Encryption keys of stored tokens.", no_args_is_help=True)


# -- keys ----------------------------------------------------------------------------------------


@keys_app.command("generate")
def keys_generate(
    kid: str | None = typer.Option(None, "--kid", help="Key id (default: random)."),
    webhook_secret: bool = typer.Option(
        False, "--webhook-secret", help="Print a GRANTKEEPER_WEBHOOK_SECRET (whsec_…) instead."
    ),
) -> None:
    """Print a new key for GRANTKEEPER_ENCRYPTION_KEYS (put it first to make it primary)."""
    try:
        say(generate_secret() if webhook_secret else generate_key(kid))
    except GrantkeeperError as error:  # a kid that is no kid: a usage error
        raise typer.BadParameter(error.message, param_hint="--kid") from None


@keys_app.command("status")
def keys_status(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """Count stored tokens per key id, so you know when an old key can leave the ring."""

    async def work() -> KeyStatus:
        async with Keeper(Settings()) as keeper:
            return await keeper.key_status()

    found = run(work())
    if as_json:
        echo_json(found.to_json())
        return
    rows = []
    for kid in dict.fromkeys([*found.ring, *sorted(found.values_by_kid)]):
        role = "primary" if kid == found.primary else "in ring" if kid in found.ring else "MISSING"
        rows.append([kid, role, str(found.values_by_kid.get(kid, 0))])
    out.print(table(("key id", "role", "stored values"), rows, keep_whole=("key id",)))
    if found.stale:
        say(f"{found.stale} values are under old keys: run grantkeeper keys rotate.")
    else:
        say("Every stored value is under the primary key.")
    if found.retirable:
        say("Unused, can be removed from the ring: " + ", ".join(found.retirable))
    if found.unknown:
        warn("Values under keys the ring lacks (cannot be decrypted): " + ", ".join(found.unknown))
        raise typer.Exit(runner.EXIT_FAILED)


@keys_app.command("rotate")
def keys_rotate(
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Grants per transaction."),
    pause: float = typer.Option(
        0.0, "--pause", min=0.0, help="Seconds between batches, to go easy on a busy database."
    ),
) -> None:
    """Re-encrypt every stored token under the primary key; safe to interrupt and re-run."""

    async def work() -> RotationReport:
        async with Keeper(Settings()) as keeper:
            before = await keeper.key_status()
            with Progress(
                TextColumn("re-encrypting under [bold]{task.fields[primary]}[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            ) as progress:
                task = progress.add_task("rotate", total=before.stale, primary=before.primary)
                return await keeper.rotate_keys(
                    batch_size=batch_size,
                    pause=pause,
                    on_progress=lambda done: progress.advance(task, done),
                )

    report = run(work())
    say(
        f"Rotated {report.rewritten} values in {report.batches} batches; "
        f"{report.remaining} left under old keys (primary {report.primary})."
    )


# -- sweep ---------------------------------------------------------------------------------------


def sweep_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable, every grant listed."),
    keep_alive: bool = typer.Option(
        False, "--keep-alive", help="Refresh idle grants so Google does not drop them."
    ),
    idle_days: int = typer.Option(90, "--idle-days", min=1, help="A grant is idle after this."),
    expiring_days: int = typer.Option(
        3, "--expiring-days", min=0, help="Warn about time-limited grants ending this soon."
    ),
) -> None:
    """Every grant's health; retries pending revocations; --keep-alive refreshes idle grants."""
    settings = Settings()
    options = SweepOptions(
        idle_after=timedelta(days=idle_days),
        expiring_within=timedelta(days=expiring_days),
        keep_alive=keep_alive,
    )

    # No OAuth client configured: report only (nothing can be sent to Google).
    with_provider = settings.client_secrets_file is not None

    async def work() -> SweepReport:
        async with Keeper(settings) as keeper:
            total = sum((await keeper.grant_counts()).values())
            with Progress(
                TextColumn("sweeping grants"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("sweep", total=total)
                return await keeper.sweep(
                    options,
                    report_only=not with_provider,
                    on_progress=lambda done: progress.advance(task, done),
                )

    report = run(work())
    if as_json:
        echo_json(report.to_json())
        return
    counts = [[state, str(count)] for state, count in report.counts.items() if count]
    out.print(table(("state", "grants"), counts, title=f"{report.total} grants"))
    troubled = [g for g in report.grants if g.state not in ("healthy",)]
    if troubled:
        rows = [
            [g.sub, g.client_id, str(g.state), g.reason or "", g.action or ""]
            for g in troubled[:50]
        ]
        columns = ("sub", "client", "state", "reason", "action")
        out.print(table(columns, rows, keep_whole=("sub", "client")))
        if len(troubled) > 50:
            say(f"… and {len(troubled) - 50} more (use --json).")
    for action, count in report.actions.items():
        say(f"{action}: {count}")
    if not with_provider:
        say("No GRANTKEEPER_CLIENT_SECRETS_FILE: pending revocations and keep-alive skipped.")


# -- audit and revoke ----------------------------------------------------------------------------


def audit_command(
    sub: str | None = typer.Argument(None, help="Only this user's events."),
    kind: str | None = typer.Option(None, "--kind", help="sign_in, refresh, risc, disconnect, …"),
    limit: int = typer.Option(100, "--limit", min=1, help="Newest events first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """The audit log: sign-ins, token hand-outs by service key, refreshes, revocations, RISC
    events, key rotations (the management API's listing)."""

    async def work() -> list[dict[str, Any]]:
        async with Keeper(Settings(), migrate=False) as keeper:
            found: list[dict[str, Any]] = []
            before: int | None = None
            while len(found) < limit:
                page = await keeper.audit_page(
                    sub=sub, kind=kind, before=before, limit=min(limit - len(found), MAX_PAGE)
                )
                found.extend(page.items)
                if page.next is None:
                    break
                before = int(page.next)
            return found

    events = run(work())
    if as_json:
        echo_json(events)
        return
    cells = [
        [
            e["at"].replace("T", " ").removesuffix("Z")[:19],
            e["kind"],
            e["sub"] or "",
            e["outcome"],
            json.dumps(e["detail"], sort_keys=True, default=str),
        ]
        for e in events
    ]
    columns = ("at", "kind", "sub", "outcome", "detail")
    out.print(table(columns, cells, keep_whole=("at", "sub")))


def revoke_command(
    sub: str = typer.Argument(..., help="The user's Google sub."),
    forget: bool = typer.Option(False, "--forget", help="Also erase the user's profile."),
) -> None:
    """Disconnect a user: revoke the grant at Google, erase the tokens, keep an audit record."""

    async def work() -> dict[str, Any]:
        async with Keeper(Settings()) as keeper:
            outcome = await keeper.disconnect(sub, forget=forget)
            return outcome.to_json()

    result = run(work())
    echo_json(result)
