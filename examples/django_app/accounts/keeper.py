"""One SyncKeeper for the process, from the ``GRANTKEEPER_*`` environment. Safe to make before
gunicorn --preload forks: each worker builds its own loop thread and connections on first use."""

from grantkeeper import SyncKeeper

keeper: SyncKeeper | None = None


def get_keeper() -> SyncKeeper:
    global keeper
    if keeper is None:
        keeper = SyncKeeper()
    return keeper
