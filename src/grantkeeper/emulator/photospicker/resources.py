"""Photos Picker v1 resources (proto3 JSON) and its errors, as pure functions.

Field names and meanings follow Google's reference
(https://developers.google.com/photos/picker/reference/rest/v1/sessions and
/mediaItems): ``pollingConfig`` is set only while ``mediaItemsSet`` is false, durations are
seconds with an ``s`` suffix, ``maxItemCount`` is an int64 (a JSON string), and a picked item's
bytes hang off ``mediaFile.baseUrl``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from grantkeeper.emulator.errors import GoogleApiError
from grantkeeper.emulator.photos.library import MediaItem
from grantkeeper.emulator.photospicker.sessions import PickingSession


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def duration(seconds: float) -> str:
    """Google's Duration JSON: ``"5s"``, ``"2.5s"``; never negative, at most millisecond
    precision, whole seconds written without a fraction."""
    millis = max(0, round(seconds * 1000))
    whole, fraction = divmod(millis, 1000)
    return f"{whole}s" if not fraction else f"{whole}.{fraction:03d}".rstrip("0") + "s"


def picker_uri(origin: str, session: PickingSession) -> str:
    return f"{origin}/picker/{session.id}"


def session_resource(
    session: PickingSession, origin: str, now: datetime, poll_interval: float
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "id": session.id,
        "pickerUri": picker_uri(origin, session),
        "expireTime": rfc3339(session.expires),
        "pickingConfig": {"maxItemCount": str(session.max_items)},
        "mediaItemsSet": session.done,
    }
    if not session.done:
        resource["pollingConfig"] = {
            "pollInterval": duration(poll_interval),
            # Whole seconds: the few milliseconds since the request started say nothing.
            "timeoutIn": duration(round((session.expires - now).total_seconds())),
        }
    return resource


def picked_item_resource(item: MediaItem, base_url: str) -> dict[str, Any]:
    return {
        "id": item.id,
        "createTime": rfc3339(item.created),
        "type": "PHOTO",  # the emulator's libraries hold photos only
        "mediaFile": {
            "baseUrl": base_url,
            "mimeType": item.mime_type,
            "filename": item.filename,
            "mediaFileMetadata": {
                "width": item.width,
                "height": item.height,
                "cameraMake": "grantkeeper",
                "cameraModel": "emulator",
                "photoMetadata": {},
            },
        },
    }


def status_error(status: int, rpc_status: str, message: str) -> GoogleApiError:
    """Google's envelope with a gRPC status that the HTTP status alone does not name
    (``FAILED_PRECONDITION`` is HTTP 400, like ``INVALID_ARGUMENT``)."""
    return GoogleApiError(
        status, {"error": {"code": status, "message": message, "status": rpc_status}}
    )


def not_picked_yet() -> GoogleApiError:
    return status_error(
        400,
        "FAILED_PRECONDITION",
        "The user has not finished picking media items in this session yet. Poll sessions.get "
        "until mediaItemsSet is true.",
    )


def too_many_sessions(message: str) -> GoogleApiError:
    return status_error(429, "RESOURCE_EXHAUSTED", message)


def session_not_found() -> GoogleApiError:
    return status_error(404, "NOT_FOUND", "Requested entity was not found.")


def invalid_argument(message: str) -> GoogleApiError:
    return status_error(400, "INVALID_ARGUMENT", message)
