"""``grantkeeper serve | users | token``: the keeper as a service and its grants from a shell."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from grantkeeper._cli.runner import Commands, echo_json, out, run, say, table, warn
from grantkeeper.extras import require_extra
from grantkeeper.keeper import MAX_PAGE, Keeper
from grantkeeper.logsafety import redact_access_log, uvicorn_log_config
from grantkeeper.settings import Settings

users_app = Commands(help="Users and the state of their grants.", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    emulator: bool = typer.Option(
        False,
        "--emulator",
        help="Dev mode: run the emulator beside the keeper, point the settings at it, allow "
        "plain HTTP, and serve a sign-in page at /.",
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Where SQLite and the key file live (default: the settings')."
    ),
    https: bool = typer.Option(
        False,
        "--https",
        help="Dev mode: the emulator serves HTTPS with a local CA kept in the data directory "
        "(the keeper trusts it; a browser must be told to).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Worker processes sharing the port and the store (default: the number of cores; "
        "dev mode: 1).",
    ),
) -> None:
    """Serve the keeper's HTTP API (OpenAPI at /docs)."""
    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    if https and not emulator:
        raise typer.BadParameter(
            "--https is for the emulator in dev mode (--emulator); in production terminate TLS "
            "in front of the keeper.",
            param_hint="--https",
        )
    if emulator and workers not in (None, 1):
        raise typer.BadParameter(
            "dev mode keeps the emulator in this process, so it serves with one worker.",
            param_hint="--workers",
        )
    if emulator:
        require_extra("demo", "grantkeeper serve --emulator")
    else:
        require_extra("server", "grantkeeper serve")
    if not emulator:
        settings = Settings(**overrides)
        Keeper(settings)  # its webhook settings fail here, before the port is bound
        # Fail before binding the port: the client secrets must load.
        from grantkeeper.oauth import load_client_secrets

        if settings.client_secrets_file is None:
            from grantkeeper.errors import ConfigurationError

            raise ConfigurationError(
                "GRANTKEEPER_CLIENT_SECRETS_FILE is not set; point it at the web client's "
                "client_secret_*.json (or use --emulator for local development)."
            )
        load_client_secrets(settings.client_secrets_file)
        from grantkeeper._cli.preflight import check_before_serving

        run(check_before_serving(settings))
        from grantkeeper.web.serving import default_workers
        from grantkeeper.web.serving import serve as serve_http

        count = workers or default_workers()
        say(
            f"grantkeeper serving on http://{host}:{port} (issuer {settings.issuer}, "
            f"{count} worker{'s' if count > 1 else ''})"
        )
        if not settings.service_api_keys:
            warn(
                "warning: GRANTKEEPER_SERVICE_API_KEYS is empty, so the token API "
                "(/v1/users/{sub}/token) refuses every caller."
            )
        serve_http(settings, overrides, host, port, count)
        return
    import uvicorn

    from grantkeeper.demo.page import install_page
    from grantkeeper.devmode import dev_world
    from grantkeeper.web import create_app

    base = data_dir or Settings().data_dir / "dev"
    # The dev page redirects to the consent page and back; its codes are bound to its URL.
    page_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    page_url = f"http://{page_host}:{port}/"
    from grantkeeper.emulator import EmulatorConfig

    config = EmulatorConfig(https=https, data_dir=base / "emulator")
    with dev_world(base, config, web_redirect_uri=page_url) as world:
        keeper = Keeper(
            world.settings, clock=world.emulator.state.clock, transport=world.keeper_transport()
        )
        app = create_app(keeper, owns_keeper=True, extend=lambda app: install_page(app, world))
        say(f"emulator   {world.emulator.base_url}")
        if world.emulator.ca_path is not None:
            say(f"CA         {world.emulator.ca_path}  (trust it to reach the emulator)")
        say(f"keeper     http://{host}:{port}  (OpenAPI at /docs)")
        say(f"sign-in    {page_url}")
        say(f"service key for the token API: {world.service_key}")
        say(f"data       {base}")
        redact_access_log()
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            log_config=uvicorn_log_config(world.settings.log_format),
            proxy_headers=False,
        )


def _reading_keeper() -> Keeper:
    # Reading commands never migrate the schema: that is 'grantkeeper db upgrade' (or serve).
    return Keeper(Settings(), migrate=False)


@users_app.command("list")
def users_list(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable."),
    status: str | None = typer.Option(
        None, "--status", help="Only users with a grant in this state (active, revoked, …)."
    ),
) -> None:
    """Every user with the state of their grant (the management API's listing)."""

    async def work() -> list[dict[str, Any]]:
        async with _reading_keeper() as keeper:
            rows: list[dict[str, Any]] = []
            after: str | None = None
            while True:
                page = await keeper.users_page(status=status, after=after, limit=MAX_PAGE)
                rows.extend(page.items)
                if page.next is None:
                    return rows
                after = page.next

    rows = run(work)
    if as_json:
        echo_json(rows)
        return
    cells = []
    for row in rows:
        grant = row["grants"][0] if row["grants"] else {}
        cells.append(
            [
                row["sub"],
                row["email"] or "",
                grant.get("status", "-"),
                "yes" if grant.get("offline") else "no",
                str(len(grant.get("scopes", []))),
                grant.get("last_used_at") or "-",
                grant.get("last_refreshed_at") or "-",
            ]
        )
    columns = ("sub", "email", "status", "offline", "scopes", "last used", "last refresh")
    # sub and email are identifiers a user copies: never cut, whatever the terminal's width.
    out.print(table(columns, cells, keep_whole=("sub", "email")))
    say(f"{len(rows)} user(s)")


@users_app.command("show")
def users_show(sub: str = typer.Argument(..., help="The user's Google subject id.")) -> None:
    """One user's profile, grants (status, reason, scopes, expiries, last refresh and use) and
    audit history."""

    async def work() -> dict[str, Any]:
        async with _reading_keeper() as keeper:
            return await keeper.user_detail(sub)

    echo_json(run(work))


def token(
    sub: str = typer.Argument(..., help="The user's Google subject id."),
    scope: list[str] = typer.Option(
        [], "--scope", help="A scope the token must carry (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print expiry and scopes too."),
) -> None:
    """Print a fresh access token for SUB (refreshing it if needed)."""

    async def work() -> dict[str, Any]:
        async with Keeper(Settings()) as keeper:
            found = await keeper.access_token(sub, scope or None)
            return found.to_json()

    found = run(work)
    if as_json:
        echo_json(found)
    else:
        say(found["access_token"])
