"""The nightly job: list each linked user's Drive appDataFolder with googleapiclient, the
refresh going through grantkeeper's async Keeper. ``python nightly.py app.sqlite3`` (cron, a
systemd timer)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiosqlite
from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build

from grantkeeper import GrantRevoked, Keeper, MissingScopes


def list_app_data(credentials: Any, **build_options: Any) -> list[str]:
    # googleapiclient blocks: it runs in a worker thread, its refreshes hop back to the keeper.
    with build("drive", "v3", credentials=credentials, **build_options) as drive:
        files = drive.files().list(spaces="appDataFolder", fields="files(name)").execute()
    return [f["name"] for f in files.get("files", [])]


async def run(database: str, keeper: Keeper, **build_options: Any) -> dict[str, Any]:
    report: dict[str, Any] = {}
    async with aiosqlite.connect(database) as db:
        cursor = await db.execute("SELECT google_sub FROM users WHERE google_sub IS NOT NULL")
        subs = [row[0] for row in await cursor.fetchall()]
    for sub in subs:
        try:
            credentials = await keeper.credentials(sub)
            report[sub] = await asyncio.to_thread(list_app_data, credentials, **build_options)
        except (GrantRevoked, MissingScopes) as error:  # also RefreshError inside googleapiclient
            report[sub] = error.code  # ask the user to sign in again next time they open the app
        except RefreshError as error:
            report[sub] = f"retry later: {error}"
    return report


async def main(database: str) -> None:
    async with Keeper() as keeper:
        print(await run(database, keeper))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
