"""Helpers that read a conversation's recent history from the tracker."""

from __future__ import annotations

from typing import Iterator, List

from rasa_sdk import Tracker

# Intents that say nothing about *what* the patient needs.
_NEUTRAL_INTENTS = {"affirm", "deny", "greet", "thank", "menu", "request_human", "nlu_fallback"}


def session_user_events(tracker: Tracker) -> List[dict]:
    """The user messages of the current session, oldest first."""
    events: List[dict] = []
    for event in reversed(tracker.events):
        if event.get("event") == "session_started":
            break
        if event.get("event") == "user":
            events.append(event)
    return list(reversed(events))


def intent_of(user_event: dict) -> str:
    parse = user_event.get("parse_data") or {}
    intent = (parse.get("intent") or {}).get("name") or ""
    if intent == "faq":
        selected = ((parse.get("response_selector") or {}).get("faq") or {}).get("response") or {}
        return selected.get("intent_response_key") or intent
    return intent


def recent_topics(tracker: Tracker) -> Iterator[str]:
    """What the patient talked about this session, most recent first (neutral intents skipped)."""
    for event in reversed(session_user_events(tracker)):
        intent = intent_of(event)
        if intent and intent not in _NEUTRAL_INTENTS:
            yield intent
