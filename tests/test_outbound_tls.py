"""The shared TLS context of outbound HTTPS calls: built once, the way httpx would build it."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest
import trustme

from grantkeeper.outbound_tls import verified_context


def test_one_context_serves_every_client_and_verifies_certificates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = verified_context()
    assert context is verified_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as httpx loads it
    assert Path(certifi.where()).is_file()


def test_ssl_cert_file_names_the_trusted_authorities(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    context = verified_context()
    assert context is verified_context()
    assert context.cert_store_stats()["x509_ca"] == 1
    monkeypatch.delenv("SSL_CERT_FILE")
    assert verified_context() is not context
