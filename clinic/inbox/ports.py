"""What the inbox needs from the conversation side, as protocols.

The inbox never talks to WhatsApp or Rasa directly; the application wires these:

- ``TranscriptSource``: the conversation's messages (already redacted at the door: card
  numbers, IBANs… were replaced before Rasa saw them). ``rasa_http.RasaTranscriptSource``
  reads Rasa's tracker over its HTTP API.
- ``ConversationControl``: pause the bot while a human owns the conversation, resume it on
  resolution. ``rasa_http.RasaConversationControl`` appends Rasa's ``pause``/``resume``
  events over the HTTP API.
- ``ReplyGateway``: deliver a staff reply to the patient (e.g. through the WhatsApp
  sender, which checks the 24-hour window) and append it to the Rasa tracker, so the bot
  and later transcripts see it. Returns a ``ReplyResult``: delivered, or refused with a
  reason staff can act on ("outside the 24-hour window: pick a template").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import List, Optional, Protocol, Tuple, runtime_checkable

from clinic.inbox.model import Delivery

# Values of TranscriptMessage.sender
PATIENT, BOT, STAFF = "patient", "bot", "staff"
OUTSIDE_WINDOW_DETAIL = "outside the 24-hour window: pick a template"


@dataclasses.dataclass(frozen=True)
class TranscriptMessage:
    at: dt.datetime
    sender: str                       # patient | bot | staff
    text: str                         # what the patient saw: a tapped button's title, not its payload
    inbox_message_id: Optional[int] = None  # for staff replies the inbox sent
    buttons: Tuple[str, ...] = ()     # a bot message's button titles, as the patient saw them
    tapped: bool = False              # a patient's button or list tap (``text`` is its title)
    wamid: Optional[str] = None       # a patient's message: its WhatsApp id (finds its media)


class TranscriptUnavailable(Exception):
    """The conversation's messages could not be read (Rasa down, wrong token…)."""


class ControlFailed(Exception):
    """The bot could not be paused or resumed; the inbox retries (``Inbox.sync_bot``)."""


@dataclasses.dataclass(frozen=True)
class ReplyResult:
    delivery: Delivery
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.delivery is Delivery.SENT


@runtime_checkable
class TranscriptSource(Protocol):
    def messages(self, conversation_id: str, limit: int = 200) -> List[TranscriptMessage]:
        """Oldest first, at most the last ``limit``. Raises TranscriptUnavailable."""


@runtime_checkable
class ConversationControl(Protocol):
    def pause(self, conversation_id: str) -> None:
        """The bot stops answering this conversation. Raises ControlFailed."""

    def resume(self, conversation_id: str) -> None:
        """The bot answers again. Raises ControlFailed."""


@runtime_checkable
class ReplyGateway(Protocol):
    def send(self, conversation_id: str, text: str, inbox_message_id: int) -> ReplyResult:
        """Deliver ``text`` to the patient; never raises for delivery problems (returns
        FAILED/REFUSED with a detail instead)."""


@runtime_checkable
class TemplateGateway(Protocol):
    """A ReplyGateway that can also send an approved template (outside the 24-hour window).
    ``rendered`` is the text the patient sees, for the transcript."""

    def send_template(self, conversation_id: str, template: "ApprovedTemplate", values: List[str],
                      rendered: str, inbox_message_id: int) -> ReplyResult:
        ...


from clinic.inbox.templates import ApprovedTemplate  # noqa: E402  (type only; no cycle)
