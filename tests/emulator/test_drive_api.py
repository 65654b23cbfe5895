"""Drive v3 of the emulator, seen by google-api-python-client and by plain HTTP.

Tokens come from the emulator's real flow: a consent issues a server auth code, the web client
redeems it at ``POST /token``; the APIs then see whatever that token carries.
"""

from __future__ import annotations

import io
import json
import logging
from functools import partial
from typing import Any

import httpx
import pytest
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from grantkeeper.emulator.faults import Fault
from grantkeeper.emulator.server import EmulatorHandle

from ..helpers_google import Grant, backend_sign_in

APPDATA = "https://www.googleapis.com/auth/drive.appdata"
DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
EMAIL = "https://www.googleapis.com/auth/userinfo.email"
DISCOVERY = "/discovery/v1/apis/{api}/{apiVersion}/rest"
REALM = 'Bearer realm="https://accounts.google.com/"'
SPACES_MESSAGE = "The granted scopes do not give access to all of the requested spaces."


@pytest.fixture
def server(emulator: EmulatorHandle) -> EmulatorHandle:
    """The session's emulator, fresh for this test (its Drive and Photos data too)."""
    return emulator


#: Signs a user in (see helpers_google); each module's apps share one project by default.
sign_in = partial(backend_sign_in, project="proj-a")


def drive_client(server: EmulatorHandle, grant: Grant, *, served_document: bool) -> Any:
    creds = Credentials(token=grant.token)
    if served_document:
        return build(
            "drive",
            "v3",
            credentials=creds,
            discoveryServiceUrl=server.base_url + DISCOVERY,
            static_discovery=False,
            cache_discovery=False,
        )
    return build(
        "drive",
        "v3",
        credentials=creds,
        client_options={"api_endpoint": server.base_url + "/drive/v3/"},
    )


def api(
    server: EmulatorHandle, method: str, path: str, token: str | None, **kwargs: Any
) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, server.base_url + path, headers=headers, **kwargs)


# -- the calls of Google's guide through google-api-python-client ------------------------------


def test_files_get_appfolder_as_the_seed_does(
    server: EmulatorHandle, caplog: pytest.LogCaptureFixture
) -> None:
    grant = sign_in(server, {APPDATA})
    with drive_client(server, grant, served_document=False) as service:
        with caplog.at_level(logging.INFO, logger="grantkeeper.emulator.drive.routes"):
            folder = service.files().get(fileId="appfolder").execute()
        assert folder["kind"] == "drive#file"
        assert folder["mimeType"] == "application/vnd.google-apps.folder"
        assert set(folder) == {"kind", "id", "name", "mimeType"}
        assert folder["id"].startswith("0A")
        assert folder["id"] != "appfolder"
        assert "appfolder" in caplog.text
        # The v3 name is an alias of the same folder, and the folder is stable.
        again = service.files().get(fileId="appDataFolder", fields="id").execute()
        assert again == {"id": folder["id"]}


def test_create_with_media_body_through_the_served_discovery_document(
    server: EmulatorHandle,
) -> None:
    grant = sign_in(server, {APPDATA})
    with drive_client(server, grant, served_document=True) as service:
        # Bytes that trip naive multipart parsers: CR, LF, NUL, a fake boundary line, non-UTF-8.
        content = b'{"theme": "dark"}\r\n--===============123==\n\x00\xff\xfe tail\r\n'
        media = MediaIoBaseUpload(io.BytesIO(content), mimetype="application/json")
        created = (
            service.files()
            .create(
                body={"name": "settings.json", "parents": ["appDataFolder"]},
                media_body=media,
                fields="id,name,parents,size,md5Checksum,spaces",
            )
            .execute()
        )
        folder = service.files().get(fileId="appDataFolder", fields="id").execute()
        assert created["name"] == "settings.json"
        assert created["parents"] == [folder["id"]]
        assert created["spaces"] == ["appDataFolder"]
        assert created["size"] == str(len(content))
        assert service.files().get_media(fileId=created["id"]).execute() == content

        # uploadType=media (files.update with only a body) replaces the content.
        update = MediaIoBaseUpload(io.BytesIO(b"v2"), mimetype="application/json")
        service.files().update(fileId=created["id"], media_body=update).execute()
        assert service.files().get_media(fileId=created["id"]).execute() == b"v2"


