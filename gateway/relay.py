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

Several Rasa replicas (RASA_URLS; issue 16): each try of a turn goes to one of them
(replicas.py: the least busy, a replica that is down skipped). A replica that refuses the
connection, drops it or does not answer in time is marked down and the turn goes to another
at once, as a retry (``attempts`` > 1): the replay above works on any replica, since the
replies it looks for are in the shared tracker store, not in one process. Only when every
replica failed in a row does the relay back off before the next round.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Callable, Optional, Sequence, Set, Union

import aiohttp

from clinic.messaging.turn import InboundTurn, TurnReply, TurnRequest
from gateway.replicas import Replica, Replicas
from gateway.settings import rasa_urls as parse_rasa_urls
from whatsapp import signature
from whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)

TURN_PATH = "/webhooks/whatsapp/turn"
# A turn waits behind the assistant's other work; under a burst that can take a while.
TURN_TIMEOUT_SECONDS = 120.0
RETRY_MAX_SECONDS = 30.0
# A replica that does not even accept the connection in this time is down (a host that
# vanished drops packets: without this a turn would wait TURN_TIMEOUT_SECONDS for it).
CONNECT_TIMEOUT_SECONDS = 5.0


async def back_off(seconds: float) -> None:
    """The pause before another round of tries when no replica took a turn (a function of
    its own, so that tests can tell a fail-over at once from a back-off)."""
    await asyncio.sleep(seconds)


class TurnRefused(Exception):
    """The assistant answered the turn with a client error (a bug, not an outage)."""


class TurnFailed(Exception):
    """The assistant took the turn and failed on it (HTTP 5xx): one attempt of the message,
    not an outage (it answered)."""


class Relay:
    """``claimed``: whether a staff member has the conversation (then Rasa checks whether it
    is paused, for the emergency safety net): asked here, so the assistant's process needn't."""

    def __init__(self, rasa_url: Union[str, Sequence[str]], secret: str, metrics: Metrics,
                 claimed: Callable[[str], bool], replicas: Optional[Replicas] = None) -> None:
        """``rasa_url``: one URL, several comma-separated, or a list (the replicas)."""
        urls = parse_rasa_urls(rasa_url) if isinstance(rasa_url, str) else tuple(rasa_url)
        self.replicas = replicas or Replicas(urls)
        self.rasa_url = self.replicas.replicas[0].url
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
        tried: Set[int] = set()  # replicas tried since the last back-off
        while True:
            # An up replica; else one marked down (by this turn or others), back soonest first.
            replica = self.replicas.choose(tried) or self.replicas.soonest_back(tried)
            if replica is None:
                # Every replica failed in a row: the assistant is down, restarting or
                # overloaded. The message waits in the inbox.
                await back_off(delay * (0.5 + random.random()))
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                tried.clear()
                continue
            tried.add(replica.index)
            answer = await self._try(session, replica, request)
            if isinstance(answer, TurnReply):
                return answer
            self._metrics.increment("turn_retried")
            logger.warning("Rasa replica %d did not take a turn (%s); %s", replica.index, answer,
                           "trying another" if len(tried) < len(self.replicas) else "retrying")
            # A retry may reach an assistant that already took the message in (the same
            # replica, or another sharing its tracker store): say so, and it answers with the
            # replies it gave instead of processing it again.
            request = TurnRequest(turn.retried(max(2, turn.attempts)), claimed)

    async def _try(self, session: aiohttp.ClientSession, replica: Replica,
                   request: TurnRequest) -> Union[TurnReply, str]:
        """One try on one replica: its reply, or why it did not take the turn (then it is
        marked down when it did not answer at all)."""
        body = json.dumps(request.to_json()).encode()
        self.replicas.started(replica)
        try:
            async with session.post(
                f"{replica.url}{TURN_PATH}", data=body,
                headers={signature.HEADER: signature.sign(body, self._secret),
                         "Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=TURN_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS),
            ) as reply:
                status = reply.status
                payload = await reply.read() if status == 200 else b""
        except asyncio.CancelledError:  # the gateway stops: the message stays in the inbox
            replica.in_flight -= 1
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            pause = self.replicas.failed(replica)
            # Counted by replica number (never its address): which one is failing.
            self._metrics.increment(f"rasa_replica{replica.index}_down")
            logger.warning("Rasa replica %d is down (%s); no turns for it for %.1f s",
                           replica.index, type(error).__name__, pause)
            return type(error).__name__
        self.replicas.answered(replica)
        self._metrics.increment(f"rasa_replica{replica.index}_turns")
        if status == 200:
            try:
                return TurnReply.from_json(json.loads(payload))
            except ValueError as error:
                raise TurnRefused("the answer is not a turn's reply") from error
        if status == 400:
            raise TurnRefused(f"HTTP {status}")
        if status >= 500:
            # Answered, so not down: it failed on this message. The processor counts the
            # attempt and tries again later, or gives up.
            self._metrics.increment("turn_failed")
            raise TurnFailed(f"HTTP {status}")
        return f"HTTP {status}"  # 403: secrets differ
