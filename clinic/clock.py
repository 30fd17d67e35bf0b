"""The one clock of the project: the current time, timezone-aware, in UTC.

Every module that stamps a row or compares with "now" takes it from here (or is given a
``clock`` parameter defaulting to it), so tests can replace one function and no naive
``datetime.utcnow()`` creeps back in."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
