"""What Rasa sends the action server with a custom action call: the session, without what no
action reads of its older messages (issue 15).

Why: Rasa 3.6 sends the whole session's tracker (``EventVerbosity.ALL``) with every call to
the action server — every FAQ check, form validation and form question. Most of its bytes are
the patient's earlier messages' NLU output (the intent ranking, each entity's extractor
details, the response selector's ranking and answer texts) and the assistant's earlier
messages' buttons and lists: 74 KB after 10 turns and ~7 KB more per turn, serialised by Rasa
and parsed by the action server on every call, so a turn calling actions cost more the longer
the conversation (docs/measurements.md, "Lean turns").

The contract (the decision this module makes; ``tests/test_lean_action_calls.py`` holds the
actions to it): an action reads, of the events *before the latest user message*, only

- of a user message: ``event``, ``timestamp``, ``text``, ``input_channel``, ``message_id``,
  ``metadata``, and of its ``parse_data`` the intent's ``name`` and ``confidence``, each
  entity's ``entity``, ``value``, ``role`` and ``group``, and the response selector's chosen
  ``intent_response_key`` (``actions/conversation.intent_of``);
- of an assistant message: ``event``, ``timestamp``, ``text`` and ``metadata``;
- every other event (actions, slots, loops, session starts...) whole: they are small;
- and of every one of them, the ``metadata`` without the model's and the assistant's ids.

The latest user message and everything after it are sent whole, and so are ``latest_message``,
``slots`` and ``active_loop`` (rasa_sdk's ``Tracker`` reads the latest message, entities and
slots from those fields, not from the events). An action that needs more of an older message
must say so here (and the test's list of readers of ``tracker.events``) — the place to decide it.

Installed by ``addons`` with the other lean-turn patches; ``LEAN_TURNS=0`` sends what Rasa sends.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

_USER_FIELDS = ("event", "timestamp", "text", "input_channel", "message_id", "metadata")
_BOT_FIELDS = ("event", "timestamp", "text", "metadata")
_ENTITY_FIELDS = ("entity", "value", "role", "group")
# Rasa stamps every event's metadata with the model's id and the assistant's id (~90 bytes,
# a tenth of a session's bytes); the latest message keeps them.
_MODEL_STAMP = frozenset({"model_id", "assistant_id"})
_ORIGINALS: Dict[str, Any] = {}


def _slim_parse_data(parse: Dict[str, Any]) -> Dict[str, Any]:
    slim: Dict[str, Any] = {}
    intent = parse.get("intent")
    if isinstance(intent, dict):
        slim["intent"] = {key: intent[key] for key in ("name", "confidence") if key in intent}
    entities = parse.get("entities")
    if isinstance(entities, list):
        slim["entities"] = [{key: entity[key] for key in _ENTITY_FIELDS if key in entity}
                            for entity in entities if isinstance(entity, dict)]
    selector = parse.get("response_selector")
    if isinstance(selector, dict):
        chosen: Dict[str, Any] = {}
        for name, value in selector.items():
            response = value.get("response") if isinstance(value, dict) else None
            if isinstance(response, dict) and "intent_response_key" in response:
                chosen[name] = {"response": {"intent_response_key": response["intent_response_key"]}}
        if chosen:
            slim["response_selector"] = chosen
    return slim


def _without_model_stamp(event: Dict[str, Any]) -> Dict[str, Any]:
    metadata = event.get("metadata")
    if not isinstance(metadata, dict) or not _MODEL_STAMP & metadata.keys():
        return event
    rest = {key: value for key, value in metadata.items() if key not in _MODEL_STAMP}
    slim = {key: value for key, value in event.items() if key != "metadata"}
    if rest:
        slim["metadata"] = rest
    return slim


def _slim(event: Dict[str, Any]) -> Dict[str, Any]:
    kind = event.get("event")
    if kind == "user":
        slim = {key: event[key] for key in _USER_FIELDS if key in event}
        parse = event.get("parse_data")
        if isinstance(parse, dict):
            slim["parse_data"] = _slim_parse_data(parse)
        return _without_model_stamp(slim)
    if kind == "bot":
        return _without_model_stamp({key: event[key] for key in _BOT_FIELDS if key in event})
    return _without_model_stamp(event)


def slim_events(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """``events`` with the messages before the latest user message reduced to the contract
    above; the latest user message and what follows it unchanged."""
    latest: Optional[int] = None
    for position in range(len(events) - 1, -1, -1):
        if events[position].get("event") == "user":
            latest = position
            break
    if latest is None:
        return events
    return [_slim(event) for event in events[:latest]] + events[latest:]


class _SlimmedSoFar:
    """The slimmed dicts of a tracker's first events, kept on the tracker: they do not change
    once a later user message exists, and the tracker store hands the same tracker to the
    next turn (addons/tracker_cache.py), so each older event is turned into a dict once."""

    __slots__ = ("events", "first", "last", "dicts")

    def __init__(self, events) -> None:
        self.events, self.first, self.last, self.dicts = events, None, None, []

    def valid_for(self, events) -> bool:
        count = len(self.dicts)
        return (events is self.events and len(events) >= count and
                (count == 0 or (events[0] is self.first and events[count - 1] is self.last)))


_KEPT = "_lean_slimmed_events"


def session_events(tracker) -> List[Dict[str, Any]]:
    """``slim_events`` of the tracker's events as dicts (Rasa's ``EventVerbosity.ALL``),
    turning only the events not seen before into dicts."""
    events = tracker.events
    kept: Optional[_SlimmedSoFar] = tracker.__dict__.get(_KEPT)
    if kept is None or not kept.valid_for(events):
        kept = _SlimmedSoFar(events)
        tracker.__dict__[_KEPT] = kept
    latest: Optional[int] = None
    for position in range(len(events) - 1, len(kept.dicts) - 1, -1):
        if events[position].type_name == "user":
            latest = position
            break
    if latest is None:
        # None at or after the kept ones (which end right before a user message, when there
        # are any): a session without a user message is sent as it is.
        return [event.as_dict() for event in events]
    for position in range(len(kept.dicts), latest):
        kept.dicts.append(_slim(events[position].as_dict()))
    if kept.dicts:
        kept.first, kept.last = events[0], events[len(kept.dicts) - 1]
    return kept.dicts[:latest] + [events[position].as_dict() for position in range(latest, len(events))]


def _with_slim_tracker(original):
    def _action_call_format(self, tracker, domain):
        import rasa
        from rasa.shared.core.trackers import EventVerbosity

        # Rasa's own method (rasa/core/actions/action.py, 3.6) with the session's events
        # from `session_events` instead of every event turned into a dict on every call.
        state = tracker.current_state(EventVerbosity.NONE)
        state["events"] = session_events(tracker)
        call = {"next_action": self._name, "sender_id": tracker.sender_id, "tracker": state,
                "version": rasa.__version__}
        if not self._is_selective_domain_enabled() or domain.does_custom_action_explicitly_need_domain(self.name()):
            call["domain"] = domain.as_dict()
        return call

    _action_call_format.__wrapped__ = original  # type: ignore[attr-defined]
    return _action_call_format


def apply() -> bool:
    """Install (idempotent); False where Rasa's action code is absent (the action server)."""
    try:
        from rasa.core.actions.action import RemoteAction
    except ImportError:
        return False
    if "RemoteAction._action_call_format" not in _ORIGINALS:
        _ORIGINALS["RemoteAction._action_call_format"] = RemoteAction._action_call_format
        RemoteAction._action_call_format = _with_slim_tracker(RemoteAction._action_call_format)
    return True


def remove() -> None:
    """Rasa's own call format again (tests)."""
    from rasa.core.actions.action import RemoteAction

    original = _ORIGINALS.pop("RemoteAction._action_call_format", None)
    if original is not None:
        RemoteAction._action_call_format = original
