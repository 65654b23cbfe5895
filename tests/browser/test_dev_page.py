"""The dev page in headless Chromium: sign in through the emulator's consent page, ask for
Photos access incrementally, pick photos in the Google Photos Picker's window, go away for an
hour, run the offline job, see before and after."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

# Starts Chromium: outside the quick loop (make test-quick).
pytestmark = [pytest.mark.browser, pytest.mark.slow]

DRIVE_APPDATA = "https://www.googleapis.com/auth/drive.appdata"
APPENDONLY = "https://www.googleapis.com/auth/photoslibrary.appendonly"
READ_APPCREATED = "https://www.googleapis.com/auth/photoslibrary.readonly.appcreateddata"
PICKER = "https://www.googleapis.com/auth/photospicker.mediaitems.readonly"


def consent(page: Page, *, email: str | None = None) -> None:
    """Click through the emulator's consent page (a new account if ``email`` is given)."""
    expect(page).to_have_title(re.compile("Sign in - Google Accounts"))
    if email is not None:
        page.locator('input[name="new_email"]').fill(email)
    page.locator("#allow").click()


def loaded_width(image: Locator) -> int:
    """The picture's width once the browser has it: an image just added to the page may still
    be on its way (``complete`` false), so wait for its decoding rather than look too early;
    a broken picture rejects and fails the test."""
    width = image.evaluate("async img => { await img.decode(); return img.naturalWidth; }")
    assert isinstance(width, int)
    return width


def test_sign_in_grant_photos_and_run_the_offline_job(
    page: Page, dev_server: str, tmp_path: Path
) -> None:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # The emulator's consent page has no favicon; the browser asks anyway.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            problems.append(f"{message.text} ({message.location['url']})")

    page.on("console", on_console)
    page.goto(dev_server + "/")
    expect(page.locator("#sign-in")).to_have_text("Sign in with Google")
    expect(page.locator("#signed-in")).to_be_hidden()

    # 1. Sign in: the browser goes to the consent page and comes back with a code.
    page.locator("#sign-in").click()
    expect(page.locator("#consent")).to_contain_text("openid")
    consent(page, email="grace@example.com")
    expect(page.locator("#message")).to_have_text(re.compile("Signed in as grace@example.com"))
    assert "code=" not in page.url  # the page dropped the code from the address bar
    expect(page.locator("#user-email")).to_have_text("grace@example.com (verified)")
    expect(page.locator("#user-sub")).to_have_text(re.compile(r"^\d{21}$"))
    grant = page.locator("#grant")
    expect(grant).to_contain_text("active")
    expect(grant).to_contain_text("yes (refresh token stored, encrypted)")
    expect(page.locator("#scopes")).to_contain_text(DRIVE_APPDATA)
    expect(page.locator("#scopes")).not_to_contain_text(APPENDONLY)
    expect(page.locator("#job")).to_be_hidden()

    # 2. Incremental authorization: only the Photos scopes are asked for; the grant keeps both.
    page.locator("#grant-photos").click()
    expect(page.locator('input[name="email"][value="grace@example.com"]')).to_be_checked()
    expect(page.locator('input[name="scope"]')).to_have_count(3)
    consent(page)
    expect(page.locator("#message")).to_have_text(re.compile("3 new scope"))
    scopes = page.locator("#scopes")
    for scope in (DRIVE_APPDATA, PICKER, APPENDONLY, READ_APPCREATED):
        expect(scopes).to_contain_text(scope)
    expect(page.locator("#photos-missing")).to_be_hidden()
    expect(page.locator("#job")).to_be_hidden()  # nothing picked yet

    # 3. The user's own photos, picked in the Picker's window (pickerUri + /autoclose).
    page.locator("#fill-library").click()
    expect(page.locator("#message")).to_have_text(re.compile("library now holds 6 photo"))
    with page.expect_popup() as opened:
        page.locator("#pick-photos").click()
    picker = opened.value
    picker.on("console", on_console)
    picker.wait_for_url(re.compile(r"/picker/[0-9a-f-]{36}/autoclose$"))
    expect(picker).to_have_title(re.compile("Google Photos"))
    expect(picker.locator("body")).to_contain_text("grace@example.com")
    expect(picker.locator('input[name="item"]')).to_have_count(6)
    thumbnails = picker.locator(".photo img")
    for index in range(6):
        assert loaded_width(thumbnails.nth(index)) > 0
    for index in (0, 2, 4):
        picker.locator('input[name="item"]').nth(index).check()
    with picker.expect_event("close"):
        picker.locator("#done").click()  # /autoclose: the window closes itself after Done
    summary = page.locator("#pick-summary")
    expect(summary).to_have_text(re.compile(r"^You picked 3 photo\(s\)\. .*stop working at"))
    expect(page.locator("#picked img")).to_have_count(3)

    # 4. An hour away: the access token and the base URLs die.
    expect(grant).to_contain_text("Last refresh—")
    page.locator("#go-away").click()
    expect(page.locator("#message")).to_have_text(re.compile("You are away"))
    expect(grant).to_contain_text("expired")

    # 5. The offline job: one refresh through the keeper, three pictures before and after.
    page.locator("#enhance").click()
    summary = page.locator("#job-summary")
    expect(summary).to_have_text(
        re.compile(r"^3 picture\(s\) enhanced into “Enhanced” .* refreshed the token \(1 refresh\)")
    )
    pictures = page.locator("#results img")
    expect(pictures).to_have_count(6)
    expect(page.locator("#results figcaption")).to_have_count(3)
    for index in range(6):
        assert loaded_width(pictures.nth(index)) == 640
    before = page.request.get(dev_server + pictures.nth(0).get_attribute("src")).body()
    after = page.request.get(dev_server + pictures.nth(1).get_attribute("src")).body()
    assert before[:2] == after[:2] == b"\xff\xd8"  # JPEGs
    assert before != after
    expect(grant).not_to_contain_text("Last refresh—")
    expect(grant).to_contain_text("valid until")

    shot = Path(os.environ.get("GRANTKEEPER_TEST_SCREENSHOT_DIR", tmp_path)) / "dev-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert problems == []  # no script error, no CSP violation


def test_an_answer_the_page_did_not_ask_for_is_ignored(page: Page, dev_server: str) -> None:
    page.goto(dev_server + "/?code=4%2F0forged&state=not-ours")
    expect(page.locator("#message")).to_have_text(re.compile("did not ask for \\(state\\)"))
    expect(page.locator("#signed-out")).to_be_visible()
    assert "code=" not in page.url


def test_dev_helpers_need_the_csrf_header(page: Page, dev_server: str) -> None:
    answer = page.request.post(dev_server + "/dev/away")
    assert answer.status == 403
    assert answer.json()["code"] == "csrf_header_missing"
