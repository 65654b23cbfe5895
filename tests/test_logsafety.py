"""uvicorn's access log never shows a code or token from a query string."""

from __future__ import annotations

import logging

import pytest

from grantkeeper.logsafety import redact_access_log


def test_codes_and_tokens_in_access_log_lines_are_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redact_access_log()
    redact_access_log()  # installing twice is harmless
    access = logging.getLogger("uvicorn.access")
    assert len(access.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/?code=4/0AVMBsJiSECRET&state=abc123&scope=email",
            "1.1",
            200,
        )
    assert "4/0AVMBsJiSECRET" not in caplog.text
    assert "abc123" not in caplog.text
    assert "code=[redacted]" in caplog.text
    assert "scope=email" in caplog.text


def test_settings_repr_never_shows_secrets() -> None:
    from grantkeeper.settings import Settings

    settings = Settings(
        database_url="postgresql://app:hunter2@db/grantkeeper",
        encryption_keys=["k1:c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy1sb25nISE"],
        service_api_keys=["service-key-0123456789"],
        webhook_secret="whsec_c2VjcmV0",
        _env_file=None,  # type: ignore[call-arg]
    )
    shown = repr(settings) + str(settings)
    for secret in ("hunter2", "c2VjcmV0LWtleS", "service-key-0123456789", "whsec_c2VjcmV0"):
        assert secret not in shown


def test_access_log_paths_have_control_characters_escaped() -> None:
    """D8: ESC sequences, NEL and LINE SEPARATOR from a path cannot forge or colour log lines."""
    from grantkeeper.logsafety import RedactQueryFilter, printable

    record = logging.LogRecord(
        "uvicorn.access",
        20,
        "",
        0,
        '%s - "%s %s"',
        ("1.2.3.4", "GET", "/a\x1b[2J\x85b\u2028c?code=4/0x"),
        None,
    )
    RedactQueryFilter().filter(record)
    line = record.getMessage()
    for raw in ("\x1b", "\x85", "\u2028"):
        assert raw not in line
    assert "4/0x" not in line
    assert printable("plain /path") == "plain /path"
    assert printable("a\\b") == "a\\\\b"
