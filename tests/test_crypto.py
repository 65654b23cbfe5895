"""The key ring and its envelopes (Vault barrier / Nango encryption test cases)."""

from __future__ import annotations

import base64
import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from grantkeeper.crypto import KEY_FILE_NAME, KeyRing, envelope_key_id, generate_key
from grantkeeper.errors import ConfigurationError, TokenDecryptionError
from grantkeeper.settings import Settings

CONTEXT = ("sub-1", "client-a", "refresh_token")
SECRET = "1//0gSECRET-refresh-token"


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.from_strings([generate_key("k1")])


def _flip(envelope: str, index: int) -> str:
    """Flip one bit of the raw nonce+ciphertext+tag at ``index`` and re-encode."""
    version, kid, body = envelope.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[index] ^= 0x01
    return f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("plaintext", ["", "zażółć gęślą jaźń 🔑", "x" * 100_000, SECRET])
def test_round_trip(ring: KeyRing, plaintext: str) -> None:
    envelope = ring.encrypt(plaintext, CONTEXT)
    assert ring.decrypt(envelope, CONTEXT) == plaintext


def test_envelope_format_names_the_key_and_hides_the_plaintext(ring: KeyRing) -> None:
    envelope = ring.encrypt(SECRET, CONTEXT)
    assert re.fullmatch(r"v1\.k1\.[A-Za-z0-9_-]+", envelope)
    assert envelope_key_id(envelope) == "k1"
    assert SECRET not in envelope
    # 12-byte nonce + 16-byte tag around the ciphertext.
    body = envelope.split(".")[2]
    assert len(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) == 12 + len(SECRET) + 16


def test_same_plaintext_twice_gives_different_ciphertexts(ring: KeyRing) -> None:
    envelopes = {ring.encrypt(SECRET, CONTEXT) for _ in range(50)}
    assert len(envelopes) == 50
    nonces = {e.split(".")[2][:16] for e in envelopes}
    assert len(nonces) == 50


@pytest.mark.parametrize("index", [0, 11, 12, 12 + len(SECRET) - 1, -16, -1])
def test_any_flipped_bit_fails(ring: KeyRing, index: int) -> None:
    """Nonce (0, 11), ciphertext, tag (-16, -1)."""
    tampered = _flip(ring.encrypt(SECRET, CONTEXT), index)
    with pytest.raises(TokenDecryptionError):
        ring.decrypt(tampered, CONTEXT)


@pytest.mark.parametrize(
    "other",
    [
        ("sub-2", "client-a", "refresh_token"),
        ("sub-1", "client-b", "refresh_token"),
        ("sub-1", "client-a", "access_token"),
        # Joining without a separator would make these equal to CONTEXT; JSON keeps them apart.
        ("sub-1client-a", "", "refresh_token"),
    ],
)
def test_ciphertext_moved_to_another_grant_or_field_fails(
    ring: KeyRing, other: tuple[str, str, str]
) -> None:
    envelope = ring.encrypt(SECRET, CONTEXT)
    with pytest.raises(TokenDecryptionError) as caught:
        ring.decrypt(envelope, other)
    assert SECRET not in str(caught.value)


def test_relabelled_key_id_fails() -> None:
    """The key id is authenticated too: copying a ciphertext under another kid label fails."""
    ring = KeyRing.from_strings([generate_key("new"), generate_key("old")])
    envelope = ring.encrypt(SECRET, CONTEXT)
    relabelled = envelope.replace("v1.new.", "v1.old.")
    with pytest.raises(TokenDecryptionError):
        ring.decrypt(relabelled, CONTEXT)


@pytest.mark.parametrize(
    "junk", ["", "plaintext", "v2.k1.AAAA", "v1.k1.!!!!", "v1.k1.AAAA", "v1..A"]
)
def test_malformed_envelopes_are_typed_errors(ring: KeyRing, junk: str) -> None:
    with pytest.raises(TokenDecryptionError):
        ring.decrypt(junk, CONTEXT)


def test_rotation_first_key_encrypts_all_decrypt() -> None:
    old_spec, new_spec = generate_key("old"), generate_key("new")
    old_ring = KeyRing.from_strings([old_spec])
    written_before = old_ring.encrypt(SECRET, CONTEXT)

    rotated = KeyRing.from_strings([new_spec, old_spec])
    assert rotated.primary_kid == "new"
    assert rotated.kids == ("new", "old")
    assert rotated.decrypt(written_before, CONTEXT) == SECRET
    assert not rotated.is_primary(written_before)
    written_after = rotated.encrypt(SECRET, CONTEXT)
    assert envelope_key_id(written_after) == "new"
    assert rotated.is_primary(written_after)

    retired = KeyRing.from_strings([new_spec])
    with pytest.raises(TokenDecryptionError, match="'old'"):
        retired.decrypt(written_before, CONTEXT)


