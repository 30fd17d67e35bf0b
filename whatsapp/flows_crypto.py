"""WhatsApp Flows data-exchange encryption, exactly as Meta specifies (and pywa implements).

Meta posts ``{"encrypted_flow_data", "encrypted_aes_key", "initial_vector"}`` (base64) to the
business's endpoint. The AES-128 key is wrapped with the business's RSA public key
(RSA-OAEP, SHA-256 for both the hash and MGF1); the data is AES-GCM with the 16-byte tag at
the end. The answer is encrypted with the same key and the IV with every byte flipped
(XOR 0xFF), and returned as base64 of ciphertext + tag, as plain text.

``encrypt_request`` / ``decrypt_response`` are Meta's side of the same exchange: the
simulator uses them, and tests check a round trip. Nothing here knows the project.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "FlowDecryptError",
    "FlowRequestEnvelope",
    "decrypt_request",
    "decrypt_response",
    "encrypt_request",
    "encrypt_response",
    "generate_private_key_pem",
    "load_private_key",
    "load_public_key",
    "public_key_pem",
]

TAG_BYTES = 16
AES_KEY_BYTES = 16  # Meta's keys are AES-128
IV_BYTES = 16  # Meta sends a 16-byte initial vector


class FlowDecryptError(ValueError):
    """The request cannot be decrypted: the endpoint answers HTTP 421, so WhatsApp
    re-downloads the public key and tries again. Never names the content."""


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=None)


def load_private_key(pem: bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=password)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the Flows private key must be an RSA key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the Flows public key must be an RSA key")
    return key


def generate_private_key_pem(bits: int = 2048) -> bytes:
    """A new RSA private key (PKCS#8 PEM, unencrypted): for development and tests."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(private_key: rsa.RSAPrivateKey) -> bytes:
    """The public half, as Meta wants it uploaded (SubjectPublicKeyInfo PEM)."""
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class FlowRequestEnvelope:
    """The decrypted request and what its answer must be encrypted with."""

    payload: Dict[str, Any]
    aes_key: bytes
    iv: bytes


def _b64(body: Mapping[str, Any], name: str) -> bytes:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise FlowDecryptError(f"{name} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise FlowDecryptError(f"{name} is not base64") from error


def decrypt_request(body: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> FlowRequestEnvelope:
    """Meta's encrypted request body → the JSON object inside; ``FlowDecryptError`` (421)
    for anything that does not decrypt with our key."""
    data = _b64(body, "encrypted_flow_data")
    wrapped = _b64(body, "encrypted_aes_key")
    iv = _b64(body, "initial_vector")
    try:
        aes_key = private_key.decrypt(wrapped, _oaep())
    except ValueError as error:  # a key that is not ours, or a damaged one
        raise FlowDecryptError("the AES key does not decrypt with our private key") from error
    if len(aes_key) not in (16, 24, 32) or len(data) <= TAG_BYTES:
        raise FlowDecryptError("the AES key or the data has the wrong size")
    try:
        clear = AESGCM(aes_key).decrypt(iv, data, None)  # the tag is the last 16 bytes
    except (InvalidTag, ValueError) as error:
        raise FlowDecryptError("the data does not decrypt (wrong key or damaged)") from error
    try:
        payload = json.loads(clear.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise FlowDecryptError("the decrypted data is not JSON") from error
    if not isinstance(payload, dict):
        raise FlowDecryptError("the decrypted data is not a JSON object")
    return FlowRequestEnvelope(payload=payload, aes_key=aes_key, iv=iv)


def flipped(iv: bytes) -> bytes:
    return bytes(byte ^ 0xFF for byte in iv)


def encrypt_response(response: Mapping[str, Any], aes_key: bytes, iv: bytes) -> str:
    """The answer's body: base64(AES-GCM(json, key, flipped IV) + tag), plain text."""
    clear = json.dumps(response, ensure_ascii=False).encode("utf-8")
    return base64.b64encode(AESGCM(aes_key).encrypt(flipped(iv), clear, None)).decode("ascii")


# Meta's side ----------------------------------------------------------------------------------


def encrypt_request(payload: Mapping[str, Any], public_key: rsa.RSAPublicKey) -> Tuple[Dict[str, str], bytes, bytes]:
    """What WhatsApp posts to a data endpoint, with the key and IV to read the answer."""
    aes_key = os.urandom(AES_KEY_BYTES)
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(aes_key).encrypt(iv, json.dumps(payload).encode("utf-8"), None)
    body = {
        "encrypted_flow_data": base64.b64encode(sealed).decode("ascii"),
        "encrypted_aes_key": base64.b64encode(public_key.encrypt(aes_key, _oaep())).decode("ascii"),
        "initial_vector": base64.b64encode(iv).decode("ascii"),
    }
    return body, aes_key, iv


def decrypt_response(text: str, aes_key: bytes, iv: bytes) -> Dict[str, Any]:
    """The endpoint's base64 answer → its JSON object (``FlowDecryptError`` when it is not)."""
    try:
        clear = AESGCM(aes_key).decrypt(flipped(iv), base64.b64decode(text.strip(), validate=True), None)
        answer = json.loads(clear.decode("utf-8"))
    except (InvalidTag, binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise FlowDecryptError("the endpoint's answer does not decrypt") from error
    if not isinstance(answer, dict):
        raise FlowDecryptError("the endpoint's answer is not a JSON object")
    return answer
