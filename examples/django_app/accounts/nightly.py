"""The nightly job: list each linked user's Drive appDataFolder with googleapiclient, the
refresh going through grantkeeper.

    DJANGO_SETTINGS_MODULE=site_config.settings python -m accounts.nightly   (cron, a timer)
"""

from typing import Any

from google.auth.exceptions import RefreshError
from googleapiclient.discovery import build

from grantkeeper import GrantRevoked, MissingScopes, SyncKeeper


def run(keeper: SyncKeeper, **build_options: Any) -> dict[str, Any]:
    from accounts.models import GoogleAccount

    report: dict[str, Any] = {}
    for sub in GoogleAccount.objects.values_list("sub", flat=True):
        try:
            credentials = keeper.credentials(sub)
            with build("drive", "v3", credentials=credentials, **build_options) as drive:
                files = drive.files().list(spaces="appDataFolder", fields="files(name)").execute()
            report[sub] = [f["name"] for f in files.get("files", [])]
        except (GrantRevoked, MissingScopes) as error:  # also RefreshError inside googleapiclient
            report[sub] = error.code  # ask the user to sign in again next time they open the app
        except RefreshError as error:
            report[sub] = f"retry later: {error}"
    return report


if __name__ == "__main__":
    import django

    django.setup()
    with SyncKeeper() as keeper:
        print(run(keeper))
