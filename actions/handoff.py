"""Talking to a person: route to a team, queue the conversation in the staff inbox, say who,
how long and when; call-back requests; the 1-5 rating after a resolved conversation.

The actions decide and set slots; data/rules/handoff.yml picks the replies (domain/handoff.yml):
- ``action_request_human`` sets ``handoff_team``, ``handoff_result`` (``recorded`` during the
  team's staffed hours, ``after_hours`` outside them, ``failed``), ``handoff_wait`` ("about
  10 minutes", from the queue), ``handoff_reply_from`` ("tomorrow at 08:00") and
  ``handoff_hours`` (the team's hours);
- ``action_request_callback`` sets ``callback_result`` (``recorded`` / ``failed``);
- ``action_record_handoff_rating`` sets ``handoff_rating`` (``good`` 3-5, ``low`` 1-2,
  ``unrated`` when there is no number or nothing to rate).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, Dict, Iterator, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import intent_of, session_user_events
from actions.knowledge import count_handover
from actions.language import language_of
from actions.services import Services, get_services
from clinic.handoff.calling import permission_request_message
from clinic.handoff.hours import (
    describe_hours,
    describe_opening,
    describe_wait,
    next_opening,
    team_hours,
)
from clinic.handoff.requests import Reason
from clinic.handoff.routing import default_routing_words
from clinic.handoff.teams import Said, Team, parse_team, route
from clinic.inbox.model import InvalidInput

logger = logging.getLogger(__name__)

# Forced by addons/long_message.py: a message too long to classify goes to a person.
LONG_MESSAGE_INTENT = "long_message"

# The latest intent (or the offer it answers) -> why the patient is handed over.
_REASON_BY_INTENT = {
    "frustration": Reason.FRUSTRATION,
    "clinical_question": Reason.CLINICAL_QUESTION,
    # The assistant declined to guess what a long message wants: staff should read it all,
    # which "did not understand" would not tell them.
    LONG_MESSAGE_INTENT: Reason.LONG_MESSAGE,
}
_FALLBACK_OFFERS = {"utter_offer_human"}


def handoff_reason(tracker: Tracker) -> Reason:
    intent = latest_intent(tracker)
    if intent in _REASON_BY_INTENT:
        return _REASON_BY_INTENT[intent]
    if intent == "affirm" and _last_bot_action(tracker) in _FALLBACK_OFFERS:
        return Reason.BOT_FALLBACK
    return Reason.PATIENT_REQUEST


def _last_bot_action(tracker: Tracker) -> Optional[str]:
    """The last action before the latest user message (what the patient was answering)."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return None
            seen_user = True
        elif seen_user and event.get("event") == "action" and event.get("name") != "action_listen":
            return event.get("name")
    return None


def recent_said(tracker: Tracker) -> Iterator[Said]:
    """The session's user messages, most recent first, as routing reads them. A button's
    payload ("/request_human") is not the patient's words, so only its intent counts."""
    for event in reversed(session_user_events(tracker)):
        text = event.get("text") or ""
        yield Said(text="" if text.startswith("/") else text, topic=intent_of(event))


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message or {}).get("intent", {}).get("name")


def route_team(tracker: Tracker, asked_for: Optional[str]) -> Team:
    """The team named, else the one the conversation's words and topics point to, latest
    message first (content/routing.yml, clinic/handoff/teams.py), else reception."""
    try:
        team_for_text = default_routing_words().team_for
    except Exception:  # noqa: BLE001 - a bad edit of the word lists must not cost a handoff
        logger.exception("content/routing.yml could not be loaded: routing by topics only")
        return route(asked_for, recent_said(tracker))
    return route(asked_for, recent_said(tracker), team_for_text)


def record_handoff(services: Services, tracker: Tracker, team: Team, reason: Reason,
                   red_flag: Optional[str] = None) -> bool:
    """Record the request and open (or escalate) the conversation's inbox ticket in one
    transaction. Returns False when the conversation could not be queued (then the request
    is still recorded, so it is not lost, but staff cannot answer in the chat)."""
    key = services.contact_key_for(tracker)
    try:
        services.handoffs.record(key, team, reason, red_flag, conversation_id=tracker.sender_id)
        return True
    except InvalidInput:
        # The channel gave a conversation id that looks like a phone number: the inbox never
        # stores one. Keep the pseudonymous request; the patient is given the phone route.
        logger.warning("Conversation id refused by the inbox (channel=%s); request kept without a ticket",
                       tracker.get_latest_input_channel())
        services.handoffs.record(key, team, reason, red_flag)
        return False


