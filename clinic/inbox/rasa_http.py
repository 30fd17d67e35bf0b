"""The inbox's ports over Rasa's HTTP API (``rasa run --enable-api --auth-token …``).

- transcript: ``GET /conversations/{id}/tracker?include_events=ALL`` → user and bot events;
- pause/resume: ``POST /conversations/{id}/tracker/events`` with ``{"event": "pause"}`` or
  ``{"event": "resume"}`` (Rasa 3.6 keeps logging the patient's messages while paused but
  predicts no action, see rasa/core/processor.py ``_should_handle_message``);
- after a resume, ``POST /conversations/{id}/trigger_intent?output_channel=latest`` with
  ``EXTERNAL_handoff_resolved``: the assistant says the patient is back with it and asks
  for a 1-5 rating, through the patient's own channel (WhatsApp: the channel's proactive
  sender, with its 24-hour window check);
- a staff reply appended as a ``bot`` event with ``metadata.inbox_message_id``, so the
  transcript (and the bot, once resumed) sees what staff said, once.

Synchronous (``requests``): the web app calls these from its worker threads. Settings:
``RASA_URL`` (default http://localhost:5005) and ``RASA_AUTH_TOKEN``, the same names the
reminders use.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote

import requests

from clinic.inbox.ports import (
    BOT,
    PATIENT,
    STAFF,
    ControlFailed,
    TranscriptMessage,
    TranscriptUnavailable,
)

DEFAULT_RASA_URL = "http://localhost:5005"
logger = logging.getLogger(__name__)


class RasaHttp:
    def __init__(self, base_url: Optional[str] = None, token: Optional[str] = None,
                 timeout_seconds: float = 5.0) -> None:
        self.base_url = (base_url or os.environ.get("RASA_URL") or DEFAULT_RASA_URL).rstrip("/")
        self._token = token if token is not None else os.environ.get("RASA_AUTH_TOKEN")
        self._timeout = timeout_seconds
        self._http = requests.Session()
        self._http.trust_env = False  # a proxy setting must not route patient data elsewhere

    def _url(self, conversation_id: str, suffix: str) -> str:
        return f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/{suffix}"

    def _params(self, **extra: str) -> Dict[str, str]:
        return {**extra, **({"token": self._token} if self._token else {})}

    def tracker(self, conversation_id: str, include_events: str = "ALL") -> Dict[str, Any]:
        response = self._http.get(self._url(conversation_id, "tracker"),
                                  params=self._params(include_events=include_events), timeout=self._timeout)
        if response.status_code != 200:
            raise RuntimeError(_describe(response))
        return response.json()

    def trigger_intent(self, conversation_id: str, intent: str) -> Dict[str, Any]:
        """Rasa's external event: the bot reacts to ``intent`` on the patient's latest channel.
        Longer timeout: Rasa runs the prediction and sends the replies before answering."""
        response = self._http.post(self._url(conversation_id, "trigger_intent"),
                                   params=self._params(output_channel="latest", include_events="NONE"),
                                   json={"name": intent}, timeout=max(self._timeout, 30.0))
        if response.status_code != 200:
            raise RuntimeError(_describe(response))
        return response.json()

    def append(self, conversation_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        response = self._http.post(self._url(conversation_id, "tracker/events"),
                                   params=self._params(include_events="NONE"), json=events,
                                   timeout=self._timeout)
        if response.status_code != 200:
            raise RuntimeError(_describe(response))
        return response.json()


class RasaTranscriptSource:
    def __init__(self, rasa: RasaHttp) -> None:
        self._rasa = rasa

    def messages(self, conversation_id: str, limit: int = 200) -> List[TranscriptMessage]:
        try:
            state = self._rasa.tracker(conversation_id)
        except (requests.RequestException, RuntimeError, ValueError) as exc:
            raise TranscriptUnavailable(_short(exc)) from None
        return parse_events(state.get("events") or [])[-limit:]


RESOLVED_INTENT = "EXTERNAL_handoff_resolved"


class RasaConversationControl:
    def __init__(self, rasa: RasaHttp, resolved_intent: Optional[str] = RESOLVED_INTENT) -> None:
        self._rasa = rasa
        self._resolved_intent = resolved_intent

    def pause(self, conversation_id: str) -> None:
        self._send(conversation_id, "pause")

    def resume(self, conversation_id: str) -> None:
        self._send(conversation_id, "resume")
        if self._resolved_intent:
            # A courtesy message, not part of the state change: if it fails, the bot is
            # resumed anyway and the patient's next message is answered normally. Not raised
            # (sync_bot would otherwise resume again and maybe send the message twice).
            try:
                self._rasa.trigger_intent(conversation_id, self._resolved_intent)
            except (requests.RequestException, RuntimeError, ValueError) as exc:
                logger.warning("Resumed, but the back-with-the-assistant message failed: %s", _short(exc))

    def is_paused(self, conversation_id: str) -> bool:
        return bool(self._rasa.tracker(conversation_id, include_events="NONE").get("paused"))

    def _send(self, conversation_id: str, event: str) -> None:
        try:
            self._rasa.append(conversation_id, [{"event": event}])
        except (requests.RequestException, RuntimeError, ValueError) as exc:
            raise ControlFailed(_short(exc)) from None


def staff_reply_event(text: str, inbox_message_id: int, at: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """The tracker event for a staff reply (what a ReplyGateway appends after sending)."""
    event: Dict[str, Any] = {"event": "bot", "text": text,
                             "metadata": {"inbox_message_id": inbox_message_id, "sender": STAFF}}
    if at is not None:
        event["timestamp"] = at.timestamp()
    return event


def parse_events(events: List[Dict[str, Any]]) -> List[TranscriptMessage]:
    """User and bot messages of a Rasa tracker dump, oldest first, as the patient saw them:
    a tapped button is shown by its title, not the payload the assistant read ("/deny")."""
    result = []
    offered: Dict[str, str] = {}  # payload -> title of the buttons last shown to the patient
    for event in events:
        kind = event.get("event")
        if kind not in ("user", "bot"):
            continue
        data = event.get("data") or {}
        buttons = [b for b in data.get("buttons") or [] if isinstance(b, dict)] if kind == "bot" else []
        text = event.get("text")
        if not text:
            if buttons:
                text = ""  # the buttons are the message (``buttons`` below)
            elif kind == "bot" and data.get("custom"):
                text = "[rich message]"
            else:
                continue
        metadata = event.get("metadata") or {}
        at = dt.datetime.fromtimestamp(float(event.get("timestamp") or 0), dt.timezone.utc)
        if kind == "user":
            shown, tapped = _as_the_patient_saw_it(str(text), metadata, offered)
            wamid = event.get("message_id")
            result.append(TranscriptMessage(at, PATIENT, shown, tapped=tapped,
                                            wamid=wamid if isinstance(wamid, str) and wamid else None))
            continue
        if buttons:
            offered = {str(b.get("payload") or b.get("title") or ""): str(b.get("title") or "") for b in buttons}
        inbox_id = metadata.get("inbox_message_id")
        result.append(TranscriptMessage(at, STAFF if inbox_id is not None else BOT, str(text),
                                        inbox_message_id=int(inbox_id) if inbox_id is not None else None,
                                        buttons=tuple(str(b.get("title") or "") for b in buttons)))
    return result


# What the WhatsApp door gives the assistant for messages that aren't text
# (gateway/inbound_mapping.py), in words for staff.
_MEDIA_WORDS = {"voice": "voice message", "audio": "audio", "image": "photo", "video": "video",
                "document": "document", "sticker": "sticker", "contacts": "contact card",
                "other": "a message the assistant can't read"}
_PAYLOAD = re.compile(r"^/(?P<intent>[A-Za-z0-9_]+)(?P<entities>\{.*\})?$", re.S)


def _as_the_patient_saw_it(text: str, metadata: Dict[str, Any], offered: Dict[str, str]) -> Tuple[str, bool]:
    """(text, tapped). A payload becomes the title the patient tapped: the one the channel
    recorded with the message (``metadata.whatsapp.title``), else the title of the button
    with that payload in the assistant's last buttons (channels that record none, older
    conversations). Media the door turned into an intent become words ("[photo]")."""
    channel = metadata.get("whatsapp") if isinstance(metadata.get("whatsapp"), dict) else {}
    title = channel.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip(), True
    match = _PAYLOAD.match(text.strip())
    if match is None:
        return text, False
    if text.strip() in offered and offered[text.strip()]:
        return offered[text.strip()], True
    try:
        entities = json.loads(match["entities"]) if match["entities"] else {}
    except ValueError:
        entities = {}
    if match["intent"] == "media_message" and isinstance(entities, dict):
        return f"[{_MEDIA_WORDS.get(str(entities.get('media_kind')), _MEDIA_WORDS['other'])}]", False
    if match["intent"] == "share_location":
        return "[location shared]", False
    return text, False


def _describe(response: requests.Response) -> str:
    if response.status_code in (401, 403):
        return f"Rasa refused the inbox's token (HTTP {response.status_code}); check RASA_AUTH_TOKEN"
    return f"Rasa answered HTTP {response.status_code}"


def _short(exc: Exception) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "Rasa is not reachable"
    if isinstance(exc, requests.Timeout):
        return "Rasa did not answer in time"
    return str(exc)[:200]
