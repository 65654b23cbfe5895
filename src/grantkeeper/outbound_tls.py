"""The TLS context of grantkeeper's outbound HTTPS calls (Google, webhooks, the token API).

httpx builds a new :class:`ssl.SSLContext` for every client or transport it makes with the
default ``verify=True``, and building one means parsing the whole CA bundle: tens of
milliseconds of CPU each time. The keeper makes clients per keeper, per webhook round and per
RISC discovery, so it builds the context once, the way httpx would (``SSL_CERT_FILE`` or
``SSL_CERT_DIR`` from the environment, else certifi's bundle), and shares it: an ``SSLContext``
is safe to use from several threads and event loops as long as nobody changes it in a way that
differs between its users. aiohttp, under the calls to Google (``outbound_http``), uses it as
it is. One change does happen: httpcore (under the webhook and RISC clients) calls
``set_alpn_protocols(["http/1.1"])`` on it for every new connection. Every client grantkeeper
makes with this context leaves http2 off, so each call writes the same list and the sharing is
harmless; a client that enabled http2 (``["h2", "http/1.1"]``) must get a context of its own.
"""

from __future__ import annotations

import os
import ssl
from functools import cache

__all__ = ["verified_context"]


def verified_context() -> ssl.SSLContext:
    """The certificate-verifying context for outbound HTTPS (shared: never enable http2 on a
    client that uses it, nor change it otherwise)."""
    return _context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@cache
def _context(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
