"""Drive's read side as pure functions: the ``drive#file`` resource, ``fields=`` validated
against Drive's schema, ``q`` clauses, ``orderBy`` and page tokens.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from functools import cache
from typing import Any

from grantkeeper.emulator import discovery
from grantkeeper.emulator.drive.files import APPDATA, DriveFile
from grantkeeper.emulator.errors import GoogleApiError, legacy_error
from grantkeeper.emulator.google_api import FieldMask, FieldSelectionError, parse_fields

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def file_resource(file: DriveFile) -> dict[str, Any]:
    """The full ``drive#file`` resource; ``fields=`` selects from it."""
    resource: dict[str, Any] = {
        "kind": "drive#file",
        "id": file.id,
        "name": file.name,
        "mimeType": file.mime_type,
        "parents": list(file.parents),
        "spaces": [file.space],
        "starred": False,
        "trashed": False,
        "explicitlyTrashed": False,
        "version": str(file.version),
        "createdTime": _rfc3339(file.created),
        "modifiedTime": _rfc3339(file.modified),
        "ownedByMe": True,
        "shared": False,
        "viewedByMe": True,
        "capabilities": {
            "canDownload": not file.is_folder,
            "canEdit": True,
            "canDelete": True,
            "canShare": file.space != APPDATA,
            "canTrash": file.space != APPDATA,
        },
    }
    if not file.parents:
        del resource["parents"]
    if file.description is not None:
        resource["description"] = file.description
    if file.app_properties:
        resource["appProperties"] = dict(file.app_properties)
    if file.properties:
        resource["properties"] = dict(file.properties)
    if file.content is not None:
        resource["size"] = str(len(file.content))
        resource["quotaBytesUsed"] = str(len(file.content))
        resource["md5Checksum"] = hashlib.md5(file.content, usedforsecurity=False).hexdigest()
        resource["sha1Checksum"] = hashlib.sha1(file.content, usedforsecurity=False).hexdigest()
        resource["sha256Checksum"] = hashlib.sha256(file.content).hexdigest()
        resource["headRevisionId"] = f"0B{file.id[1:12]}{file.version:04d}"
        resource["originalFilename"] = file.name
        if "." in file.name:
            resource["fileExtension"] = file.name.rsplit(".", 1)[1]
            resource["fullFileExtension"] = file.name.split(".", 1)[1]
    return resource


#: Drive v3 answers only these members unless ``fields=`` asks for others.
DEFAULT_FILE_FIELDS: FieldMask = {"kind": None, "id": None, "name": None, "mimeType": None}
DEFAULT_LIST_FIELDS: FieldMask = {
    "kind": None,
    "incompleteSearch": None,
    "nextPageToken": None,
    "files": DEFAULT_FILE_FIELDS,
}


@cache
def _drive_discovery() -> dict[str, Any]:
    return discovery.load_document("drive", "v3")


def _known_fields(schema: str) -> frozenset[str]:
    properties = _drive_discovery()["schemas"][schema]["properties"]
    return frozenset(properties)


def field_mask(spec: str | None, *, listing: bool) -> FieldMask:
    """The selection for a response, validated against Drive's schema as Google does."""
    if spec is None:
        return DEFAULT_LIST_FIELDS if listing else DEFAULT_FILE_FIELDS
    try:
        mask = parse_fields(spec)
    except FieldSelectionError:
        raise _invalid_fields(spec) from None
    file_mask: FieldMask | None = mask
    if listing:
        for name in mask:
            if name != "*" and name not in _known_fields("FileList"):
                raise _invalid_fields(name)
        file_mask = mask.get("files")
    for name in file_mask or {}:
        if name != "*" and name not in _known_fields("File"):
            raise _invalid_fields(name)
    return mask


def _invalid_fields(name: str) -> GoogleApiError:
    return legacy_error(
        400, f"Invalid field selection {name}", "invalidParameter", location="fields"
    )


_Q_CLAUSE = re.compile(
    r"""\s*(?:
        '(?P<parent>(?:[^'\\]|\\.)*)'\s+in\s+parents
      | (?P<field>name|mimeType|fullText)\s*(?P<op>=|!=|contains)\s*'(?P<value>(?:[^'\\]|\\.)*)'
      | trashed\s*(?P<top>=|!=)\s*(?P<tval>true|false)
      | (?P<key>appProperties|properties)\s+has\s+\{\s*key\s*=\s*'(?P<pk>(?:[^'\\]|\\.)*)'
            \s+and\s+value\s*=\s*'(?P<pv>(?:[^'\\]|\\.)*)'\s*\}
    )\s*""",
    re.VERBOSE,
)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_query(q: str) -> list[dict[str, str]]:
    """The clauses of a ``q`` made of ``and``-joined terms the emulator understands.

    Supported: ``'<id>' in parents``, ``name|mimeType = != contains '<text>'``,
    ``trashed = true|false``, ``appProperties|properties has { key='k' and value='v' }``.
    """
    clauses: list[dict[str, str]] = []
    for part in re.split(r"\s+and\s+(?![^{]*\})", q.strip()):
        match = _Q_CLAUSE.fullmatch(part)
        if match is None:
            raise legacy_error(400, "Invalid Value", "invalid", location="q")
        clauses.append({k: _unescape(v) for k, v in match.groupdict().items() if v is not None})
    return clauses


def matches(file: DriveFile, clauses: list[dict[str, str]], aliases: dict[str, str]) -> bool:
    for clause in clauses:
        if "parent" in clause:
            if aliases.get(clause["parent"], clause["parent"]) not in file.parents:
                return False
        elif "field" in clause:
            actual = file.mime_type if clause["field"] == "mimeType" else file.name
            wanted, op = clause["value"], clause["op"]
            hit = wanted.lower() in actual.lower() if op == "contains" else actual == wanted
            if hit == (op == "!="):
                return False
        elif "tval" in clause:
            # Nothing is ever trashed here: appDataFolder files cannot be trashed at all.
            if (clause["tval"] == "false") != (clause["top"] == "="):
                return False
        elif "key" in clause:
            bag = file.app_properties if clause["key"] == "appProperties" else file.properties
            if bag.get(clause["pk"]) != clause["pv"]:
                return False
    return True


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"drive:{offset}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, offset = raw.split(":", 1)
        if prefix == "drive" and int(offset) >= 0:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise legacy_error(400, "Invalid Value", "invalid", location="pageToken")


def parse_page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise legacy_error(400, "Invalid Value", "invalid", location="pageSize") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise legacy_error(
            400,
            f"Invalid value '{size}'. Values must be within the range: [1, {MAX_PAGE_SIZE}]",
            "invalid",
            location="pageSize",
        )
    return size


_ORDER_KEYS = {
    "name": lambda f: f.name.lower(),
    "createdTime": lambda f: f.created,
    "modifiedTime": lambda f: f.modified,
    "folder": lambda f: not f.is_folder,
}


def ordered(files: list[DriveFile], order_by: str) -> list[DriveFile]:
    # Apply the sort keys last-to-first so that the first key wins (sorted() is stable).
    for term in reversed([t.strip() for t in order_by.split(",") if t.strip()]):
        key, _, direction = term.partition(" ")
        if key not in _ORDER_KEYS:
            raise legacy_error(400, "Invalid Value", "invalid", location="orderBy")
        files = sorted(files, key=_ORDER_KEYS[key], reverse=direction.strip() == "desc")
    return files
