"""The booking Flow's one setting on the assistant's side: the id Meta gave the published
Flow (WHATSAPP_BOOKING_FLOW_ID). Unset: the Flow is not offered and booking is in chat only."""

from __future__ import annotations

import os
from typing import Mapping, Optional

FLOW_ID_ENV = "WHATSAPP_BOOKING_FLOW_ID"


def booking_flow_id(environ: Optional[Mapping[str, str]] = None) -> str:
    environ = os.environ if environ is None else environ
    return (environ.get(FLOW_ID_ENV) or "").strip()
