"""Safe log lines: tokens and codes kept out of logs other libraries write (uvicorn's access
log), and text from requests escaped so it cannot forge or hide log lines."""

from __future__ import annotations

import logging
import re
from typing import Any

_SECRET_PARAMS = re.compile(
    r"((?:access_token|id_token|refresh_token|token|code|code_verifier|client_secret|state"
    r"|upload_id)=)"
    r"[^&\s\"]+"
)


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\x1b``, ``\\x85``,
    ``\\u2028``, a lone ``\\ud800``) and backslashes doubled: a request path cannot carry ANSI
    escape sequences into a terminal or start a fake log line (NEL, LINE SEPARATOR)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


class RedactQueryFilter(logging.Filter):
    """Access-log lines carry query strings (the browser flow's ``?code=…``); tokens and codes in
    them become ``[redacted]``, and control characters in paths are escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple([_safe(a) if isinstance(a, str) else a for a in record.args])
        return True


def _safe(text: str) -> str:
    # Every request writes a line: the regex runs only where a parameter could be (~30 µs a
    # line saved, half of what the line costs).
    if "=" in text:
        text = _SECRET_PARAMS.sub(r"\1[redacted]", text)
    return printable(text)


def redact_access_log() -> None:
    """Install :class:`RedactQueryFilter` on uvicorn's access logger (once)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactQueryFilter) for f in access.filters):
        access.addFilter(RedactQueryFilter())


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's ``log_config`` for ``GRANTKEEPER_LOG_FORMAT``: its own for ``text``; for
    ``json`` one JSON object per line (python-json-logger) for every logger, the access log
    redacted as always."""
    from uvicorn.config import LOGGING_CONFIG

    if log_format != "json":
        return LOGGING_CONFIG
    config = _json_log_config()
    config["loggers"] = {
        name: {"handlers": [], "level": "INFO", "propagate": True}
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    return config


def process_log_config(log_format: str) -> dict[str, Any]:
    """``logging.config.dictConfig`` for a process of ours that is no web server (``grantkeeper
    worker``): INFO and up on stderr, one line a record (``text``) or one JSON object a line
    (``json``). httpx's line per request stays out (the worker says what it did)."""
    quiet = {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}}
    if log_format == "json":
        return {**_json_log_config(), "loggers": quiet}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "text": {
                "class": "logging.StreamHandler",
                "formatter": "text",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["text"], "level": "INFO"},
        "loggers": quiet,
    }


def _json_log_config() -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "grantkeeper.logsafety.RedactQueryFilter"}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "json": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["json"], "level": "INFO"},
    }