def test_resumable_upload_in_chunks(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    with drive_client(server, grant, served_document=True) as service:
        content = bytes(range(256)) * 2048  # 512 KiB in two 256 KiB chunks
        media = MediaIoBaseUpload(
            io.BytesIO(content),
            mimetype="application/octet-stream",
            chunksize=256 * 1024,
            resumable=True,
        )
        request = service.files().create(
            body={"name": "backup.bin", "parents": ["appDataFolder"]},
            media_body=media,
            fields="id,size",
        )
        response = None
        steps = 0
        while response is None:
            _, response = request.next_chunk()
            steps += 1
        assert steps == 2
        assert response["size"] == str(len(content))
        assert service.files().get_media(fileId=response["id"]).execute() == content


def test_list_appdata_space_with_api_endpoint_and_paging(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    for name in ("a.json", "b.json", "c.json"):
        reply = api(
            server,
            "POST",
            "/drive/v3/files",
            grant.token,
            json={"name": name, "parents": ["appDataFolder"], "mimeType": "application/json"},
        )
        assert reply.status_code == 200, reply.text
    with drive_client(server, grant, served_document=False) as service:
        seen: list[str] = []
        page_token = None
        pages = 0
        while True:
            page = (
                service.files()
                .list(
                    spaces="appDataFolder",
                    fields="nextPageToken, files(id, name)",
                    pageSize=2,
                    pageToken=page_token,
                )
                .execute()
            )
            pages += 1
            assert all(set(f) == {"id", "name"} for f in page["files"])
            seen += [f["name"] for f in page["files"]]
            page_token = page.get("nextPageToken")
            if not page_token:
                break
        assert pages == 2
        assert sorted(seen) == ["a.json", "b.json", "c.json"]
        found = service.files().list(spaces="appDataFolder", q="name = 'b.json'").execute()
        assert [f["name"] for f in found["files"]] == ["b.json"]
        assert set(found) == {"kind", "incompleteSearch", "files"}
        assert set(found["files"][0]) == {"kind", "id", "name", "mimeType"}


def test_delete_then_not_found(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    with drive_client(server, grant, served_document=False) as service:
        made = service.files().create(body={"name": "x", "parents": ["appDataFolder"]}).execute()
        file_id = made["id"]
        assert service.files().delete(fileId=file_id).execute() == ""
        with pytest.raises(HttpError) as caught:
            service.files().get(fileId=file_id).execute()
    assert caught.value.status_code == 404
    assert caught.value.reason == f"File not found: {file_id}."


# -- access rules -----------------------------------------------------------------------------


def test_each_app_sees_only_its_own_folder_but_clients_of_one_project_share_it(
    server: EmulatorHandle,
) -> None:
    owner = sign_in(server, {APPDATA}, project="proj-owner")
    file_id = api(
        server,
        "POST",
        "/drive/v3/files",
        owner.token,
        json={"name": "n", "parents": ["appDataFolder"]},
    ).json()["id"]
    same_project = sign_in(server, {APPDATA}, project="proj-owner", email=owner.email)
    other_app = sign_in(server, {APPDATA}, project="proj-other", email=owner.email)
    assert api(server, "GET", f"/drive/v3/files/{file_id}", same_project.token).status_code == 200
    assert api(server, "GET", f"/drive/v3/files/{file_id}", other_app.token).status_code == 404
    listed = api(server, "GET", "/drive/v3/files?spaces=appDataFolder", other_app.token).json()
    assert listed["files"] == []
    mine = api(server, "GET", "/drive/v3/files/appDataFolder?fields=id", owner.token).json()
    theirs = api(server, "GET", "/drive/v3/files/appDataFolder?fields=id", other_app.token).json()
    assert mine != theirs


def test_drive_space_with_only_appdata_scope_is_refused(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    for path in (
        "/drive/v3/files",
        "/drive/v3/files?spaces=drive",
        "/drive/v3/files?spaces=appDataFolder,drive",
    ):
        reply = api(server, "GET", path, grant.token)
        assert reply.status_code == 403
        assert reply.json() == {
            "error": {
                "code": 403,
                "message": SPACES_MESSAGE,
                "errors": [
                    {
                        "domain": "global",
                        "reason": "insufficientScopes",
                        "message": SPACES_MESSAGE,
                    }
                ],
            }
        }
    # Creating outside the app folder needs a My Drive scope too.
    reply = api(server, "POST", "/drive/v3/files", grant.token, json={"name": "in-root"})
    assert reply.status_code == 403


def test_drive_file_scope_does_not_reach_the_app_folder(server: EmulatorHandle) -> None:
    grant = sign_in(server, {DRIVE_FILE})
    reply = api(server, "GET", "/drive/v3/files?spaces=appDataFolder", grant.token)
    assert reply.status_code == 403
    reply = api(server, "GET", "/drive/v3/files?spaces=drive", grant.token)
    assert reply.status_code == 200
    assert reply.json()["files"] == []


def test_missing_token_401_body_and_header(server: EmulatorHandle) -> None:
    reply = api(server, "GET", "/drive/v3/files/appDataFolder", None)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == REALM
    assert reply.json() == {
        "error": {
            "code": 401,
            "message": "Request is missing required authentication credential. Expected OAuth 2 "
            "access token, login cookie or other valid authentication credential. See "
            "https://developers.google.com/identity/sign-in/web/devconsole-project.",
            "errors": [
                {
                    "message": "Login Required.",
                    "domain": "global",
                    "reason": "required",
                    "location": "Authorization",
                    "locationType": "header",
                }
            ],
            "status": "UNAUTHENTICATED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "CREDENTIALS_MISSING",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "drive.googleapis.com",
                        "method": "google.apps.drive.v3.DriveFiles.Get",
                    },
                }
            ],
        }
    }


INVALID_401 = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "errors": [
            {
                "message": "Invalid Credentials",
                "domain": "global",
                "reason": "authError",
                "location": "Authorization",
                "locationType": "header",
            }
        ],
        "status": "UNAUTHENTICATED",
    }
}


