"""The grant life cycle beyond sign-in: key rotation, the health sweep, event wiring."""

from grantkeeper.lifecycle.keys import KeyStatus, RotationReport, generate, rotate, status
from grantkeeper.lifecycle.sweep import GrantHealth, SweepOptions, SweepReport, classify, sweep
from grantkeeper.lifecycle.wiring import attach

__all__ = [
    "GrantHealth",
    "KeyStatus",
    "RotationReport",
    "SweepOptions",
    "SweepReport",
    "attach",
    "classify",
    "generate",
    "rotate",
    "status",
    "sweep",
]
