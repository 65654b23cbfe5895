"""Google's API Discovery Service: the discovery documents of the APIs the emulator serves,
pointed at itself.

google-api-python-client builds its client from a discovery document: every method URL is
``rootUrl + servicePath + path`` and every media upload URL is ``rootUrl + "upload/" +
servicePath + path``. ``client_options={"api_endpoint": ...}`` replaces only the former, so a
client whose uploads must reach the emulator needs a document whose ``rootUrl`` *is* the emulator:
``build(api, version, discoveryServiceUrl=base + "/discovery/v1/apis/{api}/{apiVersion}/rest",
static_discovery=False, credentials=...)``.

Drive v3 comes from the copy bundled with google-api-python-client (so it matches the client
installed); Photos Library v1 is kept with the Photos service (``photos/photoslibrary.v1.json``),
since the client bundles none and the real one lists the scopes Google removed in 2025. A service
that brings its own document adds a line to :data:`DOCUMENTS`.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, Response
from googleapiclient import discovery_cache

from grantkeeper.emulator.errors import rpc_error
from grantkeeper.emulator.google_api import GoogleApiRoute, base_url
from grantkeeper.emulator.state import EmulatorState

#: (api, version) → where its document comes from: ``None`` for the copy bundled with
#: google-api-python-client, else (package, file name) of a JSON file kept beside the service.
DOCUMENTS: dict[tuple[str, str], tuple[str, str] | None] = {
    ("drive", "v3"): None,
    ("oauth2", "v2"): None,
    ("photoslibrary", "v1"): ("grantkeeper.emulator.photos", "photoslibrary.v1.json"),
    ("photospicker", "v1"): ("grantkeeper.emulator.photospicker", "photospicker.v1.json"),
}
#: Where a service's paths start on the emulator's one origin when Google's would collide with
#: another service's (the Picker's ``v1/mediaItems`` is also the Library's): the served
#: document's ``servicePath``.
SERVICE_PATHS: dict[tuple[str, str], str] = {("photospicker", "v1"): "photospicker/"}


@cache
def _load(api: str, version: str) -> str:
    source = DOCUMENTS[(api, version)]
    if source is None:
        text = discovery_cache.get_static_doc(api, version)
        if text is None:
            raise LookupError(f"google-api-python-client bundles no {api} {version} document")
        return str(text)
    package, name = source
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def load_document(api: str, version: str) -> dict[str, Any]:
    """The document as published (Google's URLs), a fresh copy the caller may change."""
    return copy.deepcopy(json.loads(_load(api, version)))


def served_document(api: str, version: str, origin: str) -> dict[str, Any]:
    """The document with every URL pointing at the emulator at ``origin`` (no trailing slash)."""
    document = load_document(api, version)
    root = origin.rstrip("/") + "/"
    document["rootUrl"] = root
    document["mtlsRootUrl"] = root
    if (api, version) in SERVICE_PATHS:
        document["servicePath"] = SERVICE_PATHS[(api, version)]
    document["baseUrl"] = root + document.get("servicePath", "")
    # batchPath is relative to rootUrl already; keep it so batch requests reach the emulator too.
    return document


def _discovery_response(state: EmulatorState, api: str, version: str, request: Request) -> Response:
    if (api, version) not in DOCUMENTS:
        raise rpc_error(404, f"Requested entity was not found: {api} {version}.")
    document = served_document(api, version, base_url(state, request))
    return Response(json.dumps(document), media_type="application/json; charset=UTF-8")


def build_router(state: EmulatorState) -> APIRouter:
    """``/discovery/v1/apis/{api}/{version}/rest`` and the per-host ``/$discovery/rest``."""
    router = APIRouter(route_class=GoogleApiRoute, tags=["Discovery"])

    @router.get("/discovery/v1/apis/{api}/{version}/rest", summary="An API's discovery document")
    async def discovery_v1(api: str, version: str, request: Request) -> Response:
        return _discovery_response(state, api, version, request)

    @router.get("/$discovery/rest", summary="Discovery document by version (one origin)")
    async def discovery_v2(request: Request, version: str, api: str | None = None) -> Response:
        # Google serves this per API host ({api}.googleapis.com); the emulator has one origin, so
        # the version picks the API (v3 is Drive, v1 Photos Library) unless ?api= names it.
        if api is None:
            api = next((a for a, v in DOCUMENTS if v == version), "")
        return _discovery_response(state, api, version, request)

    return router
