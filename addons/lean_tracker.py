"""A tracker's applied events and its copies without replaying the whole conversation
(issue 15), for Rasa 3.6.

Why: with the states and the tracker store no longer re-reading the conversation
(addons/lean_turns.py, addons/tracker_cache.py), what still grew with it was Rasa walking
every event of the session several times per turn: ``applied_events()`` (the session check
before every message, the last user message's lookup, the forms' slot checks; 3.1 ms at
1,800 events, several calls a turn) and ``copy()`` (a fresh tracker replaying every event,
made before every action Rasa runs and when a form starts; 1.6 ms each). Measured with
``python -m benchmarks.turn_growth`` (docs/measurements.md, "Lean turns (issue 15)").

What changes, for plain ``DialogueStateTracker`` objects only (the trackers Rasa trains on
are a subclass and keep Rasa's code):

1. ``applied_events()`` is Rasa's own left fold over the events, kept on the tracker with
   the events it has seen: when the tracker only grew since (same event deque, same first
   event, the last seen event still in its place) and no new loop name came, only the new
   events are folded in. Rasa decides whether an earlier loop action counts by the loop
   names of *all* events, so a new loop name, a replaced or shortened deque, or a deque
   that dropped its oldest event (``max_event_history``) folds everything again as Rasa
   does. Callers get a fresh list each time, as from Rasa.
2. ``copy()`` builds the copy from the tracker's state instead of replaying its events:
   the same events, copies of the slots, of the active loop and of the latest action, the
   same latest message and bot utterance events (Rasa's replay assigns those very event
   objects too; fresh empty ones when the tracker holds none). What the patches keep on the
   tracker (this fold, the action calls' slim events) goes to the copy too: Rasa runs every
   action on a copy, so without it each action call would start from nothing. This holds because a tracker's state is, by Rasa's own contract, what
   replaying its events gives ("MUST be re-creatable by processing all the events").

3. A form's validation runs on a temporary tracker Rasa builds by replaying the session
   (``FormAction._temporary_tracker``): here a copy with the same three kinds of events
   added, when the tracker holds the whole session with the domain's slots (else Rasa's).

tests/test_lean_tracker.py: at every event of every test story and of a long
conversation with sessions, restarts, undos and forms, both give what Rasa's code gives,
and a copy changed afterwards leaves its original untouched. ``LEAN_TURNS=0`` turns it off.
"""

from __future__ import annotations

import copy as copy_module
import dataclasses
import itertools
from typing import Any, Callable, Dict, List, Optional

from addons.lean_turns import enabled  # one LEAN_TURNS switch for all the lean-turn patches

_ORIGINALS: Dict[str, Any] = {}
_KEPT = "_lean_applied_events"  # the attribute holding a tracker's fold


class _Fold:
    __slots__ = ("events", "length", "first", "last", "loop_names", "applied")

    def __init__(self, events, loop_names: frozenset, applied: List[Any]) -> None:
        self.events = events  # the deque itself: a replaced deque starts again
        self.loop_names = loop_names
        self.applied = applied
        self.seen()

    def seen(self) -> None:
        events = self.events
        self.length = len(events)
        self.first = events[0] if events else None
        self.last = events[-1] if events else None

    def new_events(self, events) -> Optional[List[Any]]:
        """The events added since, or None when the tracker changed otherwise."""
        if events is not self.events or not self.length or len(events) < self.length:
            return None
        if events[0] is not self.first or events[self.length - 1] is not self.last:
            return None
        return list(itertools.islice(events, self.length, None))


def _fold(tracker, events, loop_names: frozenset, applied: List[Any]) -> None:
    """The body of Rasa's ``applied_events`` loop (rasa/shared/core/trackers.py, 3.6), with
    its list changed in place (a restart or a new session empties it); Rasa's own helpers,
    called through their class."""
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        Restarted,
        SessionStarted,
        UserUtteranceReverted,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker as Rasa

    for event in events:
        if isinstance(event, (Restarted, SessionStarted)):
            applied.clear()
        elif isinstance(event, ActionReverted):
            Rasa._undo_till_previous(ActionExecuted, applied)
        elif isinstance(event, UserUtteranceReverted):
            Rasa._undo_till_previous(UserUttered, applied)
            Rasa._undo_till_previous(ActionExecuted, applied)
        elif (
            isinstance(event, ActionExecuted)
            and event.action_name in loop_names
            and not Rasa._first_loop_execution_or_unhappy_path(tracker, event.action_name, applied)
        ):
            Rasa._undo_till_previous_loop_execution(event.action_name, applied)
        else:
            applied.append(event)


def _loop_names(events) -> frozenset:
    from rasa.shared.core.events import ActiveLoop

    return frozenset(e.name for e in events if isinstance(e, ActiveLoop) and e.name)


def applied_events(self) -> List[Any]:
    from rasa.shared.core.trackers import DialogueStateTracker

    if type(self) is not DialogueStateTracker or not enabled():
        return _ORIGINALS["applied_events"](self)
    events = self.events
    kept: Optional[_Fold] = self.__dict__.get(_KEPT)
    new = kept.new_events(events) if kept is not None else None
    if kept is not None and new is not None and not (_loop_names(new) - kept.loop_names):
        _fold(self, new, kept.loop_names, kept.applied)
        kept.seen()
        return list(kept.applied)
    kept = _Fold(events, _loop_names(events), [])
    _fold(self, events, kept.loop_names, kept.applied)
    self.__dict__[_KEPT] = kept
    return list(kept.applied)


