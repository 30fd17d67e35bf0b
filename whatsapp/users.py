"""Who a WhatsApp user is: a phone number (wa_id), a business-scoped user id (BSUID), or both.

Since the 2026 username rollout a user who adopts a username may have their phone number
withheld: webhooks then carry only ``user_id`` / ``from_user_id`` (a BSUID such as
``US.13491208655302741918``; a parent BSUID reads ``US.ENT.…``), and a send must name the
user with ``recipient`` instead of ``to``. The two kinds of address never look alike (a
BSUID starts with a two-letter country code and a dot; a phone is digits, maybe a "+"),
so the shape of the stored address is enough to pick the field — as pywa does
(``_helpers.resolve_recipient``).
"""

from __future__ import annotations

import re
from typing import Dict

__all__ = ["BSUID_MAX", "SYSTEM_USER_CHANGED_NUMBER", "SYSTEM_USER_CHANGED_USER_ID", "address_fields", "is_bsuid"]

# Country code, a dot, up to 128 characters (Meta's business-scoped user ids page); the
# optional "ENT." marks a parent BSUID, shared by the businesses of one portfolio.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
BSUID_MAX = 2 + 1 + 4 + 128
SYSTEM_USER_CHANGED_USER_ID = "user_changed_user_id"
SYSTEM_USER_CHANGED_NUMBER = "user_changed_number"


def is_bsuid(value: str) -> bool:
    """Whether ``value`` is a business-scoped user id (or a parent one), not a phone number."""
    return bool(_BSUID.fullmatch(value))


def address_fields(address: str) -> Dict[str, str]:
    """The recipient fields of a send: ``{"recipient": bsuid}`` for a BSUID, else
    ``{"to": address}`` (Meta checks the number itself: error 100 or 131026)."""
    if is_bsuid(address):
        return {"recipient": address}
    return {"to": address}