def test_bad_and_expired_tokens_401(server: EmulatorHandle) -> None:
    # An unknown token, and an Authorization header that is not a bearer token at all.
    for header in ("Bearer ya29.not-a-real-token", "Basic dXNlcjpwYXNz"):
        reply = api(
            server, "GET", "/drive/v3/files/appDataFolder", None, headers={"Authorization": header}
        )
        assert reply.status_code == 401
        assert reply.headers["www-authenticate"] == f'{REALM}, error="invalid_token"'
        assert reply.json() == INVALID_401
    grant = sign_in(server, {APPDATA})
    assert api(server, "GET", "/drive/v3/files/appDataFolder", grant.token).status_code == 200
    server.control.advance_clock(3600)
    reply = api(server, "GET", "/drive/v3/files/appDataFolder", grant.token)
    assert reply.status_code == 401
    assert reply.json() == INVALID_401


def test_missing_scope_403_body_and_header(server: EmulatorHandle) -> None:
    grant = sign_in(server, {EMAIL})
    reply = api(server, "POST", "/drive/v3/files", grant.token, json={"name": "x"})
    assert reply.status_code == 403
    assert reply.headers["www-authenticate"] == (
        f'{REALM}, error="insufficient_scope", scope="https://www.googleapis.com/auth/drive '
        'https://www.googleapis.com/auth/drive.appdata https://www.googleapis.com/auth/drive.file"'
    )
    assert reply.json() == {
        "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "errors": [
                {
                    "message": "Insufficient Permission",
                    "domain": "global",
                    "reason": "insufficientPermissions",
                }
            ],
            "status": "PERMISSION_DENIED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {
                        "service": "drive.googleapis.com",
                        "method": "google.apps.drive.v3.DriveFiles.Create",
                    },
                }
            ],
        }
    }


