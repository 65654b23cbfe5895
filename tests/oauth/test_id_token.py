"""ID-token verification, pure: every attack case from style-and-security §B.5 is a test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from grantkeeper.errors import UntrustedIdToken
from grantkeeper.oauth.discovery import GOOGLE_ISSUERS
from grantkeeper.oauth.id_token import (
    IdTokenPolicy,
    at_hash,
    read_header,
    verify_id_token,
)

from .conftest import ACCESS_TOKEN, IOS_CLIENT, NOW, SERVER_CLIENT, TokenFactory


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def rejected(token: str, key: RSAKey, policy: IdTokenPolicy, **kwargs: Any) -> str:
    kwargs.setdefault("now", NOW)
    kwargs.setdefault("access_token", ACCESS_TOKEN)
    with pytest.raises(UntrustedIdToken) as caught:
        verify_id_token(token, key, policy=policy, **kwargs)
    assert caught.value.code == "untrusted_id_token"
    assert token not in str(caught.value)
    assert token not in caught.value.reason
    return caught.value.reason


def test_valid_token_gives_the_identity(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    identity = verify_id_token(
        mint(hd="example.com", nonce="n-1"),
        signing_key,
        policy=policy,
        now=NOW,
        access_token=ACCESS_TOKEN,
        nonce="n-1",
    )
    assert identity.sub == "110169484474386276334"
    assert identity.email == "ada@example.com"
    assert identity.email_verified is True
    assert (identity.name, identity.given_name, identity.family_name) == (
        "Ada Lovelace",
        "Ada",
        "Lovelace",
    )
    assert identity.picture == "https://example.com/ada.png"
    assert identity.locale == "en"
    assert identity.hd == "example.com"
    assert identity.aud == SERVER_CLIENT
    assert identity.azp == IOS_CLIENT
    assert identity.expires_at == NOW + timedelta(hours=1)
    assert identity.claims["at_hash"] == at_hash(ACCESS_TOKEN)


def test_email_verified_is_reported_as_is(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    for value, expected in ((False, False), ("true", True), ("false", False)):
        identity = verify_id_token(mint(email_verified=value), signing_key, policy=policy, now=NOW)
        assert identity.email_verified is expected


def test_at_hash_matches_the_oidc_definition() -> None:
    # OIDC Core §3.1.3.6 / Google sample: 16 bytes of SHA-256, base64url without padding.
    assert at_hash("ya29.a0") == at_hash("ya29.a0")
    assert len(at_hash("x")) == 22
    assert "=" not in at_hash("x")


def test_alg_none_is_rejected(signing_key: RSAKey, policy: IdTokenPolicy) -> None:
    from .conftest import default_claims

    body = b64(default_claims())
    for token in (
        f"{b64({'alg': 'none', 'kid': signing_key.kid})}.{body}.",
        f"{b64({'alg': 'none', 'kid': signing_key.kid})}.{body}.c2ln",
    ):
        assert "'none' is not allowed" in rejected(token, signing_key, policy)


def test_hs256_signed_with_the_public_key_is_rejected(
    signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    from .conftest import default_claims

    # joserfc refuses to build such a key, so sign by hand, as an attacker would.
    public_pem = signing_key.as_pem(private=False)
    signing_input = f"{b64({'alg': 'HS256', 'kid': signing_key.kid})}.{b64(default_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert "'HS256' is not allowed" in rejected(forged, signing_key, policy)


@pytest.mark.parametrize("alg", ["RS384", "RS512", "PS256", "ES256", "HS256", "EdDSA"])
def test_any_other_algorithm_is_rejected(alg: str, policy: IdTokenPolicy) -> None:
    from .conftest import default_claims

    token = f"{b64({'alg': alg, 'kid': 'k'})}.{b64(default_claims())}.c2ln"
    with pytest.raises(UntrustedIdToken) as caught:
        read_header(token)
    assert caught.value.reason == f"algorithm {alg!r} is not allowed; only RS256 is accepted"


def test_tampered_payload_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    from .conftest import default_claims

    header, _, signature = mint().split(".")
    forged = f"{header}.{b64(default_claims(sub='999'))}.{signature}"
    assert rejected(forged, signing_key, policy).startswith("signature: bad_signature")


def test_flipped_signature_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    header, body, signature = mint().split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert rejected(f"{header}.{body}.{flipped}", signing_key, policy).startswith("signature:")


def test_token_signed_by_another_key_under_the_genuine_kid_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, other_key: RSAKey, policy: IdTokenPolicy
) -> None:
    forged = mint(key=other_key, header={"alg": "RS256", "kid": signing_key.kid})
    assert rejected(forged, signing_key, policy).startswith("signature: bad_signature")


def test_embedded_jwk_in_the_header_is_never_used(
    mint: TokenFactory, signing_key: RSAKey, other_key: RSAKey, policy: IdTokenPolicy
) -> None:
    # jku/x5u would point us at the attacker's keys: ignored, the JWKS key decides.
    for extra in ({"jku": "https://evil.test/jwks"}, {"x5u": "https://evil.test/cert"}):
        forged = mint(key=other_key, header={"alg": "RS256", "kid": signing_key.kid, **extra})
        assert rejected(forged, signing_key, policy).startswith("signature: bad_signature")
    # An embedded jwk (the attacker's public key) is refused as well.
    header = {"alg": "RS256", "kid": signing_key.kid, "jwk": other_key.as_dict(private=False)}
    rejected(mint(key=other_key, header=header), signing_key, policy)


def test_kid_is_required_and_must_match_the_key(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert "no key id" in rejected(mint(header={"alg": "RS256"}), signing_key, policy)
    other_kid = mint(header={"alg": "RS256", "kid": "c" * 40})
    assert "does not match" in rejected(other_kid, signing_key, policy)


def test_crit_header_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    token = f"{b64({'alg': 'RS256', 'kid': signing_key.kid, 'crit': ['exp']})}.e30.c2ln"
    assert "crit" in rejected(token, signing_key, policy)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "!!!.e30.c2ln", f"{b64({'kid': 'x'})}.e30.c2ln", "x" * 20000],
)
def test_malformed_tokens_are_rejected_not_crashed(
    token: str, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    with pytest.raises(UntrustedIdToken):
        verify_id_token(token, signing_key, policy=policy, now=NOW)


def test_payload_that_is_not_an_object_is_rejected(
    signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    from joserfc import jws

    token = jws.serialize_compact({"alg": "RS256", "kid": signing_key.kid}, b"[1,2]", signing_key)
    assert "invalid_payload" in rejected(token, signing_key, policy)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://evil.test",
        "https://issuer.test.evil.com",
        "https://issuer.tes",
        "issuer.test",
        "https://issuer.test/",
    ],
)
def test_wrong_issuer_is_rejected(
    issuer: str, mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert "issuer" in rejected(mint(iss=issuer), signing_key, policy)


def test_google_issuer_accepts_both_forms_and_nothing_else(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    google = IdTokenPolicy(
        issuers=GOOGLE_ISSUERS, audience=SERVER_CLIENT, allowed_azp=policy.allowed_azp
    )
    for issuer in ("https://accounts.google.com", "accounts.google.com"):
        assert (
            verify_id_token(mint(iss=issuer), signing_key, policy=google, now=NOW).issuer == issuer
        )
    for issuer in ("https://accounts.google.com.evil.com", "https://accounts.google.co"):
        assert "issuer" in rejected(mint(iss=issuer), signing_key, google)


def test_wrong_audience_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert "audience" in rejected(mint(aud="someone-else"), signing_key, policy)
    assert "audience" in rejected(mint(aud=[IOS_CLIENT]), signing_key, policy)


def test_audience_list_with_an_untrusted_extra_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    reason = rejected(mint(aud=[SERVER_CLIENT, "attacker-app"]), signing_key, policy)
    assert "untrusted" in reason
    assert "attacker-app" in reason


def test_several_audiences_need_azp(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    token = mint(aud=[SERVER_CLIENT, IOS_CLIENT], azp=None)
    assert "no 'azp'" in rejected(token, signing_key, policy)
    accepted = verify_id_token(
        mint(aud=[SERVER_CLIENT, IOS_CLIENT]), signing_key, policy=policy, now=NOW
    )
    assert accepted.aud == SERVER_CLIENT


def test_azp_must_be_an_allowed_client_or_our_own(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert "azp" in rejected(mint(azp="unknown-app"), signing_key, policy)
    # A web sign-in: the server client presents its own token.
    own = verify_id_token(mint(azp=SERVER_CLIENT), signing_key, policy=policy, now=NOW)
    assert own.azp == SERVER_CLIENT
    # No azp with a single audience equal to ours (OIDC: azp only needed when different).
    assert verify_id_token(mint(azp=None), signing_key, policy=policy, now=NOW).azp is None


def test_expired_token_reports_the_leeway(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    token = mint()
    # Valid up to exp + leeway (exclusive), rejected from there on.
    just_inside = NOW + timedelta(seconds=3600 + 59)
    verify_id_token(token, signing_key, policy=policy, now=just_inside)
    reason = rejected(token, signing_key, policy, now=NOW + timedelta(seconds=3600 + 60))
    assert reason.startswith("expired: exp is 60 s in the past")
    assert "leeway is 60 s" in reason


def test_iat_in_the_future_beyond_leeway_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    iat = int(NOW.timestamp())
    verify_id_token(mint(iat=iat + 60, exp=iat + 3660), signing_key, policy=policy, now=NOW)
    reason = rejected(mint(iat=iat + 61, exp=iat + 3661), signing_key, policy)
    assert reason.startswith("iat is 61 s in the future")
    assert "leeway is 60 s" in reason


def test_leeway_is_configurable(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    strict = IdTokenPolicy(
        issuers=policy.issuers,
        audience=SERVER_CLIENT,
        allowed_azp=policy.allowed_azp,
        leeway_seconds=0,
    )
    iat = int(NOW.timestamp())
    assert "leeway is 0 s" in rejected(mint(iat=iat + 1, exp=iat + 3601), signing_key, strict)


def test_nbf_in_the_future_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    reason = rejected(mint(nbf=int(NOW.timestamp()) + 600), signing_key, policy)
    assert reason.startswith("nbf is 600 s in the future")


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat"])
def test_missing_required_claims_are_rejected(
    claim: str, mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    reason = rejected(mint(drop=(claim,)), signing_key, policy)
    assert reason == f"missing required claim(s): {claim}"


@pytest.mark.parametrize(("claim", "value"), [("exp", "soon"), ("iat", True), ("exp", None)])
def test_non_numeric_times_are_rejected(
    claim: str, value: Any, mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    token = mint(**{claim: value}) if value is not None else mint(drop=(claim,))
    assert claim in rejected(token, signing_key, policy)


def test_empty_sub_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert "sub" in rejected(mint(sub=""), signing_key, policy)


def test_overlong_lifetime_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    iat = int(NOW.timestamp())
    assert "lifetime" in rejected(mint(exp=iat + 2 * 86400), signing_key, policy)


def test_at_hash_mismatch_or_absence_is_rejected(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    assert rejected(mint(at_hash=at_hash("ya29.other")), signing_key, policy) == (
        "at_hash does not match the access token"
    )
    assert "at_hash missing" in rejected(mint(drop=("at_hash",)), signing_key, policy)
    # Without an access token (e.g. an ID token checked on its own) at_hash is not required.
    verify_id_token(mint(drop=("at_hash",)), signing_key, policy=policy, now=NOW)


def test_nonce_must_match_when_one_was_sent(
    mint: TokenFactory, signing_key: RSAKey, policy: IdTokenPolicy
) -> None:
    from grantkeeper.errors import NonceMismatch

    for token in (mint(nonce="other"), mint()):
        with pytest.raises(NonceMismatch) as caught:
            verify_id_token(token, signing_key, policy=policy, now=NOW, nonce="mine")
        assert caught.value.code == "nonce_mismatch"
        assert caught.value.status == 400  # OIDC Core §3.1.3.7: not this session's sign-in
        assert "nonce" in caught.value.reason
        assert "mine" not in str(caught.value.to_problem())


def test_policy_cannot_be_built_without_an_audience() -> None:
    with pytest.raises(ValueError, match="audience"):
        IdTokenPolicy(issuers=frozenset({"x"}), audience="")
