"""WhatsApp Flows encryption (whatsapp/flows_crypto.py) against the reference algorithm.

``_pywa_decrypt`` / ``_pywa_encrypt`` are david-lev/pywa's ``default_flow_request_decryptor``
and ``default_flow_response_encryptor`` (pywa/utils.py, MIT; taken by pywa from Meta's
documented Django example), copied here so the test does not depend on pywa: our
endpoint must read what Meta's algorithm writes and the reverse.
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.padding import MGF1, OAEP
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from whatsapp.flows_crypto import (
    FlowDecryptError,
    decrypt_request,
    decrypt_response,
    encrypt_request,
    encrypt_response,
    generate_private_key_pem,
    load_private_key,
)


def _pywa_decrypt(encrypted_flow_data_b64, encrypted_aes_key_b64, initial_vector_b64, private_key):
    flow_data = base64.b64decode(encrypted_flow_data_b64)
    iv = base64.b64decode(initial_vector_b64)
    aes_key = private_key.decrypt(
        base64.b64decode(encrypted_aes_key_b64),
        OAEP(mgf=MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    decryptor = Cipher(algorithms.AES(aes_key), modes.GCM(iv, flow_data[-16:])).decryptor()
    decrypted = json.loads((decryptor.update(flow_data[:-16]) + decryptor.finalize()).decode("utf-8"))
    return decrypted, aes_key, iv


def _pywa_encrypt(response, aes_key, iv):
    flipped_iv = bytearray()
    for byte in iv:
        flipped_iv.append(byte ^ 0xFF)
    encryptor = Cipher(algorithms.AES(aes_key), modes.GCM(flipped_iv)).encryptor()
    return base64.b64encode(
        encryptor.update(json.dumps(response).encode("utf-8")) + encryptor.finalize() + encryptor.tag
    ).decode("utf-8")


@pytest.fixture(scope="module")
def keys():
    ours = load_private_key(generate_private_key_pem())
    other = load_private_key(generate_private_key_pem())
    return ours, other


REQUEST = {"version": "3.0", "action": "data_exchange", "screen": "SERVICE",
           "data": {"service": "физиотерапия 理疗"}, "flow_token": "bf1.x.y"}


def test_a_request_sealed_like_meta_opens_with_our_key(keys):
    ours, _ = keys
    body, aes_key, iv = encrypt_request(REQUEST, ours.public_key())
    # The reference reads what our simulator (Meta's side) wrote...
    decrypted, ref_key, ref_iv = _pywa_decrypt(body["encrypted_flow_data"], body["encrypted_aes_key"],
                                               body["initial_vector"], ours)
    assert decrypted == REQUEST and ref_key == aes_key and ref_iv == iv
    # ...and the endpoint reads it too.
    envelope = decrypt_request(body, ours)
    assert envelope.payload == REQUEST and envelope.aes_key == aes_key and envelope.iv == iv


def test_our_answer_is_what_the_reference_writes_and_reads_back(keys):
    ours, _ = keys
    body, aes_key, iv = encrypt_request(REQUEST, ours.public_key())
    answer = {"version": "3.0", "screen": "TIME", "data": {"times": [{"id": "s1", "title": "09:20"}]}}
    sealed = encrypt_response(answer, aes_key, iv)
    # AES-GCM with the same key and nonce is deterministic: byte for byte the reference's.
    assert sealed == _pywa_encrypt(answer, aes_key, iv)
    assert decrypt_response(sealed, aes_key, iv) == answer
    # The IV really is flipped: decrypting with the request's own IV fails.
    with pytest.raises(FlowDecryptError):
        decrypt_response(sealed, aes_key, bytes(16) if iv != bytes(16) else b"\x01" * 16)


def test_a_request_for_another_key_does_not_decrypt(keys):
    ours, other = keys
    body, _, _ = encrypt_request(REQUEST, other.public_key())
    with pytest.raises(FlowDecryptError):
        decrypt_request(body, ours)


def test_damaged_data_or_missing_fields_do_not_decrypt(keys):
    ours, _ = keys
    body, _, _ = encrypt_request(REQUEST, ours.public_key())
    data = bytearray(base64.b64decode(body["encrypted_flow_data"]))
    data[0] ^= 1
    with pytest.raises(FlowDecryptError):
        decrypt_request({**body, "encrypted_flow_data": base64.b64encode(bytes(data)).decode()}, ours)
    with pytest.raises(FlowDecryptError):
        decrypt_request({k: v for k, v in body.items() if k != "initial_vector"}, ours)
    with pytest.raises(FlowDecryptError):
        decrypt_request({**body, "encrypted_aes_key": "not base64!"}, ours)
