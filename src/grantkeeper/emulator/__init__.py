"""A Google-compatible OAuth 2.0 / OpenID Connect provider on localhost, with a control API.

``create_app`` builds the ASGI app; ``run_emulator`` serves it on a free port in a background
thread for tests and embedding; ``EmulatorControl`` drives the control API over HTTP.
"""

from grantkeeper.emulator.app import create_app, emulator_state
from grantkeeper.emulator.client import AsyncEmulatorControl, EmulatorControl
from grantkeeper.emulator.config import EmulatorConfig, EmulatorSettings
from grantkeeper.emulator.faults import DropConnection, Fault, FaultBook, fault_response
from grantkeeper.emulator.oauth.models import AccessTokenRecord, Client, User
from grantkeeper.emulator.server import EmulatorHandle, run_emulator
from grantkeeper.emulator.state import EmulatorState

__all__ = [
    "AccessTokenRecord",
    "AsyncEmulatorControl",
    "Client",
    "DropConnection",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorHandle",
    "EmulatorSettings",
    "EmulatorState",
    "Fault",
    "FaultBook",
    "User",
    "create_app",
    "emulator_state",
    "fault_response",
    "run_emulator",
]
