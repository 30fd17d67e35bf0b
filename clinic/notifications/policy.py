"""Whether a notification job may go out now (used by the reminder dispatcher and the action).

Expiry is checked by the dispatcher before this. Transactional notices are sent whatever the
reminders consent (see model.TRANSACTIONAL and docs/notifications.md); follow-ups and
survey requests are not sent to a contact who opted out.
"""

from __future__ import annotations

from typing import Optional

from clinic.notifications.model import TRANSACTIONAL, type_of_kind


def notification_skip_reason(kind: str, contact_key: str, consent) -> Optional[str]:
    if type_of_kind(kind) in TRANSACTIONAL:
        return None
    return None if consent.reminders_allowed(contact_key) else "opted_out"
