"""``uploadType=multipart`` bodies: JSON metadata and the media in one multipart/related body."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any

from grantkeeper.emulator.errors import GoogleApiError, legacy_error

#: Multipart uploads are for files of 5 MB or less (Google's guide); bigger ones go resumable.
MULTIPART_LIMIT = 5 * 1024 * 1024


def parse_multipart_related(content_type: str, body: bytes) -> tuple[dict[str, Any], str, bytes]:
    """Split an ``uploadType=multipart`` body into (metadata, media type, media bytes).

    google-api-python-client writes it with :mod:`email.mime` and plain LF line ends, other
    clients with CRLF; the standard library's MIME parser reads both.
    """
    if not content_type.lower().startswith("multipart/related"):
        raise _bad_multipart("Content-Type must be multipart/related")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    parts = list(message.iter_parts())
    if len(parts) != 2:
        raise _bad_multipart("Expected 2 parts (metadata and media)")
    meta_part, media_part = parts
    raw = meta_part.get_payload(decode=True)
    try:
        metadata = json.loads(raw if isinstance(raw, bytes) and raw.strip() else b"{}")
    except ValueError:
        raise _bad_multipart("The metadata part is not JSON") from None
    if not isinstance(metadata, dict):
        raise _bad_multipart("The metadata part is not a JSON object")
    media = media_part.get_payload(decode=True)
    if not isinstance(media, bytes):
        raise _bad_multipart("The media part is empty")
    return metadata, media_part.get_content_type(), media


def _bad_multipart(why: str) -> GoogleApiError:
    return legacy_error(400, f"Bad multipart request: {why}.", "badContent")