def test_not_found_404_body(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    reply = api(server, "GET", "/drive/v3/files/1NoSuchFile", grant.token)
    assert reply.status_code == 404
    assert reply.json() == {
        "error": {
            "code": 404,
            "message": "File not found: 1NoSuchFile.",
            "errors": [
                {
                    "domain": "global",
                    "reason": "notFound",
                    "message": "File not found: 1NoSuchFile.",
                    "locationType": "parameter",
                    "location": "fileId",
                }
            ],
        }
    }


def test_fields_partial_responses(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    created = api(
        server,
        "POST",
        "/upload/drive/v3/files?uploadType=media&fields=id",
        grant.token,
        content=b"abc",
        headers={"Content-Type": "text/plain"},
    )
    # uploadType=media has no metadata, so the file would land in My Drive: refused here.
    assert created.status_code == 403
    made = api(
        server,
        "POST",
        "/drive/v3/files?fields=id",
        grant.token,
        json={"name": "p.txt", "parents": ["appDataFolder"], "appProperties": {"k": "v"}},
    )
    assert set(made.json()) == {"id"}
    file_id = made.json()["id"]
    one = api(
        server, "GET", f"/drive/v3/files/{file_id}?fields=id,name,appProperties", grant.token
    ).json()
    assert one == {"id": file_id, "name": "p.txt", "appProperties": {"k": "v"}}
    everything = api(server, "GET", f"/drive/v3/files/{file_id}?fields=*", grant.token).json()
    assert {"createdTime", "modifiedTime", "parents", "spaces", "version"} <= set(everything)
    listed = api(
        server, "GET", "/drive/v3/files?spaces=appDataFolder&fields=files/id", grant.token
    ).json()
    assert listed == {"files": [{"id": file_id}]}
    by_property = api(
        server,
        "GET",
        "/drive/v3/files",
        grant.token,
        params={
            "spaces": "appDataFolder",
            "q": "appProperties has { key='k' and value='v' }",
            "fields": "files(name)",
        },
    ).json()
    assert by_property == {"files": [{"name": "p.txt"}]}
    bad = api(server, "GET", f"/drive/v3/files/{file_id}?fields=nosuchfield", grant.token)
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "Invalid field selection nosuchfield"


def test_multipart_as_other_clients_send_it_crlf(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    boundary = "xyzzy"
    body = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        + json.dumps({"name": "crlf.txt", "parents": ["appDataFolder"]})
        + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld"
        + f"\r\n--{boundary}--\r\n"
    ).encode()
    reply = api(
        server,
        "POST",
        "/upload/drive/v3/files?uploadType=multipart&fields=id,mimeType,size",
        grant.token,
        content=body,
        headers={"Content-Type": f"multipart/related; boundary={boundary}"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["mimeType"] == "text/plain"
    media = api(server, "GET", f"/drive/v3/files/{reply.json()['id']}?alt=media", grant.token)
    assert media.content == b"hello\r\nworld"
    assert media.headers["content-type"].startswith("text/plain")


def test_injected_fault_and_call_counts(server: EmulatorHandle) -> None:
    grant = sign_in(server, {APPDATA})
    before = server.state.stats().get("drive.files.list", 0)
    server.state.faults.add(Fault(endpoint="drive.files.list", status=503))
    failed = api(server, "GET", "/drive/v3/files?spaces=appDataFolder", grant.token)
    assert failed.status_code == 503
    assert failed.json()["error"]["status"] == "UNAVAILABLE"
    assert (
        api(server, "GET", "/drive/v3/files?spaces=appDataFolder", grant.token).status_code == 200
    )
    assert server.state.stats()["drive.files.list"] == before + 2


def test_served_discovery_document_points_at_the_emulator(server: EmulatorHandle) -> None:
    document = httpx.get(server.base_url + "/discovery/v1/apis/drive/v3/rest").json()
    root = server.base_url + "/"
    assert document["rootUrl"] == root
    assert document["mtlsRootUrl"] == root
    assert document["baseUrl"] == root + "drive/v3/"
    assert document["batchPath"] == "batch/drive/v3"
    assert document["resources"]["files"]["methods"]["create"]["mediaUpload"]
    same = httpx.get(server.base_url + "/$discovery/rest", params={"version": "v3"}).json()
    assert same["rootUrl"] == root
    assert same["name"] == "drive"
    missing = httpx.get(server.base_url + "/discovery/v1/apis/gmail/v1/rest")
    assert missing.status_code == 404


def test_routes_are_documented_once(server: EmulatorHandle) -> None:
    # A route registered twice makes FastAPI warn (an error under this suite's filters).
    schema = httpx.get(server.base_url + "/emulator/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/drive/v3/files", "/upload/drive/v3/files", "/$discovery/rest"} <= set(paths)
