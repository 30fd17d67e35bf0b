"""action_erase_my_data: the patient confirmed "delete my data" (data/rules/privacy.yml).

Thin: clinic/privacy_erasure.py erases the contact in every store the product owns. The
WhatsApp records (and the address the confirmation goes to) are erased once the
confirmation is sent (``defer_messaging``), and Rasa's tracker store deletes the
conversation's events when it saves this turn, because ``data_erasure`` is ``done``
(addons/encrypted_tracker_store.py): Rasa holds the conversation while the turn runs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import get_services
from clinic.privacy_erasure import PATIENT

logger = logging.getLogger(__name__)

SLOT = "data_erasure"


class ActionEraseMyData(Action):
    def name(self) -> Text:
        return "action_erase_my_data"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        services = get_services()
        try:
            report = await asyncio.to_thread(
                services.erasure.erase, tracker.sender_id, services.contact_key_for(tracker),
                requested_by=PATIENT, defer_messaging=True)
        except Exception:  # noqa: BLE001 - the patient must hear it did not happen
            logger.exception("Could not erase a contact's data")
            return [SlotSet(SLOT, "failed")]
        logger.info("Erasure %s recorded from the chat", report.erasure_id)
        # data/rules/privacy.yml confirms; the tracker store deletes the events on save.
        return [SlotSet(SLOT, "done")]
