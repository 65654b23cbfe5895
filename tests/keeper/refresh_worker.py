"""A separate keeper process for the cross-process tests: ``python -m tests.keeper.refresh_worker
CONFIG_JSON``. It shares the test's clock offset, waits for a common start time, asks for the
user's access token from ``callers`` concurrent tasks and prints the tokens as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from grantkeeper.clock import OffsetClock
from grantkeeper.keeper import Keeper
from grantkeeper.settings import Settings


async def main(config: dict[str, Any]) -> dict[str, Any]:
    clock = OffsetClock()
    clock.advance(config["clock_offset"])
    settings = Settings(**config["settings"], _env_file=None)  # type: ignore[call-arg]
    async with Keeper(settings, clock=clock) as keeper:
        print("ready", file=sys.stderr, flush=True)
        delay = config["start_at"] - time.time()
        # The test checks every process was ready before the common start.
        on_time = delay > 0
        if on_time:
            await asyncio.sleep(delay)
        tokens = await asyncio.gather(
            *(keeper.access_token(config["sub"]) for _ in range(config["callers"]))
        )
    return {"tokens": [token.token for token in tokens], "on_time": on_time}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
