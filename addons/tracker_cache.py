"""Rasa's SQL tracker store without re-reading the whole conversation every turn (issue 15).

Why: ``SQLTrackerStore.retrieve`` loads every event of the conversation's session as ORM
rows, decodes each one's JSON and replays them all into a new tracker, on every message.
At turn 181-200 of one conversation that was ~35 % of Rasa's CPU per turn, growing with
the conversation (docs/measurements.md, "Lean turns (issue 15)").

What changes: after ``save``, the tracker just saved is kept in memory (per conversation,
the most recent ``MAX_TRACKERS``) with the number and the highest id of the
conversation's rows. The next ``retrieve`` asks the database for those two figures only (an
indexed query); when they are unchanged and the kept tracker was not changed since it was
saved, that tracker is handed over (and forgotten: whoever retrieves it owns it, as with a
fresh one). Anything else (another process or the API wrote or deleted rows, a session
started in that tracker, an error before saving) reads the database exactly as Rasa does.
A tracker in which a new session started is not kept, because Rasa's reader returns only
the latest session's events.

tests/test_tracker_cache.py: real turns through an Agent on SQLite, the handed-over tracker
equals the one Rasa reads from the database after every turn. ``LEAN_TURNS=0`` turns it off.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Dict, Optional, Text

from addons.lean_turns import enabled  # one LEAN_TURNS switch for both patches

logger = logging.getLogger(__name__)

MAX_TRACKERS = 1000
_ORIGINALS: Dict[str, Any] = {}


class _Kept:
    # `domain`: the store's domain when the tracker was saved. A model reload gives the store
    # a new one (Rasa then rebuilds trackers with its slots): a kept tracker is used only
    # with the domain it was built with.
    __slots__ = ("tracker", "rows", "max_id", "length", "last", "domain")

    def __init__(self, tracker, rows: int, max_id: Optional[int], domain: Any):
        self.tracker, self.rows, self.max_id, self.domain = tracker, rows, max_id, domain
        self.length = len(tracker.events)
        self.last = tracker.events[-1] if tracker.events else None

    def unchanged(self) -> bool:
        events = self.tracker.events
        return len(events) == self.length and (events[-1] if events else None) is self.last


class _Trackers:
    def __init__(self, size: int = MAX_TRACKERS):
        self.size = size
        self.kept: "collections.OrderedDict[tuple, _Kept]" = collections.OrderedDict()
        self.hits = self.misses = 0

    def clear(self) -> None:
        self.kept.clear()
        self.hits = self.misses = 0

    def put(self, key: tuple, kept: _Kept) -> None:
        self.kept[key] = kept
        self.kept.move_to_end(key)
        while len(self.kept) > self.size:
            self.kept.popitem(last=False)


TRACKERS = _Trackers()


def _row_figures(store, session, sender_id: Text):
    import sqlalchemy as sa

    event = store.SQLEvent
    rows, max_id = session.query(sa.func.count(event.id), sa.func.max(event.id)).filter(
        event.sender_id == sender_id).one()
    return rows, max_id


def _new_session_inside(tracker) -> bool:
    from rasa.shared.core.events import SessionStarted

    return any(isinstance(e, SessionStarted) for i, e in enumerate(tracker.events) if i > 0)


async def retrieve(self, sender_id: Text):
    key = (id(self), sender_id)
    kept = TRACKERS.kept.pop(key, None)
    if (kept is not None and enabled() and self.domain is not None and kept.domain is self.domain
            and kept.unchanged()):
        with self.session_scope() as session:
            if _row_figures(self, session, sender_id) == (kept.rows, kept.max_id):
                TRACKERS.hits += 1
                return kept.tracker
    TRACKERS.misses += 1
    return await _ORIGINALS["retrieve"](self, sender_id)


async def save(self, tracker) -> None:
    await _ORIGINALS["save"](self, tracker)
    key = (id(self), tracker.sender_id)
    TRACKERS.kept.pop(key, None)
    if not enabled() or not tracker.events or _new_session_inside(tracker):
        return
    with self.session_scope() as session:
        rows, max_id = _row_figures(self, session, tracker.sender_id)
    TRACKERS.put(key, _Kept(tracker, rows, max_id, self.domain))


def apply() -> bool:
    """Install the patch on Rasa's SQLTrackerStore (idempotent)."""
    try:
        from rasa.core.tracker_store import SQLTrackerStore
    except ImportError:  # the action server's process: nothing to patch
        return False
    if "retrieve" in _ORIGINALS:
        return True
    _ORIGINALS["retrieve"] = SQLTrackerStore.retrieve
    _ORIGINALS["save"] = SQLTrackerStore.save
    SQLTrackerStore.retrieve = retrieve
    SQLTrackerStore.save = save
    return True
