"""The emergency safety net for conversations a staff member has taken over.

While paused (Rasa's ``pause`` event, appended by the staff inbox on claim) Rasa only logs
the patient's messages: no rule runs, so a red flag would get no emergency guidance. Before
such a message goes to Rasa, the channel runs the same red-flag detector on the (already
redacted) text and, when it fires: sends the domain's emergency guidance (crisis wording for
a crisis category) through the same WhatsApp sender, raises the urgent nurse handoff — the
conversation's ticket becomes urgent (moved to the nurse queue if another team had it) —
and, after Rasa has logged the message, adds the guidance to the tracker so the transcript
staff read is whole. See clinic/handoff/safety_net.py for the shared texts and detector.

Only the WhatsApp channel does this: it is the channel patients use. Rasa's REST channel is
for development and tests, and a paused REST conversation gets no reply at all.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, List, Optional

from sqlalchemy.orm import sessionmaker

from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.safety_net import Detected, EmergencyTexts, detect
from clinic.handoff.teams import Team
from clinic.inbox.patient_side import claimed_by_staff
from clinic.privacy import contact_key
from clinic.settings import load_settings

logger = logging.getLogger(__name__)


class PausedSafetyNet:
    def __init__(self, handoffs: HandoffRequests, pseudonym_key: bytes, channel: str,
                 sessions: Optional[sessionmaker] = None) -> None:
        self._handoffs = handoffs
        self._sessions = sessions
        self._pseudonym_key = pseudonym_key
        self._channel = channel
        self._texts: Optional[EmergencyTexts] = None

    def texts(self) -> EmergencyTexts:
        if self._texts is None:
            self._texts = EmergencyTexts.from_domain(load_settings())
        return self._texts

    def claimed_by_staff(self, conversation_id: str) -> bool:
        """One indexed query: only a conversation a staff member has claimed can be paused
        (the inbox pauses on claim, resumes on resolve)."""
        return claimed_by_staff(self._sessions, conversation_id)

    async def is_paused(self, agent: Any, conversation_id: str, claimed: Optional[bool] = None) -> bool:
        """``claimed``: what the caller already asked the inbox (the gateway does, so Rasa's
        process needn't); None: ask it here."""
        if agent is None or agent.tracker_store is None or claimed is False:
            return False
        # Loading the whole tracker for every message doubled Rasa's own work and slowed the
        # webhook's acknowledgements (docs/measurements.md): ask the inbox first.
        if claimed is None and self._sessions is not None and not await asyncio.to_thread(
                self.claimed_by_staff, conversation_id):
            return False
        tracker = agent.tracker_store.retrieve(conversation_id)
        if inspect.isawaitable(tracker):
            tracker = await tracker
        return tracker is not None and tracker.is_paused()

    async def check(self, conversation_id: str, text: Optional[str],
                    language: Optional[str] = None) -> Optional[List[str]]:
        """The texts to send, in the conversation's language, when ``text`` holds a red flag
        (and the urgent handoff is raised), else None."""
        found: Optional[Detected] = await asyncio.to_thread(detect, text)
        if found is None:
            return None
        logger.info("Red flag while a staff member has the conversation: %s", found.category)
        texts = self.texts()
        try:
            # The same record the action writes: the ticket becomes urgent, in one transaction.
            # (The contact key is computed as the actions do: from the conversation id.)
            key = contact_key(conversation_id, self._channel, self._pseudonym_key)
            await asyncio.to_thread(self._handoffs.record, key, Team.NURSE, Reason.EMERGENCY, found.category,
                                    conversation_id=conversation_id)
            follow_up = texts.flagged_in(language)
        except Exception:  # noqa: BLE001 - the guidance goes out regardless
            logger.exception("Could not raise the urgent handoff for a paused conversation")
            follow_up = texts.not_flagged_in(language)
        return [texts.for_response(found.response, language), follow_up]

    async def log_in_tracker(self, agent: Any, conversation_id: str, texts: List[str]) -> None:
        """Add what was sent to the conversation (after Rasa logged the patient's message)."""
        from rasa.shared.core.events import BotUttered

        try:
            async with agent.lock_store.lock(conversation_id):
                tracker = agent.tracker_store.retrieve(conversation_id)
                if inspect.isawaitable(tracker):
                    tracker = await tracker
                if tracker is None:
                    return
                for text in texts:
                    tracker.update(BotUttered(text, metadata={"safety_net": True}))
                saved = agent.tracker_store.save(tracker)
                if inspect.isawaitable(saved):
                    await saved
        except Exception:  # noqa: BLE001 - the patient has the guidance; only the copy is missing
            logger.exception("Could not add the safety-net guidance to the conversation")
