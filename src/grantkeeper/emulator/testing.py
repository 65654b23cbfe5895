"""pytest fixtures for testing against the emulator; loaded automatically (``pytest11`` entry
point) wherever grantkeeper is installed.

- ``emulator_session``: one emulator served for the whole test session.
- ``emulator``: that emulator with fresh state (no users, clients, grants, faults; clock offset
  rewound; default settings) for each test. Fast: no new server, no new RSA keys.
- ``emulator_https_session`` / ``emulator_https``: the same over HTTPS, with a CA made for the
  test session (``handle.ca_path``, ``handle.ssl_context()``), for client libraries that insist
  on ``https`` (googleapiclient media uploads, google-auth-oauthlib, Authlib).

Both yield an :class:`~grantkeeper.emulator.EmulatorHandle` (``base_url``, ``state``,
``control``). A test that needs its own configuration uses ``run_emulator(EmulatorConfig(...))``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    # Imported by the fixtures, not here: pytest loads this plugin wherever grantkeeper is
    # installed, also without the 'emulator' extra.
    from grantkeeper.emulator.server import EmulatorHandle


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorHandle]:
    """One emulator on a free port for the whole session (state shared between tests)."""
    from grantkeeper.emulator.server import run_emulator

    with run_emulator() as handle:
        yield handle


@pytest.fixture
def emulator(emulator_session: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, reset to a fresh state for this test."""
    emulator_session.state.reset()
    return emulator_session


@pytest.fixture(scope="session")
def emulator_https_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorHandle]:
    """One HTTPS emulator for the whole session; its CA lives in a temporary directory."""
    from grantkeeper.emulator.config import EmulatorConfig
    from grantkeeper.emulator.server import run_emulator

    config = EmulatorConfig(https=True, data_dir=tmp_path_factory.mktemp("emulator-tls"))
    with run_emulator(config) as handle:
        yield handle


@pytest.fixture
def emulator_https(emulator_https_session: EmulatorHandle) -> EmulatorHandle:
    """The session's HTTPS emulator, reset to a fresh state for this test."""
    emulator_https_session.state.reset()
    return emulator_https_session
