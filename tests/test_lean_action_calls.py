"""The action server gets the session without what no action reads of its older messages
(issue 15; addons/lean_action_calls.py states the contract).

- The trimming: older user and assistant messages reduced to the contract's fields, the
  latest user message and what follows it, and every other event, unchanged.
- The contract holds: every function of actions/ that reads ``tracker.events`` is known here,
  reads only the contract's fields, and answers the same on the trimmed session as on the whole
  one (handoff routing, the misunderstanding count, the document-answer follow-up).
- Through Rasa: a conversation touching those readers gets the same replies with the trimmed
  session as with Rasa's own, and the last action call is a fraction of the size.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import re
import textwrap
from typing import Any, Dict, List

import pytest
from rasa_sdk import Tracker

from actions import conversation, fallback, handoff, knowledge
from addons.lean_action_calls import slim_events
from tests.conftest import PROJECT_ROOT


def user(text: str, intent: str, faq_key: str = "", entities: List[dict] = ()) -> Dict[str, Any]:
    parse: Dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.91},
        "entities": [{"entity": e["entity"], "value": e["value"], "start": 0, "end": 3, "confidence_entity": 0.9,
                      "extractor": "DIETClassifier"} for e in entities],
        "intent_ranking": [{"name": intent, "confidence": 0.91}, {"name": "greet", "confidence": 0.05}],
    }
    if faq_key:
        parse["response_selector"] = {
            "all_retrieval_intents": ["faq"],
            "faq": {"response": {"responses": [{"text": "A long approved answer. " * 20}], "confidence": 0.9,
                                 "intent_response_key": faq_key, "utter_action": f"utter_{faq_key}"},
                    "ranking": [{"intent_response_key": faq_key, "confidence": 0.9}] * 10},
        }
    return {"event": "user", "timestamp": 1.0, "text": text, "parse_data": parse, "input_channel": "whatsapp",
            "message_id": f"m-{text}", "metadata": {"language": "en", **STAMP}}


def bot(text: str, buttons: int = 0) -> Dict[str, Any]:
    return {"event": "bot", "timestamp": 2.0, "text": text, "metadata": {"utter_action": "utter_x"},
            "data": {"buttons": [{"title": f"Option {i}", "payload": f"/choose{{\"n\": {i}}}"} for i in range(buttons)]}}


STAMP = {"model_id": "e3496fcae1b248e0ab7515c53092fdb7", "assistant_id": "clinic-whatsapp-assistant"}


def action(name: str) -> Dict[str, Any]:
    return {"event": "action", "timestamp": 3.0, "name": name, "policy": "RulePolicy", "confidence": 1.0,
            "metadata": dict(STAMP)}


SESSION: List[Dict[str, Any]] = [
    action("action_session_start"), {"event": "session_started", "timestamp": 0.5}, action("action_listen"),
    user("how much is a consultation", "faq", faq_key="faq/prices"), action("action_check_faq_answer"),
    bot("A consultation costs...", buttons=3), action("action_listen"),
    user("asdf qwer", "nlu_fallback"), action("action_default_fallback"), bot("Sorry?"), action("action_listen"),
    user("zxcv", "nlu_fallback"), action("action_answer_from_documents"), bot("I don't know"),
    {"event": "slot", "timestamp": 4.0, "name": "document_answer", "value": "not_found"},
    action("action_listen"),
    user("I want to talk to someone about my bill", "request_human", entities=[{"entity": "team", "value": "billing"}]),
]


def tracker(events: List[Dict[str, Any]]) -> Tracker:
    latest = next(e for e in reversed(events) if e["event"] == "user")
    return Tracker.from_dict({"sender_id": "p", "slots": {}, "latest_message": latest["parse_data"],
                              "events": events, "paused": False, "followup_action": None, "active_loop": {},
                              "latest_action_name": "action_listen"})


def test_older_messages_keep_only_the_contract_and_the_latest_message_is_whole():
    slim = slim_events(copy.deepcopy(SESSION))
    assert len(slim) == len(SESSION)
    assert slim[-1] == SESSION[-1]  # the latest user message, whole
    first_user = slim[3]
    assert first_user["parse_data"] == {
        "intent": {"name": "faq", "confidence": 0.91}, "entities": [],
        "response_selector": {"faq": {"response": {"intent_response_key": "faq/prices"}}}}
    assert first_user["text"] == "how much is a consultation" and first_user["metadata"] == {"language": "en"}
    assert slim[5] == {"event": "bot", "timestamp": 2.0, "text": "A consultation costs...",
                       "metadata": {"utter_action": "utter_x"}}  # no buttons
    others = [(a, b) for a, b in zip(SESSION, slim, strict=True) if a["event"] not in {"user", "bot"}]
    assert all({k: v for k, v in a.items() if k != "metadata"} == b for a, b in others)  # all but the stamp
    assert "metadata" in SESSION[0] and "metadata" not in slim[0]
    assert slim[-1]["metadata"] == {"language": "en", **STAMP}
    older_messages = [(a, b) for a, b in zip(SESSION[:-1], slim[:-1], strict=True) if a["event"] in {"user", "bot"}]
    assert len(json.dumps([b for _, b in older_messages])) < 0.5 * len(json.dumps([a for a, _ in older_messages]))


def test_the_session_built_once_per_event_is_the_slimmed_session_at_every_event():
    """``session_events`` keeps each older event's slim dict on the tracker; grown event by
    event (the same tracker, as the tracker store hands it from turn to turn), and then
    given a new deque, it must send exactly what slimming the whole session sends."""
    from rasa.shared.core.events import Event
    from rasa.shared.core.trackers import DialogueStateTracker

    from addons.lean_action_calls import _dumps, session_events

    events = [Event.from_parameters(e) for e in copy.deepcopy(SESSION * 4)]
    grown = DialogueStateTracker("p", [])
    for position, event in enumerate(events):
        grown.update(event)
        expected = slim_events([e.as_dict() for e in grown.events])
        sent = session_events(grown)
        assert sent == expected, position
        # What the action server receives: the very text json.dumps writes for the call.
        call = {"next_action": "action_x", "sender_id": "p", "version": "3.6.21",
                "tracker": {"sender_id": "p", "slots": {"name": "Ана 李"}, "events": sent, "paused": False}}
        assert _dumps(call) == json.dumps(call), position
    kept = grown.__dict__["_lean_slimmed_events"].dicts
    assert len(kept) == len(events) - 1  # every event before the latest user message, once
    # Rasa runs every action on a copy (addons/lean_tracker.py): it keeps the slim dicts.
    from addons import lean_tracker

    lean_tracker.apply()
    duplicate = grown.copy()
    assert duplicate.__dict__["_lean_slimmed_events"].dicts is kept  # shared with the original
    assert session_events(duplicate) == slim_events([e.as_dict() for e in duplicate.events])
    # What the copy added (a new user message, then its call) the original has next turn.
    for event in events[:4]:
        duplicate.update(event)
    assert session_events(duplicate) == slim_events([e.as_dict() for e in duplicate.events])
    assert len(kept) > len(events) - 1
    for event in events[:4]:
        grown.update(event)
    assert session_events(grown) == slim_events([e.as_dict() for e in grown.events])
    grown.events = grown._create_events(events[:9])  # another conversation's events
    assert session_events(grown) == slim_events([e.as_dict() for e in events[:9]])


def test_a_session_without_a_user_message_is_sent_as_it_is():
    events = SESSION[:3]
    assert slim_events(events) == events


def test_a_message_after_the_latest_user_message_is_whole():
    events = copy.deepcopy(SESSION) + [action("utter_x"), bot("Here are the options", buttons=5)]
    assert slim_events(events)[-1]["data"]["buttons"]


# Every function of actions/ that reads the events of the tracker, and the keys it reads.
READERS = {
    conversation.session_user_events: {"event"},
    conversation.intent_of: {"parse_data", "intent", "name", "response_selector", "faq", "response",
                             "intent_response_key"},
    handoff.recent_said: {"text"},
    handoff._last_bot_action: {"event", "name"},
    knowledge.after_document_answer: {"event", "name"},
}
# What the contract keeps of an older message (addons/lean_action_calls.py).
CONTRACT = {"event", "timestamp", "text", "input_channel", "message_id", "metadata", "parse_data", "intent", "name",
            "confidence", "entities", "entity", "value", "role", "group", "response_selector", "faq", "response",
            "intent_response_key"}


def _keys_read(function) -> set:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            keys.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            keys.add(node.slice.value)
    return keys


def test_every_reader_of_the_events_is_known_and_reads_only_the_contract():
    known = {(f.__module__, f.__name__) for f in READERS}
    found = set()
    for path in sorted((PROJECT_ROOT / "actions").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        for definition in ast.walk(tree):
            if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if any(isinstance(node, ast.Attribute) and node.attr in {"events", "applied_events"}
                   for node in ast.walk(definition)):
                found.add((module, definition.name))
    direct = {(f.__module__, f.__name__) for f in (conversation.session_user_events, handoff._last_bot_action,
                                                    knowledge.after_document_answer)}
    assert found == direct, ("a new reader of tracker.events: check what it reads of older messages against "
                             "addons/lean_action_calls.py and add it to READERS", found - direct)
    assert known >= found
    for function, keys in READERS.items():
        assert _keys_read(function) <= keys <= CONTRACT, function.__name__


def test_the_check_sees_a_key_outside_the_contract():
    def reads_the_ranking(event):
        return event.get("parse_data", {}).get("intent_ranking")

    assert not _keys_read(reads_the_ranking) <= CONTRACT


def test_the_readers_answer_the_same_on_the_trimmed_session():
    probes = (lambda t: [conversation.intent_of(e) for e in conversation.session_user_events(t)],
              lambda t: list(conversation.recent_topics(t)),
              lambda t: list(handoff.recent_said(t)),
              fallback.consecutive_misunderstandings,
              handoff._last_bot_action,
              knowledge.after_document_answer)
    ends = [i + 1 for i, event in enumerate(SESSION) if event["event"] == "user"]
    for end in ends:  # the session as each action of it saw it
        whole, slim = tracker(copy.deepcopy(SESSION[:end])), tracker(slim_events(copy.deepcopy(SESSION[:end])))
        for probe in probes:
            assert probe(whole) == probe(slim), (end, probe)
    # What was compared means something: the earlier topic, two misunderstandings in a row,
    # the document search just before the request.
    whole = tracker(copy.deepcopy(SESSION))
    assert list(conversation.recent_topics(whole)) == ["faq/prices"]
    assert fallback.consecutive_misunderstandings(tracker(copy.deepcopy(SESSION[:ends[2]]))) == 2
    assert handoff._last_bot_action(whole) == "action_answer_from_documents"
    assert knowledge.after_document_answer(whole)


@pytest.mark.model
@pytest.mark.servers
def test_a_conversation_gets_the_same_replies_with_the_trimmed_session(tmp_path_factory, model):
    """Rasa's own call format, then the trimmed one, on two patients of one action server."""
    import asyncio

    import yaml
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.utils.endpoints import EndpointConfig

    from addons import lean_action_calls
    from benchmarks.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("actions"), model)
    stack.start_actions()
    settings = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8"))["action_endpoint"]
    options = {key: value for key, value in settings.items() if key != "url"}
    url = f"{stack.url('actions')}/webhook"
    conversation_ = [
        "hi",
        "how much does a consultation cost",  # FAQ: the check reads the latest message
        "what are your opening hours",
        "qwxz blorp vvv",  # not understood, twice in a row: the count walks back the session
        "zzkq xvbt mmmx",
        "I'd like to book an appointment",  # the form's validator and questions
        '/inform{"service": "gp_consultation"}',
        "never mind",
        "/insurance_billing",  # the menu's billing button: a topic, no words
        "can I talk to a person",  # routing finds billing in that earlier topic
    ]
    sizes: Dict[str, List[int]] = {"whole": [], "trimmed": []}

    async def replies(trimmed: bool, sender: str):
        agent = Agent.load(str(model), action_endpoint=EndpointConfig(url, **options))
        original = RemoteAction._action_call_format
        if trimmed:
            lean_action_calls.apply()
        else:
            lean_action_calls.remove()
        measured = RemoteAction._action_call_format

        def measure(self, tracker, domain):
            call = measured(self, tracker, domain)
            sizes["trimmed" if trimmed else "whole"].append(len(json.dumps(call.get("tracker"))))
            return call

        RemoteAction._action_call_format = measure
        try:
            out = []
            for text in conversation_:
                answer = await agent.handle_message(UserMessage(text, sender_id=sender, metadata={"language": "en"}))
                out.append([{k: v for k, v in r.items() if k != "recipient_id"} for r in answer or []])
            return out
        finally:
            RemoteAction._action_call_format = original

    try:
        whole = asyncio.run(replies(False, "patient-whole"))
        trimmed = asyncio.run(replies(True, "patient-trimmed"))
    finally:
        lean_action_calls.apply()
        stack.stop()
    assert all(whole), whole
    # What is compared depends on the older messages: the second misunderstanding offers a
    # person, and the person is from billing, found in the button's topic three turns back.
    assert any(b.get("title") == "Talk to a person" for r in whole[4] for b in r.get("buttons", [])), whole[4]
    assert "billing" in json.dumps(whole[-1]).lower(), whole[-1]
    # The two patients share one clinic: within staffed hours the second one's queue estimate
    # counts the first one's waiting ticket ("about 10 minutes" against "about 5"). That is the
    # queue, not the session, so the estimate is left out of the comparison.
    assert _without_queue_wait(trimmed) == _without_queue_wait(whole)
    assert sizes["trimmed"] and sizes["whole"]
    assert sizes["trimmed"][-1] < 0.5 * sizes["whole"][-1], sizes


def _without_queue_wait(conversation: List[list]) -> str:
    return re.sub(r"within about \d+ (minutes|hours?)", "within about …", json.dumps(conversation))