def ask_to_call(services: Services, tracker: Tracker, dispatcher: CollectingDispatcher,
                language: Optional[str]) -> None:
    """During the team's hours, on WhatsApp, with calling on: may the clinic call the patient?
    (an interactive call-permission request; clinic/handoff/calling.py). Its answer is
    recorded by the WhatsApp gateway and shown to staff on the ticket."""
    if services.settings.calling and tracker.get_latest_input_channel() == "whatsapp":
        dispatcher.utter_message(json_message=permission_request_message(language))


class ActionRequestHuman(Action):
    def name(self) -> Text:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        services = get_services()
        # The team named in *this* message (entity), not one remembered from earlier. In a
        # long message a team's name is as likely noise as a request ("the nurse told me to
        # park…"): there the words as a whole decide.
        asked_for = None if latest_intent(tracker) == LONG_MESSAGE_INTENT else \
            next(tracker.get_latest_entity_values("team"), None)
        # Off the event loop: the first call loads the word lists and spaCy (seconds).
        team = await asyncio.to_thread(route_team, tracker, asked_for)
        reason = handoff_reason(tracker)
        hours = team_hours(services.settings, team)
        language = language_of(tracker)
        events: List[EventType] = [SlotSet("handoff_team", team.value),
                                   SlotSet("handoff_hours", describe_hours(hours, language=language))]
        try:
            # Database work off the event loop, so other patients' actions keep flowing.
            queued = await asyncio.to_thread(record_handoff, services, tracker, team, reason)
        except Exception:  # noqa: BLE001 - any failure must still leave the patient a route
            logger.exception("Could not record handoff request (team=%s)", team.value)
            queued = False
        # A person asked for right after an answer from the documents (or a not-found).
        await count_handover(services, tracker)
        if not queued:
            return events + [SlotSet("handoff_result", "failed")]

        now = services.clock().astimezone(services.settings.timezone)
        if hours.is_open(now):
            ask_to_call(services, tracker, dispatcher, language)
            minutes = await asyncio.to_thread(
                services.inbox.expected_wait_minutes, team.value, tracker.sender_id)
            return events + [SlotSet("handoff_result", "recorded"),
                             SlotSet("handoff_wait", describe_wait(minutes, language=language))]
        # No opening within a week: "the next opening day", in the patient's language.
        reply_from = describe_opening(next_opening(hours, now), now, language=language)
        return events + [SlotSet("handoff_result", "after_hours"), SlotSet("handoff_reply_from", reply_from)]


class ActionRequestCallback(Action):
    """Out of hours (or whenever asked): a call-back task for the team instead of waiting."""

    def name(self) -> Text:
        return "action_request_callback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        services = get_services()
        asked_for = next(tracker.get_latest_entity_values("team"), None)
        team = parse_team(asked_for) or parse_team(tracker.get_slot("handoff_team")) \
            or await asyncio.to_thread(route_team, tracker, None)
        opening_hours = team_hours(services.settings, team)
        hours = describe_hours(opening_hours, language=language_of(tracker))
        events: List[EventType] = [SlotSet("handoff_team", team.value),
                                   SlotSet("handoff_hours", hours)]
        try:
            await asyncio.to_thread(services.inbox.request_callback, tracker.sender_id, team.value)
            result = "recorded"
            # Asked while the team is staffed: they may call on WhatsApp right away, if allowed.
            if opening_hours.is_open(services.clock().astimezone(services.settings.timezone)):
                ask_to_call(services, tracker, dispatcher, language_of(tracker))
        except Exception:  # noqa: BLE001 - the patient still gets the phone route
            logger.exception("Could not record a call-back request (team=%s)", team.value)
            result = "failed"
        return events + [SlotSet("callback_result", result)]


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
_RATING = re.compile(r"\b([1-5])\b|\b(one|two|three|four|five)\b", re.IGNORECASE)


def rating_from(tracker: Tracker) -> Optional[int]:
    """The rating from the button's entity, else the first 1-5 number in the text."""
    for value in tracker.get_latest_entity_values("rating"):
        try:
            number = int(str(value).strip())
        except ValueError:
            continue
        if 1 <= number <= 5:
            return number
    match = _RATING.search((tracker.latest_message or {}).get("text") or "")
    if not match:
        return None
    return int(match.group(1)) if match.group(1) else _NUMBER_WORDS[match.group(2).lower()]


class ActionRecordHandoffRating(Action):
    def name(self) -> Text:
        return "action_record_handoff_rating"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        rating = rating_from(tracker)
        if rating is None:
            return [SlotSet("handoff_rating", "unrated")]
        try:
            ticket = await asyncio.to_thread(get_services().inbox.rate, tracker.sender_id, rating)
        except Exception:  # noqa: BLE001 - thank the patient anyway; the rating is only lost
            logger.exception("Could not store a handoff rating")
            ticket = -1
        if ticket is None:
            return [SlotSet("handoff_rating", "unrated")]
        return [SlotSet("handoff_rating", "low" if rating <= 2 else "good")]
