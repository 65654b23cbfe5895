"""The emulator's signing keys: RS256 over RSA-2048, 40-hex kids, Google-style rotation.

Google publishes two keys; about weekly a third appears, new tokens are signed with it, and the
oldest disappears about a day later (google-protocol.md §4.3). ``rotate`` does the same on the
emulator's clock: the newest key signs at once, the oldest key that is not yet retiring is
retired after ``overlap`` seconds.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey

from grantkeeper.clock import Clock


@dataclass
class SigningKey:
    kid: str
    jwk: RSAKey
    certificate_pem: str
    created_at: datetime
    retire_at: datetime | None = None

    def published(self, now: datetime) -> bool:
        return self.retire_at is None or now < self.retire_at

    def public_jwk(self) -> dict[str, Any]:
        # Member order as Google's JWKS: kty, alg, use, kid, n, e (clients must not care).
        public = self.jwk.as_dict(private=False)
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": public["n"],
            "e": public["e"],
        }


def new_kid() -> str:
    """40 lowercase hex digits, the shape of Google's kids."""
    return secrets.token_hex(20)


def generate_key(now: datetime, kid: str | None = None) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = kid or new_kid()
    # oauth2client and Node's google-auth read /oauth2/v1/certs as x509 certificates, so each key
    # gets a self-signed one, as Google serves.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "grantkeeper-emulator")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return SigningKey(
        kid=kid,
        jwk=RSAKey.import_key(pem),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        created_at=now,
    )


class KeyRing:
    """Published keys and the one that signs; thread-safe."""

    def __init__(self, clock: Clock, count: int = 2) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        now = clock.now()
        self._keys: list[SigningKey] = [generate_key(now) for _ in range(max(count, 1))]

    def published(self) -> list[SigningKey]:
        now = self._clock.now()
        with self._lock:
            return [k for k in self._keys if k.published(now)]

    def signing_key(self) -> SigningKey:
        return self.published()[-1]

    def all_keys(self) -> list[SigningKey]:
        """Every key ever made, retired ones included (to sign "retired key" test tokens)."""
        with self._lock:
            return list(self._keys)

    def rotate(self, overlap_seconds: int) -> SigningKey:
        """Publish and start signing with a new key; retire the oldest key not already retiring
        after the overlap, so once every overlap has passed as many keys are published as
        before (Google: 2, and 3 during a rollover), however often it was called."""
        now = self._clock.now()
        key = generate_key(now)
        with self._lock:
            staying = [k for k in self._keys if k.published(now) and k.retire_at is None]
            if staying:
                staying[0].retire_at = now + timedelta(seconds=overlap_seconds)
            self._keys.append(key)
        return key

    def seconds_to_next_change(self) -> float | None:
        now = self._clock.now()
        with self._lock:
            pending = [
                (k.retire_at - now).total_seconds()
                for k in self._keys
                if k.retire_at is not None and k.retire_at > now
            ]
        return min(pending) if pending else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published()]}

    def certificates(self) -> dict[str, str]:
        return {k.kid: k.certificate_pem for k in self.published()}

    def sign(self, claims: dict[str, Any], key: SigningKey | None = None) -> str:
        key = key or self.signing_key()
        header = {"alg": "RS256", "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key.jwk, algorithms=["RS256"])
