"""``grantkeeper emulator``: serve the Google-compatible provider on localhost."""

from __future__ import annotations

from pathlib import Path

import typer

from grantkeeper._cli.runner import say, usage_error

HELP = """
Serve a Google-compatible OAuth 2.0 / OpenID Connect provider (and small
Drive and Photos APIs) and print its base URL. Clients find everything
through BASE/.well-known/openid-configuration (GRANTKEEPER_ISSUER=BASE).

With --https it serves HTTPS for 127.0.0.1 and localhost and prints the
CA certificate to trust (GET BASE/emulator/ca.pem serves it too).

\b
Google's endpoints:
  GET  /.well-known/openid-configuration
  GET  /oauth2/v3/certs (JWKS), /oauth2/v1/certs (x509 PEM by kid)
  GET  /o/oauth2/v2/auth     consent page (an HTML form)
  POST /token                authorization_code and refresh_token
  POST /revoke   GET|POST /tokeninfo   GET|POST /v1/userinfo

\b
Control API (JSON; full schema at BASE/emulator/docs):
  POST /emulator/clients  {type: web|installed|ios|android,
       redirect_uris?, javascript_origins?}; web answers a
       client_secret.json whose URIs point here
  POST /emulator/users  {email, name?, given_name?, family_name?, hd?}
  POST /emulator/server-auth-code  {client_id, server_client_id,
       email, scopes, prompt?, nonce?, time_limited_seconds?} -> {code}
       (client_id becomes azp, server_client_id aud; redeem it
       with redirect_uri '' or 'postmessage')
  POST /emulator/users/{sub}/revoke  {client_id?}  app removed
  POST /emulator/users/{sub}/password-change  kills Gmail grants
  POST /emulator/clock  {advance_seconds}   (GET: current time)
  POST /emulator/settings  any subset of access_token_ttl,
       testing_mode, rotate_refresh_tokens, latency_ms,
       response_delay_ms, issuer,
       code_ttl, refresh_idle_expiry, max_refresh_tokens, ...
  POST /emulator/keys/rotate  {overlap_seconds?}
  POST /emulator/faults  {endpoint, status?, body?, delay_ms?,
       count?, malformed_json?, drop_connection?}
       or {id_token: alg_none|wrong_key|unknown_kid|wrong_iss|
       wrong_aud|wrong_azp|expired|iat_future, count?}
  DELETE /emulator/faults  [?endpoint=]
  GET  /emulator/stats  calls per endpoint, token calls by grant
       type, refreshes and live refresh tokens per user
  GET  /emulator/requests  calls of Google's endpoints (method,
       path, status, client id; never a token)
  GET  /emulator/ca.pem  the CA to trust (--https)
  POST /emulator/reset  forget all but the signing keys
       (and the --seed clients and users)
"""


def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on; 0 picks a free one."),
    issuer: str | None = typer.Option(
        None,
        "--issuer",
        help="ID-token issuer (default: the base URL). Use https://accounts.google.com for "
        "clients that hard-code Google's.",
    ),
    testing_mode: bool = typer.Option(
        False, "--testing-mode", help='Publishing status "Testing": 7-day refresh tokens.'
    ),
    https: bool = typer.Option(
        False,
        "--https",
        help="Serve HTTPS with a certificate signed by a local CA kept in --data-dir; prints "
        "the CA file to trust (also at BASE/emulator/ca.pem).",
    ),
    state: Path | None = typer.Option(
        None,
        "--state",
        help="Keep clients and users (and their subs) in this JSON file across restarts.",
    ),
    seed: Path | None = typer.Option(
        None,
        "--seed",
        help='Create these clients and users at start: {"clients": [...], "users": [...]}, '
        "each entry a POST /emulator/clients or /emulator/users body.",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        help="Where the emulator keeps its CA (default: $GRANTKEEPER_DATA_DIR/emulator or the "
        "user data directory's grantkeeper/emulator).",
    ),
) -> None:
    # Imported here: the emulator pulls in FastAPI and uvicorn, which `grantkeeper --help`
    # and the other commands should not pay for (nor a core install without the extra).
    from grantkeeper.extras import require_extra

    require_extra("emulator", "grantkeeper emulator")
    from grantkeeper.emulator import EmulatorConfig, EmulatorSettings
    from grantkeeper.emulator.persistence import StateFileError
    from grantkeeper.emulator.server import serve

    settings = EmulatorSettings(issuer=issuer, testing_mode=testing_mode)
    config = EmulatorConfig(
        settings=settings, https=https, data_dir=data_dir, state_file=state, seed_file=seed
    )
    try:
        serve(host, port, config, announce=say)
    except StateFileError as error:  # a --state or --seed file that cannot be used
        usage_error(f"grantkeeper emulator: {error}")


emulator.__doc__ = HELP
