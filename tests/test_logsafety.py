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
