"""Tokens at rest: a key ring and AES-256-GCM bound to the grant's identity.

Key format (``GRANTKEEPER_ENCRYPTION_KEYS``, comma-separated, first one encrypts)::

    <kid>:<base64url of 32 random bytes>          e.g.  k3f9a01bc:Zm9v...

``kid`` is 1-32 characters of ``[A-Za-z0-9_-]``; it is written next to every ciphertext so a
ring can hold old keys until ``grantkeeper keys rotate`` has re-encrypted their rows.
:func:`generate_key` prints a fresh one.

Envelope stored in the database::

    v1.<kid>.<base64url(nonce[12] || ciphertext || tag[16])>

Each value gets a fresh 96-bit random nonce (NIST SP 800-38D §8.2.2, random construction).
The associated data is the grant's identity plus the field name and the key id, so a
ciphertext copied to another user's row, to another client's grant or to another column fails
to decrypt (the Vault barrier's "MoveIntegrity" property).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from grantkeeper.errors import ConfigurationError, TokenDecryptionError

if TYPE_CHECKING:
    from grantkeeper.settings import Settings

__all__ = ["KEY_FILE_NAME", "KeyRing", "envelope_key_id", "generate_key"]

log = logging.getLogger(__name__)

KEY_FILE_NAME = "encryption.key"
"""Name of the embedded default's key file inside the data directory."""

_ENVELOPE_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # validate=True refuses characters outside the alphabet instead of silently dropping them.
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def generate_key(kid: str | None = None) -> str:
    """A new key in the ring format ``<kid>:<base64url 32 bytes>``, from the OS CSPRNG."""
    kid = kid or "k" + secrets.token_hex(4)
    if not _KID.fullmatch(kid):
        raise ConfigurationError("A key id must be 1-32 characters of A-Z a-z 0-9 _ -.")
    return f"{kid}:{_b64encode(secrets.token_bytes(_KEY_BYTES))}"


def _parse_key(spec: str, position: int) -> tuple[str, bytes]:
    # Messages name the key by position and kid only: the key material never reaches a log.
    where = f"GRANTKEEPER_ENCRYPTION_KEYS entry #{position}"
    kid, sep, material = spec.strip().partition(":")
    if not sep or not _KID.fullmatch(kid):
        raise ConfigurationError(
            f"{where} is not '<kid>:<base64url key>' with a kid of 1-32 characters "
            "A-Z a-z 0-9 _ - (generate one with: grantkeeper keys generate)."
        )
    try:
        key = _b64decode(material)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} (kid {kid!r}) is not valid base64url.") from None
    if len(key) != _KEY_BYTES:
        raise ConfigurationError(
            f"{where} (kid {kid!r}) decodes to {len(key)} bytes; AES-256 needs {_KEY_BYTES}."
        )
    return kid, key


def envelope_key_id(envelope: str) -> str:
    """The key id an envelope was written with (no decryption)."""
    _, kid, _ = _split_envelope(envelope)
    return kid


def _split_envelope(envelope: str) -> tuple[str, str, str]:
    parts = envelope.split(".")
    if len(parts) != 3 or parts[0] != _ENVELOPE_VERSION or not _KID.fullmatch(parts[1]):
        raise TokenDecryptionError("A stored token is not a grantkeeper v1 envelope.")
    return parts[0], parts[1], parts[2]


def _associated_data(kid: str, context: Sequence[str]) -> bytes:
    # JSON keeps the parts unambiguous whatever characters a sub or client id holds.
    return json.dumps([_ENVELOPE_VERSION, kid, *context], separators=(",", ":")).encode()


