"""X-Hub-Signature-256: HMAC-SHA256 of the raw request body with the Meta app secret.

Always computed over the exact bytes received: re-serialising parsed JSON would not
reproduce Meta's bytes (escaped unicode), so the check must run before any parsing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Optional

HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for ``body``."""
    return PREFIX + hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header_value: Optional[str], app_secret: str) -> bool:
    """Constant-time check of a header value against ``body``."""
    if not header_value or not header_value.startswith(PREFIX) or not app_secret:
        return False
    # Bytes, not str: compare_digest rejects non-ASCII strings with a TypeError, and anyone
    # can send such a header.
    expected = sign(body, app_secret).encode("ascii")
    return hmac.compare_digest(expected, header_value.strip().encode("utf-8", "replace"))
