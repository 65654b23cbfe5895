"""HTTPS for the emulator: a local certificate authority kept in a data directory, and a server
certificate for ``127.0.0.1``, ``localhost`` and ``::1`` it signs at each start.

Google is reached over HTTPS only, and client libraries keep it that way: googleapiclient builds
media-upload URLs from the discovery document's ``https`` root, and oauthlib refuses plain HTTP
unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set. Served over HTTPS, the emulator meets them as
Google would; a client only has to trust one CA file (``ca.pem``), and no insecure flag is set.

The CA is made once per directory and kept (its key readable by its owner only), so a developer
trusts it once; ``trustme`` does the X.509 work.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"
HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ServerCertificate:
    """Where the CA certificate (what clients trust) and the server's certificate and key are."""

    ca_path: Path
    cert_path: Path
    key_path: Path

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this CA (and verifies host names), for httpx and friends."""
        return ssl.create_default_context(cafile=str(self.ca_path))


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` with mode 0600 from the start: a key is never readable by others."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def local_ca(directory: Path) -> trustme.CA:
    """The CA kept in ``directory`` (``ca.pem``, ``ca-key.pem``), made on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / CA_FILE, directory / CA_KEY_FILE
    if cert.exists() and key.exists():
        return trustme.CA.from_pem(cert.read_bytes(), key.read_bytes())
    ca = trustme.CA(organization_name="grantkeeper emulator")
    _write_private(key, ca.private_key_pem.bytes())
    cert.write_bytes(ca.cert_pem.bytes())
    return ca


def server_certificate(directory: Path, hosts: tuple[str, ...] = HOSTS) -> ServerCertificate:
    """Sign a fresh server certificate for ``hosts`` with the CA of ``directory``.

    A new one at each start (it is cheap: an EC key) valid for a year, so a certificate never
    outlives what the CA says, and the server's key never has to be kept.
    """
    ca = local_ca(directory)
    now = datetime.now(UTC)
    leaf = ca.issue_cert(
        *hosts,
        common_name="grantkeeper emulator",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=365),
    )
    cert_path, key_path = directory / SERVER_FILE, directory / SERVER_KEY_FILE
    _write_private(key_path, leaf.private_key_pem.bytes())
    cert_path.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return ServerCertificate(directory / CA_FILE, cert_path, key_path)
