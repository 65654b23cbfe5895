"""A separate keeper process for the cross-process tests: ``python -m tests.keeper.refresh_worker
CONFIG_JSON``. It shares the test's clock offset, says "ready", waits for the test's go file
(so that every process starts at once), asks for the
user's access token from ``callers`` concurrent tasks and prints the tokens as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
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
        go = Path(config["go_file"])
        deadline = time.monotonic() + 60
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("no go file within 60 s")
            await asyncio.sleep(0.005)
        tokens = await asyncio.gather(
            *(keeper.access_token(config["sub"]) for _ in range(config["callers"]))
        )
    return {"tokens": [token.token for token in tokens]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))))
