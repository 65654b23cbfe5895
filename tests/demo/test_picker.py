"""The backend's Picker client against the emulator: wait for the user as Google asks, fetch the
originals within the base URLs' hour, and give up when the session times out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials

from grantkeeper.demo.picker import (
    PICKER_SCOPE,
    PhotosPicker,
    PickerError,
    fetch_originals,
    seconds,
)
from grantkeeper.emulator import EmulatorHandle

from ..helpers_google import backend_sign_in

DISCOVERY = "/discovery/v1/apis/photospicker/v1/rest"


@pytest.mark.parametrize(
    ("raw", "expected"), [("5s", 5.0), ("2.5s", 2.5), ("0s", 0.0), (None, 7.0), ("5m", 7.0)]
)
def test_durations_read_as_google_writes_them(raw: str | None, expected: float) -> None:
    assert seconds(raw, 7.0) == expected


def test_wait_fetch_and_the_hour(emulator: EmulatorHandle) -> None:
    grant = backend_sign_in(emulator, [PICKER_SCOPE])
    emulator.control.fill_library(grant.sub, 3)
    slept: list[float] = []
    with PhotosPicker(Credentials(token=grant.token), emulator.base_url + DISCOVERY) as picker:
        session = picker.create_session(max_items=2)

        def user_picks_while_we_sleep(delay: float) -> None:
            slept.append(delay)
            emulator.control.pick(session["id"], count=2)

        polls: list[dict[str, Any]] = []
        done = picker.wait_until_picked(
            session["id"], sleep=user_picks_while_we_sleep, on_poll=polls.append
        )
        assert done["mediaItemsSet"] is True
        assert slept == [5.0]  # the pollInterval the session asked for
        assert len(polls) == 2
        fetched = fetch_originals(picker, session["id"], now=emulator.state.clock.now)
        assert len(fetched.originals) == 2
        assert all(o.content[:2] == b"\xff\xd8" for o in fetched.originals)
        assert (fetched.base_urls_die_at - fetched.listed_at).total_seconds() == 3600
        emulator.control.advance_clock(3601)
        item = {"id": "x", "mediaFile": {"baseUrl": fetched.base_urls[0], "filename": "a.jpg"}}
        fresh = backend_sign_in(emulator, [PICKER_SCOPE], email=grant.email)
        again = PhotosPicker(Credentials(token=fresh.token), emulator.base_url + DISCOVERY)
        with again, pytest.raises(PickerError, match="answered 403: the base URL may have"):
            again.download(item)


def test_waiting_gives_up_when_the_session_times_out(emulator: EmulatorHandle) -> None:
    grant = backend_sign_in(emulator, [PICKER_SCOPE])
    httpx.post(
        emulator.base_url + "/emulator/photospicker/settings",
        json={"session_ttl": 20, "poll_interval": 5},
    ).raise_for_status()
    with PhotosPicker(Credentials(token=grant.token), emulator.base_url + DISCOVERY) as picker:
        session = picker.create_session()
        with pytest.raises(PickerError, match="did not finish picking"):
            picker.wait_until_picked(session["id"], sleep=emulator.control.advance_clock)
