"""pytest fixtures for testing against the emulator; loaded automatically (``pytest11`` entry
point) wherever grantkeeper is installed.

- ``emulator_session``: one emulator served for the whole test session.
- ``emulator``: that emulator with fresh state (no users, clients, grants, faults; clock offset
  rewound; default settings) for each test. Fast: no new server, no new RSA keys.

Both yield an :class:`~grantkeeper.emulator.EmulatorHandle` (``base_url``, ``state``,
``control``). A test that needs its own configuration uses ``run_emulator(EmulatorConfig(...))``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from grantkeeper.emulator.server import EmulatorHandle, run_emulator


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorHandle]:
    """One emulator on a free port for the whole session (state shared between tests)."""
    with run_emulator() as handle:
        yield handle


@pytest.fixture
def emulator(emulator_session: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, reset to a fresh state for this test."""
    emulator_session.state.reset()
    return emulator_session
