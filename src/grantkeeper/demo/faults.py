"""The demo's own failure drills (``grantkeeper demo --inject-fault``): plain data, so the CLI
can list them without loading the demo."""

from __future__ import annotations

from typing import Any

#: Injected failures for testing the demo itself: ``name -> (step title, emulator fault)``.
FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "refresh": (
        "The offline job enhances the pictures",
        {
            "endpoint": "token",
            "status": 400,
            "body": {"error": "invalid_grant", "error_description": "Token has been revoked."},
            "count": None,
        },
    ),
    "photos": (
        "The offline job enhances the pictures",
        {"endpoint": "photos", "status": 503, "count": None},
    ),
}
