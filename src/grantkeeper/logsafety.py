"""Keeping tokens and codes out of logs that other libraries write (uvicorn's access log)."""

from __future__ import annotations

import logging
import re

_SECRET_PARAMS = re.compile(
    r"((?:access_token|id_token|refresh_token|token|code|code_verifier|client_secret|state"
    r"|upload_id)=)"
    r"[^&\s\"]+"
)


class RedactQueryFilter(logging.Filter):
    """Access-log lines carry query strings (the browser flow's ``?code=…``); tokens and codes in
    them become ``[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAMS.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


def redact_access_log() -> None:
    """Install :class:`RedactQueryFilter` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryFilter) for f in access.filters):
        access.addFilter(RedactQueryFilter())
