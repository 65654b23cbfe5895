"""``grantkeeper webhooks secret|events``: set up grant life-cycle notifications."""

from __future__ import annotations

import typer

from grantkeeper._cli.runner import echo_json, out

app = typer.Typer(help="Grant life-cycle notifications (Standard Webhooks).", no_args_is_help=True)


@app.command("secret")
def secret() -> None:
    """Print a new signing secret for GRANTKEEPER_WEBHOOK_SECRET (whsec_…); give the same one
    to the app's verifier."""
    from grantkeeper.webhooks import generate_secret

    out.print(generate_secret(), markup=False)


@app.command("events")
def events(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """The event types grantkeeper sends and what each means (docs/webhooks.md has payloads)."""
    from grantkeeper.webhooks import EVENT_MEANINGS, WebhookEvent

    found = [{"type": e.value, "meaning": EVENT_MEANINGS[e]} for e in WebhookEvent]
    if as_json:
        echo_json(found)
        return
    for event in found:
        out.print(f"{event['type']:<24} {event['meaning']}", markup=False)
