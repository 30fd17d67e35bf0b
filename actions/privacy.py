"""action_erase_my_data: the patient confirmed "delete my data" (data/rules/privacy.yml).
action_send_my_data: "send me my data" / "what data do you hold about me".

Thin: clinic/privacy_erasure.py erases the contact in every store the product owns. The
WhatsApp records (and the address the confirmation goes to) are erased once the
confirmation is sent (``defer_messaging``), and Rasa's tracker store deletes the
conversation's events when it saves this turn, because ``data_erasure`` is ``done``
(addons/encrypted_tracker_store.py): Rasa holds the conversation while the turn runs.

Access (thin too): clinic/privacy_access.py mints a single-use portal link to the page of
what the product holds about the patient (the results links' tokens and second factor);
only a patient the portal can verify (registered, with a date of birth) gets one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.notifications import get_notification_services
from actions.services import get_services
from clinic.privacy_access import issue_access_link
from clinic.privacy_erasure import PATIENT

logger = logging.getLogger(__name__)

SLOT = "data_erasure"
ACCESS_SLOT, ACCESS_LINK = "data_access", "data_access_link"


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


class ActionSendMyData(Action):
    def name(self) -> Text:
        return "action_send_my_data"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        try:
            return await asyncio.to_thread(self._link, tracker)
        except Exception:  # noqa: BLE001 - the patient must hear there is no link
            logger.exception("Could not issue a data access link")
            return [SlotSet(ACCESS_LINK, None), SlotSet(ACCESS_SLOT, "failed")]

    @staticmethod
    def _link(tracker: Tracker) -> List[EventType]:
        services = get_services()
        patient = services.scheduling.find_patient(services.contact_key_for(tracker))
        if patient is None:  # nothing the portal could check the date of birth against
            return [SlotSet(ACCESS_LINK, None), SlotSet(ACCESS_SLOT, "not_registered")]
        url, issued = issue_access_link(get_notification_services().portal, services.settings.portal_url,
                                        patient.id, tracker.sender_id)
        logger.info("Data access link %s issued from the chat", issued.token_id)
        # data/rules/privacy.yml answers with utter_data_access_link.
        return [SlotSet(ACCESS_LINK, url), SlotSet(ACCESS_SLOT, "link")]
