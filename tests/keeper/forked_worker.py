"""``python -m tests.keeper.forked_worker CONFIG_JSON``: a SyncKeeper made before ``os.fork``
(as under ``gunicorn --preload``), used in the parent, then a forked child signs a user in;
the parent goes on working, then exits without closing the keeper. Prints one JSON line per
process."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

from grantkeeper.clock import OffsetClock
from grantkeeper.keeper.sync import SyncKeeper
from grantkeeper.settings import Settings


def main(config: dict[str, Any]) -> None:
    clock = OffsetClock()
    clock.advance(config["clock_offset"])
    settings = Settings(**config["settings"], _env_file=None)
    keeper = SyncKeeper(settings, clock=clock)  # at import time of the app, in the master
    first = keeper.sign_in(config["codes"][0])
    pid = os.fork()
    if pid == 0:
        signal.alarm(30)  # a child stuck on the parent's loop thread fails instead of hanging
        result = keeper.sign_in(config["codes"][1])
        token = keeper.access_token(result.sub)
        print(json.dumps({"who": "child", "sub": result.sub, "token": bool(token.token)}))
        sys.stdout.flush()
        keeper.close()
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    token = keeper.access_token(first.sub)
    print(json.dumps({"who": "parent", "child_status": status, "token": bool(token.token)}))
    sys.stdout.flush()
    # No close(): the process must still exit at once.


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
