"""``grantkeeper serve --emulator`` without a browser: the dev page and its ``/dev`` helpers as
plain HTTP (the Chromium tests beside this one drive the page itself)."""

from __future__ import annotations

import re

import httpx
import pytest

# Starts a process: outside the quick loop (make test-quick).
pytestmark = pytest.mark.slow

CSRF = {"X-Requested-With": "XMLHttpRequest"}


def test_the_dev_page_and_its_helpers_answer_as_documented(dev_server: str) -> None:
    with httpx.Client(base_url=dev_server, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert re.search(r"apps\.googleusercontent\.com", page.text)  # the page's client id
        assert "client_secret" not in page.text
        assert http.get("/static/page.js").status_code == 200

        refused = http.post("/dev/away")
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_header_missing"
        away = http.post("/dev/away", headers=CSRF)
        assert away.status_code == 200
        assert away.json()["advanced_seconds"] == 65 * 60

        assert http.get("/dev/users/not-a-sub").status_code == 404
        assert http.post("/dev/users/123/enhance", headers=CSRF).status_code == 409
        assert http.post("/dev/users/123/library", headers=CSRF).status_code == 404
        assert http.get("/dev/pictures/0123456789abcdef/before/x.jpg").status_code == 404
        assert http.get("/dev/pictures/not-a-job/before/x.jpg").status_code == 404
