"""Loading Google's client_secret_*.json: every malformed shape names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from grantkeeper.errors import ConfigurationError
from grantkeeper.oauth.client_secrets import load_client_secrets

SECRET = "GOCSPX-very-secret-value"


def web(**overrides: Any) -> dict[str, Any]:
    info: dict[str, Any] = {
        "client_id": "123-abc.apps.googleusercontent.com",
        "project_id": "demo",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_secret": SECRET,
        "redirect_uris": ["http://localhost:4000"],
        "javascript_origins": ["http://localhost:4000"],
    }
    info.update(overrides)
    return {k: v for k, v in info.items() if v is not None}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "client_secret_123.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def failure(path: Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_client_secrets(path)
    message = str(caught.value)
    assert str(path) in message
    assert SECRET not in message
    assert caught.value.code == "config_invalid"
    return message


def test_web_file_as_downloaded(tmp_path: Path) -> None:
    secrets = load_client_secrets(write(tmp_path, {"web": web()}))
    assert secrets.client_type == "web"
    assert secrets.client_id == "123-abc.apps.googleusercontent.com"
    assert secrets.client_secret == SECRET
    assert secrets.token_uri == "https://oauth2.googleapis.com/token"
    assert secrets.redirect_uris == ("http://localhost:4000",)
    assert SECRET not in repr(secrets)


def test_installed_file(tmp_path: Path) -> None:
    info = web(javascript_origins=None, redirect_uris=["http://localhost"], revoke_uri="https://r")
    secrets = load_client_secrets(write(tmp_path, {"installed": info}))
    assert secrets.client_type == "installed"
    assert secrets.revoke_uri == "https://r"


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in failure(tmp_path / "nope.json")


def test_not_json_reports_position_not_content(tmp_path: Path) -> None:
    message = failure(write(tmp_path, '{"web": {"client_secret": "' + SECRET + '",'))
    assert "not valid JSON" in message


@pytest.mark.parametrize("data", [[], '"just a string"', {}, {"web": web(), "installed": web()}])
def test_wrong_top_level_shape(tmp_path: Path, data: Any) -> None:
    assert "single property" in failure(write(tmp_path, data))


def test_unknown_client_type(tmp_path: Path) -> None:
    assert 'unknown client type "service_account"' in failure(
        write(tmp_path, {"service_account": web()})
    )


def test_client_type_must_be_an_object(tmp_path: Path) -> None:
    assert "must be a JSON object" in failure(write(tmp_path, {"web": ["x"]}))


@pytest.mark.parametrize("field", ["client_id", "client_secret", "token_uri"])
def test_missing_required_field(tmp_path: Path, field: str) -> None:
    message = failure(write(tmp_path, {"web": web(**{field: None})}))
    assert f'missing property "{field}"' in message


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_placeholder_values_are_refused(tmp_path: Path, field: str) -> None:
    message = failure(write(tmp_path, {"web": web(**{field: "[[INSERT " + field + "]]"})}))
    assert f'property "{field}" is not configured' in message


def test_redirect_uris_must_be_a_list_of_strings(tmp_path: Path) -> None:
    assert '"redirect_uris"' in failure(write(tmp_path, {"web": web(redirect_uris="x")}))