class KeyRing:
    """Keys by id; the first encrypts, every one decrypts.

    ``context`` in :meth:`encrypt`/:meth:`decrypt` is the value's identity, for the grant
    store ``(sub, client_id, field)``; the same context must be given to decrypt.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError("The key ring is empty; set GRANTKEEPER_ENCRYPTION_KEYS.")
        self._aead: dict[str, AESGCM] = {}
        for kid, key in keys:
            if kid in self._aead:
                raise ConfigurationError(f"Key id {kid!r} appears twice in the key ring.")
            if len(key) != _KEY_BYTES:
                raise ConfigurationError(f"Key {kid!r} is not {_KEY_BYTES} bytes long.")
            self._aead[kid] = AESGCM(key)
        self.primary_kid: str = keys[0][0]

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary_kid!r}, kids={list(self._aead)!r})"

    @classmethod
    def from_strings(cls, specs: Iterable[str]) -> KeyRing:
        """Parse ``<kid>:<base64url key>`` strings; :class:`ConfigurationError` names a bad one."""
        return cls([_parse_key(spec, n) for n, spec in enumerate(specs, start=1)])

    @classmethod
    def load_or_create(cls, settings: Settings) -> KeyRing:
        """The configured ring, or the embedded default: a 0600 key file in the data directory.
        The key file is only for the embedded SQLite store; with any other database the ring
        must be configured.

        The key file is created once (atomically, never readable by others even for an
        instant) and reused afterwards; a warning says that production needs its own key.
        """
        if settings.encryption_keys:
            return cls.from_strings(settings.encryption_keys)
        if not settings.effective_database_url.startswith("sqlite"):
            # A shared database with a key file per host: each instance would write tokens the
            # others cannot read. Only the embedded default may make its own key.
            raise ConfigurationError(
                "GRANTKEEPER_ENCRYPTION_KEYS must be set when the store is not the embedded "
                "SQLite: every instance must share one key ring. Make a key with "
                "'grantkeeper keys generate' and give it to every instance."
            )
        path = settings.data_dir / KEY_FILE_NAME
        spec = _read_or_create_key_file(path)
        log.warning(
            "No GRANTKEEPER_ENCRYPTION_KEYS set: using the key file %s. Fine for development; "
            "in production set GRANTKEEPER_ENCRYPTION_KEYS from a secret store and keep it "
            "apart from the database.",
            path,
        )
        try:
            return cls.from_strings([spec])
        except ConfigurationError:
            raise ConfigurationError(
                f"The key file {path} is malformed; restore it from a backup "
                "(tokens written with it cannot be read without it)."
            ) from None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._aead)

    def encrypt(self, plaintext: str, context: Sequence[str]) -> str:
        """Seal ``plaintext`` under the primary key, bound to ``context``."""
        kid = self.primary_kid
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead[kid].encrypt(
            nonce, plaintext.encode("utf-8"), _associated_data(kid, context)
        )
        return f"{_ENVELOPE_VERSION}.{kid}.{_b64encode(nonce + sealed)}"

    def decrypt(self, envelope: str, context: Sequence[str]) -> str:
        """Open an envelope written for ``context``; :class:`TokenDecryptionError` otherwise."""
        _, kid, body = _split_envelope(envelope)
        aead = self._aead.get(kid)
        if aead is None:
            raise TokenDecryptionError(
                f"A stored token was written with key id {kid!r}, which is not in the key ring."
            )
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError):
            raise TokenDecryptionError("A stored token envelope is corrupt.") from None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            raise TokenDecryptionError("A stored token envelope is truncated.")
        try:
            plain = aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _associated_data(kid, context)
            )
        except InvalidTag:
            raise TokenDecryptionError(
                "A stored token failed authentication: it was altered or belongs to another "
                "grant or field."
            ) from None
        return plain.decode("utf-8")

    def is_primary(self, envelope: str) -> bool:
        """Whether the envelope is already under the primary key (nothing to rotate)."""
        return envelope_key_id(envelope) == self.primary_kid


def _read_or_create_key_file(path: Path) -> str:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path, generate_key())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigurationError(
            f"The key file {path} is accessible to other users (mode {mode:o}); "
            f"run: chmod 600 {path}"
        )
    return path.read_text(encoding="ascii").strip()


def _create_key_file(path: Path, spec: str) -> None:
    # Write a private temporary file, then hard-link it into place: the key file appears
    # complete and 0600 in one step, and if another process won the race we keep theirs.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(spec + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
