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

How (issue 15, session 12): each older event is turned into its slim dict and its JSON once
per conversation (``session_events``, kept on the tracker and shared with its copies), and
the action endpoint's aiohttp session writes the call with ``_dumps``, which splices the kept
JSON into the text ``json.dumps`` would write. Before, every call turned every event of the
session into a dict, slimmed it and serialised it again (~10 ms per call at turn 200).

Installed by ``addons`` with the other lean-turn patches; ``LEAN_TURNS=0`` sends what Rasa sends.
"""

from __future__ import annotations

import json
import uuid
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
    """The slimmed dicts of a conversation's first events (those before a user message: they
    no longer change). Kept on the tracker and shared, the same object, with its copies
    (addons/lean_tracker.py): Rasa sends the action server a copy of the tracker, and the
    tracker store hands the original to the next turn (addons/tracker_cache.py), so each
    older event is turned into a dict once per conversation. Events are only ever appended
    to a tracker, so a tracker holding the same first and the same last kept event holds all
    of them."""

    __slots__ = ("first", "last", "dicts", "texts")

    def __init__(self) -> None:
        self.first, self.last = None, None
        self.dicts: List[Dict[str, Any]] = []
        self.texts: List[str] = []  # each dict as JSON, made once (see `_dumps`)

    def valid_for(self, events) -> bool:
        count = len(self.dicts)
        return len(events) >= count and (count == 0 or (events[0] is self.first and events[count - 1] is self.last))


_KEPT = "_lean_slimmed_events"


def session_events(tracker) -> List[Dict[str, Any]]:
    """``slim_events`` of the tracker's events as dicts (Rasa's ``EventVerbosity.ALL``),
    turning only the events not seen before into dicts."""
    events = tracker.events
    kept: Optional[_SlimmedSoFar] = tracker.__dict__.get(_KEPT)
    if kept is None or not kept.valid_for(events):
        kept = _SlimmedSoFar()
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
        slim = _slim(events[position].as_dict())
        kept.dicts.append(slim)
        kept.texts.append(json.dumps(slim))
    if kept.dicts:
        kept.first, kept.last = events[0], events[len(kept.dicts) - 1]
    session = EncodedEvents(kept.dicts[:latest] + [events[position].as_dict() for position in range(latest, len(events))])
    session.encoded = kept.texts[:latest]
    return session


class EncodedEvents(list):
    """The session's events as dicts (a plain list to anyone reading them), with the JSON
    of the first ``len(encoded)`` of them already made: `_dumps` writes those as they are."""

    encoded: List[str] = []


# Stands for the events while the rest of a call is serialised; a slot value would have to
# hold this exact text to be mistaken for it.
_EVENTS_MARKER = "lean-action-calls-events-" + uuid.uuid4().hex


def _dumps(body: Any) -> str:
    """``json.dumps(body)``, the same text, without serialising again the older events
    whose JSON `session_events` kept: the action server's aiohttp session serialises every
    call with it (at turn 200 the session is ~320 KB of JSON, ~4 ms to write each call)."""
    state = body.get("tracker") if type(body) is dict else None
    events = state.get("events") if isinstance(state, dict) else None
    if not isinstance(events, EncodedEvents):
        return json.dumps(body)
    head = events.encoded
    texts = head + [json.dumps(event) for event in events[len(head):]]
    text = json.dumps({**body, "tracker": {**state, "events": _EVENTS_MARKER}})
    # json.dumps joins a list's items with ", ": the same bytes as serialising it whole.
    return text.replace(json.dumps(_EVENTS_MARKER), "[" + ", ".join(texts) + "]", 1)


def _session(self):
    """Rasa's ``EndpointConfig.session`` (rasa/utils/endpoints.py, 3.6) with `_dumps` as the
    session's JSON writer."""
    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT

    auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"]) if self.basic_auth else None
    return aiohttp.ClientSession(headers=self.headers, auth=auth,
                                 timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                                 json_serialize=_dumps)


def _carry_slimmed(original, duplicate) -> None:
    """A copy (addons/lean_tracker.py) shares its original's slim dicts: what the copy adds
    (its action call) the original has for the next turn."""
    kept: Optional[_SlimmedSoFar] = original.__dict__.get(_KEPT)
    if kept is None:
        kept = original.__dict__[_KEPT] = _SlimmedSoFar()
    duplicate.__dict__[_KEPT] = kept


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
    from addons import lean_tracker

    lean_tracker.carry_over_to_copies(_carry_slimmed)
    if "RemoteAction._action_call_format" not in _ORIGINALS:
        _ORIGINALS["RemoteAction._action_call_format"] = RemoteAction._action_call_format
        RemoteAction._action_call_format = _with_slim_tracker(RemoteAction._action_call_format)
    from rasa.utils.endpoints import EndpointConfig

    if "EndpointConfig.session" not in _ORIGINALS:
        _ORIGINALS["EndpointConfig.session"] = EndpointConfig.session
        EndpointConfig.session = _session  # type: ignore[method-assign]
    return True


def remove() -> None:
    """Rasa's own call format again (tests)."""
    from rasa.core.actions.action import RemoteAction

    original = _ORIGINALS.pop("RemoteAction._action_call_format", None)
    if original is not None:
        RemoteAction._action_call_format = original
    from rasa.utils.endpoints import EndpointConfig

    session = _ORIGINALS.pop("EndpointConfig.session", None)
    if session is not None:
        EndpointConfig.session = session  # type: ignore[method-assign]
