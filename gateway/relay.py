"""The relay: one inbox message → one turn of the assistant (``POST
/webhooks/whatsapp/turn`` on Rasa, connectors/whatsapp/channel.py) → its replies.

The request carries ids and redacted text only, signed with the gateway's own secret
(WHATSAPP_INTERNAL_SECRET, never Meta's app secret). Nothing is lost when Rasa is down or
restarting: the turn is retried (backing off up to RETRY_MAX_SECONDS) while the message
waits in the inbox. A turn the assistant answers with HTTP 5xx (it took the message and
failed on it) is an attempt of that message (``TurnFailed``; the processor counts it and
gives up after WHATSAPP_INBOUND_MAX_ATTEMPTS). Replay: a retry says so (``attempts`` > 1),
and an assistant that had already taken the message in answers with the replies it gave
then instead of processing it twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Callable, Optional

import aiohttp

from clinic.messaging.turn import InboundTurn, TurnReply, TurnRequest
from whatsapp import signature
from whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)

TURN_PATH = "/webhooks/whatsapp/turn"
# A turn waits behind the assistant's other work; under a burst that can take a while.
TURN_TIMEOUT_SECONDS = 120.0
RETRY_MAX_SECONDS = 30.0


class TurnRefused(Exception):
    """The assistant answered the turn with a client error (a bug, not an outage)."""


class TurnFailed(Exception):
    """The assistant took the turn and failed on it (HTTP 5xx): one attempt of the message,
    not an outage (it answered)."""


class Relay:
    """``claimed``: whether a staff member has the conversation (then Rasa checks whether it
    is paused, for the emergency safety net): asked here, so the assistant's process needn't."""

    def __init__(self, rasa_url: str, secret: str, metrics: Metrics,
                 claimed: Callable[[str], bool]) -> None:
        self.rasa_url = rasa_url.rstrip("/")
        self._secret = secret
        self._metrics = metrics
        self._claimed = claimed
        self._session: Optional[aiohttp.ClientSession] = None

    def start(self) -> None:
        """Open the pooled HTTP client on the loop that runs the turns."""
        self._session = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def turn(self, turn: InboundTurn) -> TurnReply:
        """The assistant's answer to ``turn`` (Rasa's responses, in order), once it answers;
        raises TurnRefused (400, or an answer that is not a turn's reply) or TurnFailed (5xx)."""
        claimed = bool(turn.text) and await asyncio.to_thread(self._claimed, turn.conversation_id)
        request = TurnRequest(turn, claimed)
        session = self._session
        if session is None:
            raise RuntimeError("Relay.start() opens the HTTP session first")
        delay = 0.5
        while True:
            body = json.dumps(request.to_json()).encode()
            try:
                async with session.post(
                    f"{self.rasa_url}{TURN_PATH}", data=body,
                    headers={signature.HEADER: signature.sign(body, self._secret),
                             "Content-Type": "application/json"},
                    timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT_SECONDS),
                ) as reply:
                    if reply.status == 200:
                        try:
                            return TurnReply.from_json(await reply.json())
                        except (ValueError, aiohttp.ContentTypeError) as error:
                            raise TurnRefused("the answer is not a turn's reply") from error
                    if reply.status == 400:
                        raise TurnRefused(f"HTTP {reply.status}")
                    if reply.status >= 500:
                        # Answered, so not down: it failed on this message. The processor
                        # counts the attempt and tries again later, or gives up.
                        self._metrics.increment("turn_failed")
                        raise TurnFailed(f"HTTP {reply.status}")
                    problem = f"HTTP {reply.status}"  # 403: secrets differ
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                problem = type(error).__name__
            # The assistant is down, restarting or overloaded: the message waits in the inbox.
            # A retry may reach an assistant that already took the message in: say so, and it
            # answers with the replies it gave instead of processing it again.
            self._metrics.increment("turn_retried")
            logger.warning("The assistant did not take a turn (%s); retrying in %.1f s", problem, delay)
            request = TurnRequest(turn.retried(max(2, turn.attempts)), claimed)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RETRY_MAX_SECONDS)