def _is_one_of(event, events) -> bool:
    # From the end: the latest messages are usually a few events back.
    return event is not None and any(e is event for e in reversed(events))


# Functions (original, copy) that hand what a patch keeps on a tracker to its copy: the copy
# has the same events in the same order, so what was worked out for them still holds, and
# Rasa runs every action on a copy (``MessageProcessor._run_action``).
_CARRY_OVER: List[Callable[[Any, Any], None]] = []


def carry_over_to_copies(function: Callable[[Any, Any], None]) -> None:
    if function not in _CARRY_OVER:
        _CARRY_OVER.append(function)


def _carry_fold(original, duplicate) -> None:
    kept: Optional[_Fold] = original.__dict__.get(_KEPT)
    if kept is None or kept.new_events(original.events) is None:
        return
    fold = _Fold(duplicate.events, kept.loop_names, list(kept.applied))
    fold.length, fold.first, fold.last = kept.length, kept.first, kept.last  # what it has folded
    duplicate.__dict__[_KEPT] = fold


def copy(self):
    from rasa.shared.core.trackers import DialogueStateTracker

    if type(self) is not DialogueStateTracker or not enabled() or (
            self._max_event_history is not None and len(self.events) >= self._max_event_history):
        # A full event limit has dropped events the state still reflects: Rasa's copy
        # replays only the events kept, and so does this one (the project sets no limit).
        return _ORIGINALS["copy"](self)
    # What Rasa's copy does first (``travel_back_in_time`` → ``init_copy``): a new tracker
    # with the same id, slots (reset), event limit and rule flag; model and assistant ids
    # are not carried over, as in Rasa.
    new = self.init_copy()
    new.events.extend(self.events)
    # Then the state the replay would leave: the one this tracker holds.
    # Slots as ``init_copy`` copies them (a plain dict by slot name), with their values.
    new.slots = {slot.name: copy_module.copy(slot) for slot in self.slots.values()}
    new._paused = self._paused
    new.followup_action = self.followup_action
    new.latest_action = dict(self.latest_action) if self.latest_action is not None else None
    # Replaying assigns the last user and bot message events themselves; before any (or
    # after a new session) the copy keeps the fresh empty ones its reset made, as in Rasa.
    if _is_one_of(self.latest_message, self.events):
        new.latest_message = self.latest_message
    if _is_one_of(self.latest_bot_utterance, self.events):
        new.latest_bot_utterance = self.latest_bot_utterance
    # A dataclass Rasa changes in place (interrupted, rejected): the copy gets its own.
    new.active_loop = dataclasses.replace(self.active_loop) if self.active_loop is not None else None
    _carry_fold(self, new)
    for carry in _CARRY_OVER:
        carry(self, new)
    return new


def _form_temporary_tracker(self, current_tracker, additional_events, domain):
    """Rasa's ``FormAction._temporary_tracker`` (the tracker a form's validation action is
    sent) as a copy plus the same three kinds of events, instead of a new tracker replaying
    the session: the same state when the tracker holds the whole session (no restart in it,
    no event limit) with the domain's slots, as the tracker store builds it."""
    from rasa.shared.core.constants import REQUESTED_SLOT
    from rasa.shared.core.events import ActionExecuted, SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker

    original = _ORIGINALS["FormAction._temporary_tracker"]
    if (type(current_tracker) is not DialogueStateTracker or not enabled()
            or current_tracker.events.maxlen is not None or current_tracker.is_rule_tracker
            or current_tracker.idx_after_latest_restart() != 0
            or {name: type(slot) for name, slot in current_tracker.slots.items()}
            != {slot.name: type(slot) for slot in domain.slots}):
        return original(self, current_tracker, additional_events, domain)
    temporary = current_tracker.copy()
    for event in [SlotSet(REQUESTED_SLOT, self.get_slot_to_fill(current_tracker)),
                  ActionExecuted(self.name()), *additional_events]:
        temporary.update(event)
    return temporary


def apply() -> bool:
    """Install (idempotent); False where Rasa's tracker is absent (the action server)."""
    try:
        from rasa.shared.core.trackers import DialogueStateTracker
    except ImportError:
        return False
    if "applied_events" not in _ORIGINALS:
        _ORIGINALS["applied_events"] = DialogueStateTracker.applied_events
        _ORIGINALS["copy"] = DialogueStateTracker.copy
        DialogueStateTracker.applied_events = applied_events  # type: ignore[method-assign]
        DialogueStateTracker.copy = copy  # type: ignore[method-assign]
    try:
        from rasa.core.actions.forms import FormAction
    except ImportError:
        return True
    if "FormAction._temporary_tracker" not in _ORIGINALS:
        _ORIGINALS["FormAction._temporary_tracker"] = FormAction._temporary_tracker
        FormAction._temporary_tracker = _form_temporary_tracker  # type: ignore[method-assign]
    return True


def remove() -> None:
    """Rasa's own methods again (tests)."""
    from rasa.shared.core.trackers import DialogueStateTracker

    if "applied_events" in _ORIGINALS:
        DialogueStateTracker.applied_events = _ORIGINALS.pop("applied_events")  # type: ignore[method-assign]
        DialogueStateTracker.copy = _ORIGINALS.pop("copy")  # type: ignore[method-assign]
    if "FormAction._temporary_tracker" in _ORIGINALS:
        from rasa.core.actions.forms import FormAction

        FormAction._temporary_tracker = _ORIGINALS.pop("FormAction._temporary_tracker")  # type: ignore[method-assign]
