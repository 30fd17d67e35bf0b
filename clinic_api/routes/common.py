"""Shared pieces of the routers: error responses for OpenAPI, time helpers."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from clinic_api.schemas import Problem

# Every endpoint documents its refusals.
ERRORS = {401: {"model": Problem}, 403: {"model": Problem}}


def aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
