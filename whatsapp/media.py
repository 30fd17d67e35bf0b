"""Inbound media: Meta's per-type size limits, the download's result and its refusals.

A patient's photo, voice note, video, document or sticker arrives in the webhook as an id;
``GraphClient.fetch_media`` (client.py) turns it into bytes with the two Graph calls Meta
documents (reference §2.2 "Media handling"): ``GET /<media_id>`` gives a short-lived URL
("expires after 5 minutes"), its MIME type, sha256 and file size; ``GET <url>`` with the
bearer token gives the bytes. What comes back is checked against that metadata (size and
sha256, which Meta writes as hex or base64) and against a maximum per type, before anybody
stores it.

Protocol code: it imports nothing of the project.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Mapping, Optional

__all__ = ["DEFAULT_MAX_BYTES", "MEDIA_KINDS", "MediaDownload", "MediaRefused", "digest_matches",
           "max_bytes_for"]

MB = 1024 * 1024
# Meta's documented limits per type (reference §3 "Media": image 5 MB, audio and video
# 16 MB, documents 100 MB, stickers 500 KB animated / 100 KB static).
DEFAULT_MAX_BYTES: Mapping[str, int] = {
    "image": 5 * MB,
    "audio": 16 * MB,
    "video": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
MEDIA_KINDS = frozenset(DEFAULT_MAX_BYTES)

# MediaRefused.reason: terminal outcomes (no retry makes them succeed).
TOO_LARGE = "too_large"            # over the maximum for its type (metadata or bytes)
SIZE_MISMATCH = "size_mismatch"    # the bytes are not as long as file_size said
SHA256_MISMATCH = "sha256_mismatch"
EXPIRED = "expired"                # the download URL answered 404/410 twice (a fresh URL too)
DOWNLOAD_REFUSED = "download_refused"  # the download URL answered another 4xx (401, 403…) twice
NOT_FOUND = "not_found"            # GET /<media_id> refused (unknown or expired id: 7 days)
BAD_METADATA = "bad_metadata"      # no url in the media object


class MediaRefused(Exception):
    """The media cannot be had, for good: ``reason`` says why (one of the constants above)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class MediaDownload:
    """The bytes and what Meta said of them; ``sha256`` as lowercase hex of ``content``."""

    content: bytes
    mime_type: str
    sha256: str
    file_size: int
    attempts: int = 1

    def __repr__(self) -> str:  # never print the content (a patient's photo)
        return f"MediaDownload(mime_type={self.mime_type!r}, file_size={self.file_size})"


def max_bytes_for(kind: str, limits: Optional[Mapping[str, int]] = None) -> int:
    table = DEFAULT_MAX_BYTES if limits is None else limits
    return table.get(kind, DEFAULT_MAX_BYTES.get(kind, 0))


def digest_matches(expected: str, content: bytes) -> bool:
    """Whether ``expected`` (hex or base64, as Meta writes it) is the sha256 of ``content``."""
    digest = hashlib.sha256(content).digest()
    text = expected.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text) == digest
        except ValueError:
            pass
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False) == digest \
            or base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == digest
    except (binascii.Error, ValueError):
        return False
