"""Rasa's output channel for WhatsApp: the gateway's renderer (gateway/render.py: Rasa's
responses → typed WhatsApp messages, one function for the gateway and this channel) as a
Rasa ``OutputChannel``.

Used in Rasa's process for messages the patient did not just ask for (Rasa's
``trigger_intent``: reminders, notifications), which are queued for the outbox
(clinic/messaging/outbox_queue.py, ``PRIORITY_REMINDER``) and sent, in order, by the process
that owns it with the number's one rate limit. A patient's turn is
never sent from here reply by reply: its replies are collected, then delivered through the
outbox (``deliver_turn``), by the gateway or, in the Rasa-only development mode, by the
channel.
"""

from __future__ import annotations

from typing import Text

from rasa.core.channels.channel import OutputChannel

from gateway.render import CHANNEL_NAME, CHOOSE_PROMPT, Renderer, deliver_turn

__all__ = ["CHANNEL_NAME", "CHOOSE_PROMPT", "WhatsAppOutput", "deliver_turn"]


class WhatsAppOutput(Renderer, OutputChannel):
    """The renderer's ``send_*`` methods and its ``send_response`` (the same dispatch as
    Rasa's) take precedence over ``OutputChannel``'s."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME
