"""A single-use link to send documents securely, offered when a patient sends a photo or a
file in the chat (issue 12, follow-up of defect 6).

The assistant reads only text, and WhatsApp is not where the clinic keeps documents, so a
photo of an insurance card or a referral letter gets ``utter_media_not_supported`` (domain/
channel.yml). ``action_offer_upload_link`` runs just before that reply (data/rules/
channel.yml) and sets the slot ``upload_link`` the reply quotes: a link from
clinic.portal.uploads.issue_upload_link, bound to this conversation so that staff find the
upload in the inbox next to it, and to the patient when we know them.

Only a photo or a file gets a link: a voice note, a sticker or a contact card is not a
document, and an unused link would only add a live token. Without a link (those kinds, or
the database failing) ``upload_link`` is cleared, never left from an earlier message, and
the reply's variation without a link points to the patient portal instead.
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
from clinic.portal.uploads import issue_upload_link

logger = logging.getLogger(__name__)

SLOT = "upload_link"
# media_kind values (domain/channel.yml) that can be a photo or a scan of a document.
DOCUMENT_KINDS = frozenset({"image", "document"})


class ActionOfferUploadLink(Action):
    def name(self) -> Text:
        return "action_offer_upload_link"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        if tracker.get_slot("media_kind") not in DOCUMENT_KINDS:
            return [SlotSet(SLOT, None)]
        try:
            link = await asyncio.to_thread(self._mint, tracker)
        except Exception:  # noqa: BLE001 - the patient still gets the reply, without a link
            logger.exception("Could not issue an upload link")
            return [SlotSet(SLOT, None)]
        return [SlotSet(SLOT, link)]

    @staticmethod
    def _mint(tracker: Tracker) -> str:
        services = get_services()
        patient = services.scheduling.find_patient(services.contact_key_for(tracker))
        url, _issued = issue_upload_link(get_notification_services().portal, services.settings.portal_url,
                                         tracker.sender_id, kind="document",
                                         patient_id=patient.id if patient else None, source="chat")
        return url
