"""D3/D4: an ID token whose JSON is hostile (nested thousands deep, lone surrogates) is refused
as untrusted, never a RecursionError."""

from __future__ import annotations

import base64
import json

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from grantkeeper.errors import UntrustedIdToken
from grantkeeper.oauth.id_token import IdTokenPolicy, read_header, verify_id_token

from .conftest import NOW, default_claims

DEEP = "[" * 3000 + "]" * 3000


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(payload: bytes, key: RSAKey) -> str:
    protected = {"alg": "RS256", "kid": key.kid}
    return jws.serialize_compact(protected, payload, key, algorithms=["RS256"])


def test_deeply_nested_header_is_malformed(signing_key: RSAKey) -> None:
    header = b64(('{"alg":"RS256","kid":"k","x":' + DEEP + "}").encode())
    token = f"{header}.{b64(b'{}')}.c2ln"
    assert len(token) < 16 * 1024
    with pytest.raises(UntrustedIdToken) as caught:
        read_header(token)
    assert caught.value.reason.startswith("malformed")


def test_deeply_nested_claims_are_refused(signing_key: RSAKey, policy: IdTokenPolicy) -> None:
    claims = json.dumps(default_claims())[:-1] + ', "x": ' + DEEP + "}"
    token = signed(claims.encode(), signing_key)
    with pytest.raises(UntrustedIdToken) as caught:
        verify_id_token(token, signing_key, policy=policy, now=NOW)
    assert "nested" in caught.value.reason


def test_lone_surrogate_in_a_claim_is_refused(signing_key: RSAKey, policy: IdTokenPolicy) -> None:
    claims = json.dumps(default_claims())[:-1] + ', "name": "Ada \\ud800"}'
    token = signed(claims.encode(), signing_key)
    with pytest.raises(UntrustedIdToken) as caught:
        verify_id_token(token, signing_key, policy=policy, now=NOW)
    assert "surrogate" in caught.value.reason


@pytest.mark.parametrize("sub", ["1" * 256, "", "\u00e9" * 10])
def test_sub_beyond_oidc_limits_is_refused(
    signing_key: RSAKey, policy: IdTokenPolicy, sub: str
) -> None:
    """D7: OIDC Core §2, sub "MUST NOT exceed 255 ASCII characters"; PostgreSQL would refuse it
    after the code is spent while SQLite kept it."""
    claims = json.dumps({**default_claims(), "sub": sub}).encode()
    with pytest.raises(UntrustedIdToken) as caught:
        verify_id_token(signed(claims, signing_key), signing_key, policy=policy, now=NOW)
    assert "sub" in caught.value.reason
