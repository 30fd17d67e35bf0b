"""Pseudonym keys and the contact cipher: environment first, else a 0600 key file."""

import pytest
from cryptography.fernet import InvalidToken

from clinic.privacy import ContactCipher, contact_key, load_pseudonym_key


def test_pseudonym_key_is_created_once_and_reused(tmp_path):
    path = tmp_path / "var" / "pseudonym.key"
    first = load_pseudonym_key({}, path)
    assert first == load_pseudonym_key({}, path) and len(first) == 64
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert load_pseudonym_key({"CLINIC_PSEUDONYM_KEY": "from-env"}, path) == b"from-env"


def test_contact_keys_are_stable_per_channel_and_hide_the_number():
    key = b"secret"
    a = contact_key("15550001111", "whatsapp", key)
    assert a == contact_key("15550001111", "whatsapp", key)
    assert a != contact_key("15550001111", "rest", key) != contact_key("15550001111", "whatsapp", b"other")
    assert "15550001111" not in a and len(a) == 64
    with pytest.raises(ValueError):
        contact_key("", "whatsapp", key)


def test_cipher_key_file_and_round_trip(tmp_path):
    path = tmp_path / "encryption.key"
    cipher = ContactCipher.from_environment({}, path)
    token = cipher.encrypt("15550001111")
    assert "15550001111" not in token
    assert ContactCipher.from_environment({}, path).decrypt(token) == "15550001111"
    assert oct(path.stat().st_mode)[-3:] == "600"
    other = ContactCipher.from_environment({"CLINIC_ENCRYPTION_KEY": "kO8ZC5fbQ1YJtC0yGM2Fv3Sk7dxd8xAZ9lVLJ4k7B3I="}, path)
    with pytest.raises(InvalidToken):
        other.decrypt(token)  # a different key cannot read it
