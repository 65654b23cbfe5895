"""A client for the keeper's token API, for workers and backends on other hosts.

It holds no database, client secret or key ring: only the keeper's URL and a service key. It
imports httpx, google-auth and :mod:`grantkeeper.errors`, nothing of the server, so it works in
an environment where only ``pip install grantkeeper`` (without the server extras) was done::

    from googleapiclient.discovery import build
    from grantkeeper.client import TokenClient
    from grantkeeper.errors import GrantRevoked

    with TokenClient("https://keeper.internal", service_key) as keeper:
        drive = build("drive", "v3", credentials=keeper.credentials(sub))
        try:
            drive.files().get(fileId="appfolder").execute()
        except GrantRevoked as error:
            ...  # error.reason, error.advice: ask the user to sign in again
"""

from grantkeeper.client._async import AsyncTokenClient
from grantkeeper.client._credentials import RemoteCredentials
from grantkeeper.client._sync import TokenClient
from grantkeeper.client._wire import Disconnected, RetryPolicy, ServiceProblem, Token

__all__ = [
    "AsyncTokenClient",
    "Disconnected",
    "RemoteCredentials",
    "RetryPolicy",
    "ServiceProblem",
    "Token",
    "TokenClient",
]
