"""Cross-Account Protection (RISC): receive Google's security events and act on the grants."""

from grantkeeper.risc.discovery import RiscConfiguration, RiscKeySource
from grantkeeper.risc.events import SecurityEvent, parse_events, plan
from grantkeeper.risc.receiver import EventOutcome, Receipt, RiscReceiver
from grantkeeper.risc.verify import VerifiedSet, verify_set

__all__ = [
    "EventOutcome",
    "Receipt",
    "RiscConfiguration",
    "RiscKeySource",
    "RiscReceiver",
    "SecurityEvent",
    "VerifiedSet",
    "parse_events",
    "plan",
    "verify_set",
]
