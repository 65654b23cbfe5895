"""Cross-Account Protection (RISC) protocol: the issuer's keys, SET verification, event
parsing and what each event means. Acting on grants is the keeper's
(:mod:`grantkeeper.keeper.security_events`)."""

from grantkeeper.risc.discovery import RiscConfiguration, RiscKeySource
from grantkeeper.risc.events import SecurityEvent, parse_events, plan
from grantkeeper.risc.verify import VerifiedSet, verify_set

__all__ = [
    "RiscConfiguration",
    "RiscKeySource",
    "SecurityEvent",
    "VerifiedSet",
    "parse_events",
    "plan",
    "verify_set",
]
