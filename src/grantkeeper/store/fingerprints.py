"""One-way fingerprints stored next to (or instead of) secrets, so lookups need no plaintext.

- Google's Cross-Account Protection ``token-revoked`` event names a refresh token either by
  ``hash_base64_sha512_sha512`` (standard base64, padded, of SHA-512 over SHA-512 of the
  token) or by ``prefix`` (its first 16 characters). We store the double hash as Google
  defines it and, for the prefix form, only a SHA-256 of the prefix, so no fragment of the
  token sits in the database.
- The sign-in replay cache is keyed by a SHA-256 of the one-time code, never the code.
"""

from __future__ import annotations

import base64
import hashlib

RISC_PREFIX_LENGTH = 16


def refresh_token_sha512x2(token: str) -> str:
    """``hash_base64_sha512_sha512`` of a refresh token, as a RISC event carries it."""
    inner = hashlib.sha512(token.encode("utf-8")).digest()
    return base64.b64encode(hashlib.sha512(inner).digest()).decode("ascii")


def normalize_sha512x2(value: str) -> str:
    """Accept the base64url or unpadded spellings some senders use; return Google's form."""
    text = value.strip().replace("-", "+").replace("_", "/")
    return text + "=" * (-len(text) % 4)


def refresh_token_prefix_sha256(token_or_prefix: str) -> str:
    """SHA-256 (hex) of the first 16 characters of a refresh token (RISC ``prefix``)."""
    prefix = token_or_prefix[:RISC_PREFIX_LENGTH]
    return hashlib.sha256(prefix.encode("utf-8")).hexdigest()


def signin_code_hash(code: str) -> str:
    """Key of the sign-in replay cache: SHA-256 (hex) of the server auth code."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def idempotency_key_hash(key: str) -> str:
    """What a kept sign-in answer is bound to: SHA-256 (hex) of the ``Idempotency-Key``."""
    return hashlib.sha256(b"idempotency-key\0" + key.encode("utf-8")).hexdigest()
