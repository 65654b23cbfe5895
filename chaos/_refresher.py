"""The process chaos/sigkill_refresh.py kills: a keeper forced to refresh one grant.

Starting Python and importing the keeper for each of a hundred kills would take most of a
scenario's time, so this process imports once and forks a fresh child per refresh. A child
opens its own keeper (its own store connections and HTTP client, from the ``GRANTKEEPER_*``
environment), forces a refresh of the grant and prints ``{"token": …}`` or ``{"error": …}``.

Protocol on stdin/stdout, one line each: ``<sub>`` in; ``child <pid>`` out at once, then
``exit <pid> <status>`` when it ended (-9: killed). The child is not reaped before its ``exit``
line, so its pid cannot be reused while the scenario may still kill it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings


async def refresh(sub: str) -> dict[str, str]:
    async with Keeper(Settings()) as keeper:
        try:
            token = await keeper.refresh(sub)
        except Exception as error:  # the scenario counts any failure, whatever it is
            return {"error": f"{type(error).__name__}: {error}"}
        return {"token": token.token}


def main() -> None:
    for line in sys.stdin:
        sub = line.strip()
        if not sub:
            continue
        pid = os.fork()
        if pid == 0:
            result = asyncio.run(refresh(sub))
            print(json.dumps(result), flush=True)
            os._exit(0)
        print(f"child {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", flush=True)


if __name__ == "__main__":
    main()
