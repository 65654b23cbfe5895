"""``grantkeeper webhooks secret|events|list|replay|deliver``: grant life-cycle notifications.

``list`` and ``replay`` read and reset the store's outbox through the keeper (the management
API answers from the same methods); ``deliver`` sends what is due, once or until stopped.
"""

from __future__ import annotations

from typing import Any

import typer

from grantkeeper._cli.runner import Commands, echo_json, out, run, say, table

app = Commands(help="Grant life-cycle notifications (Standard Webhooks).", no_args_is_help=True)

STATES = ("pending", "delivered", "failed")


@app.command("secret")
def secret() -> None:
    """Print a new signing secret for GRANTKEEPER_WEBHOOK_SECRET (whsec_…); give the same one
    to the app's verifier."""
    from grantkeeper.webhooks import generate_secret

    say(generate_secret())


@app.command("events")
def events(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """The event types grantkeeper sends and what each means (docs/webhooks.md has payloads)."""
    from grantkeeper.webhooks import EVENT_MEANINGS, WebhookEvent

    found = [{"type": e.value, "meaning": EVENT_MEANINGS[e]} for e in WebhookEvent]
    if as_json:
        echo_json(found)
        return
    for event in found:
        say(f"{event['type']:<24} {event['meaning']}")


def _keeper(*, migrate: bool) -> Any:
    from grantkeeper.keeper import Keeper
    from grantkeeper.settings import Settings

    return Keeper(Settings(), migrate=migrate)


def _short(when: str | None) -> str:
    return when.replace("T", " ").removesuffix("Z")[:19] if when else "-"


@app.command("list")
def list_command(
    state: str | None = typer.Option(
        None, "--state", help="Only notifications in this state: pending, delivered, failed."
    ),
    limit: int = typer.Option(50, "--limit", min=1, help="Newest first; at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """The notifications in the outbox and where each delivery stands: id (the webhook-id the
    app receives), type, state, attempts, when made, next attempt, last error."""
    from grantkeeper.keeper import MAX_PAGE

    async def work() -> list[dict[str, Any]]:
        async with _keeper(migrate=False) as keeper:
            found: list[dict[str, Any]] = []
            before: int | None = None
            while len(found) < limit:
                page = await keeper.webhooks_page(
                    state=state, before=before, limit=min(limit - len(found), MAX_PAGE)
                )
                found.extend(page.items)
                if page.next is None:
                    break
                before = int(page.next)
            return found

    rows = run(work)
    if as_json:
        echo_json(rows)
        return
    cells = [
        [
            r["id"],
            r["type"],
            r["state"],
            str(r["attempts"]),
            _short(r["created_at"]),
            _short(r["next_attempt_at"]),
            r["last_error"] or "",
        ]
        for r in rows
    ]
    columns = ("id", "type", "state", "attempts", "created", "next attempt", "last error")
    out.print(table(columns, cells, keep_whole=("id", "created")))
    say(f"{len(rows)} notification(s)")


@app.command("replay")
def replay_command(
    ids: list[str] = typer.Argument(None, help="Notification ids (msg_…) to send again."),
    failed: bool = typer.Option(False, "--failed", help="Every notification that failed."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
) -> None:
    """Send notifications again with the same webhook-id (the app de-duplicates by it): they
    become pending with fresh attempts, and the next deliverer (serve, webhooks deliver) sends
    them. An unknown id replays nothing and exits 1."""

    async def work() -> list[dict[str, Any]]:
        async with _keeper(migrate=True) as keeper:
            replayed: list[dict[str, Any]] = await keeper.replay_webhooks(ids or [], failed=failed)
            return replayed

    rows = run(work)
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        say(f"{row['id']}  {row['type']}  pending again")
    say(f"{len(rows)} notification(s) will be sent again")


@app.command("deliver")
def deliver_command(
    once: bool = typer.Option(
        False, "--once", help="Deliver what is due now (one attempt each) and exit."
    ),
) -> None:
    """Deliver the outbox to GRANTKEEPER_WEBHOOK_URL: until stopped (Ctrl-C), or with --once
    what is due now. Safe beside serve and other deliverers: each message is claimed by one."""

    async def work() -> dict[str, int] | None:
        async with _keeper(migrate=True) as keeper:
            if not once:
                await keeper.run_webhook_delivery()
                return None
            report = await keeper.deliver_webhooks()
            return {
                "delivered": report.delivered,
                "retried": report.retried,
                "failed": report.failed,
            }

    found = run(work)
    if found is not None:
        say(
            f"delivered {found['delivered']}, to retry {found['retried']}, failed {found['failed']}"
        )
