"""The emulated provider's OAuth error: Google's status and ``{"error", "error_description"}``."""

from __future__ import annotations


class GoogleOAuthError(Exception):
    """An answer of Google's OAuth endpoints: HTTP status plus ``{"error", "error_description"}``.

    This is the emulated provider's wire protocol, not a grantkeeper error; the description is
    Google's text and never contains a token or code."""

    def __init__(self, status: int, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description is not None:
            body["error_description"] = self.description
        return body