def test_same_kid_with_another_key_fails() -> None:
    envelope = KeyRing.from_strings([generate_key("k1")]).encrypt(SECRET, CONTEXT)
    with pytest.raises(TokenDecryptionError):
        KeyRing.from_strings([generate_key("k1")]).decrypt(envelope, CONTEXT)


def test_generate_key_format() -> None:
    spec = generate_key()
    kid, _, material = spec.partition(":")
    assert re.fullmatch(r"k[0-9a-f]{8}", kid)
    assert len(base64.urlsafe_b64decode(material + "=" * (-len(material) % 4))) == 32
    assert generate_key() != spec


def _short_key() -> str:
    return "k2:" + base64.urlsafe_b64encode(b"\x01" * 16).decode()


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nokid", "#2 is not '<kid>:<base64url key>'"),
        ("bad kid!:" + "A" * 43, "#2 is not '<kid>:<base64url key>'"),
        ("k2:***not-base64***", "#2 (kid 'k2') is not valid base64url"),
        (_short_key(), "#2 (kid 'k2') decodes to 16 bytes"),
    ],
)
def test_malformed_keys_name_the_entry_but_never_print_it(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        KeyRing.from_strings([generate_key("k1"), spec])
    message = str(caught.value)
    assert fragment in message
    material = spec.partition(":")[2]
    assert not material or material not in message


def test_duplicate_kid_and_empty_ring_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        KeyRing.from_strings([generate_key("same"), generate_key("same")])
    with pytest.raises(ConfigurationError, match="empty"):
        KeyRing.from_strings([])


def test_repr_shows_key_ids_only() -> None:
    spec = generate_key("k1")
    assert repr(KeyRing.from_strings([spec])) == "KeyRing(primary='k1', kids=['k1'])"


def test_configured_keys_win_over_the_key_file(tmp_path: Path) -> None:
    spec = generate_key("configured")
    ring = KeyRing.load_or_create(Settings(data_dir=tmp_path, encryption_keys=[spec]))
    assert ring.primary_kid == "configured"
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_embedded_default_creates_a_private_key_file_once_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, encryption_keys=[])
    with caplog.at_level(logging.WARNING, logger="grantkeeper.crypto"):
        first = KeyRing.load_or_create(settings)
    key_file = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert "production" in caplog.text
    spec = key_file.read_text().strip()
    assert spec.partition(":")[2] not in caplog.text
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE_NAME]  # no temporary left over

    envelope = first.encrypt(SECRET, CONTEXT)
    second = KeyRing.load_or_create(settings)
    assert second.decrypt(envelope, CONTEXT) == SECRET


def test_key_file_is_never_readable_by_others_even_with_a_lax_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        KeyRing.load_or_create(Settings(data_dir=tmp_path, encryption_keys=[]))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encryption_keys=[])
    rings: list[KeyRing] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        rings.append(KeyRing.load_or_create(settings))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({ring.primary_kid for ring in rings}) == 1
    envelope = rings[0].encrypt(SECRET, CONTEXT)
    assert all(ring.decrypt(envelope, CONTEXT) == SECRET for ring in rings)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encryption_keys=[])
    KeyRing.load_or_create(settings)
    (tmp_path / KEY_FILE_NAME).chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        KeyRing.load_or_create(settings)


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text("garbage\n")
    key_file.chmod(0o600)
    with pytest.raises(ConfigurationError, match="malformed"):
        KeyRing.load_or_create(Settings(data_dir=tmp_path, encryption_keys=[]))


def test_no_key_file_fallback_for_a_shared_database(tmp_path: Path) -> None:
    from grantkeeper.settings import Settings

    # The settings refuse the combination themselves (before any store or server starts).
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_ENCRYPTION_KEYS"):
        Settings(
            database_url="postgresql://postgres@127.0.0.1:5432/test",
            data_dir=tmp_path,
            _env_file=None,
        )
    assert not (tmp_path / "encryption.key").exists()


def test_a_key_id_outside_the_ring_format_is_refused_when_generating() -> None:
    with pytest.raises(ConfigurationError, match="1-32 characters"):
        generate_key("no spaces please")
    assert generate_key("kept-2026_12").startswith("kept-2026_12:")


def test_a_ring_built_from_raw_keys_checks_their_length() -> None:
    with pytest.raises(ConfigurationError, match="is not 32 bytes long"):
        KeyRing([("short", b"\x01" * 16)])


def test_settings_changed_in_code_to_a_shared_database_still_get_no_key_file(
    tmp_path: Path,
) -> None:
    from grantkeeper.settings import Settings

    # model_copy skips validation: the key ring checks again before making a key file.
    settings = Settings(data_dir=tmp_path, _env_file=None).model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:5432/test"}
    )
    with pytest.raises(ConfigurationError, match="GRANTKEEPER_ENCRYPTION_KEYS must be set"):
        KeyRing.load_or_create(settings)
    assert not (tmp_path / "encryption.key").exists()
