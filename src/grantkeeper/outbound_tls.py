"""The TLS context of grantkeeper's outbound HTTPS calls (Google, webhooks, the token API).

httpx builds a new :class:`ssl.SSLContext` for every client or transport it makes with the
default ``verify=True``, and building one means parsing the whole CA bundle: tens of
milliseconds of CPU each time. The keeper makes clients per keeper, per webhook round and per
RISC discovery, so it builds the context once, the way httpx would (``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` from the environment, else certifi's bundle), and shares it: an ``SSLContext``
is safe to use from several threads and event loops as long as nobody changes it.
"""

from __future__ import annotations

import os
import ssl
from functools import cache

__all__ = ["verified_context"]


def verified_context() -> ssl.SSLContext:
    """The certificate-verifying context for outbound HTTPS (shared; do not modify it)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
