"""The door's side of usernames and business-scoped user ids (issue 19; the mapping itself
is clinic/messaging/identities.py).

At the door (no database yet) a message's journal line gets the pseudonyms of the
identifiers it carried, the username encrypted, and, for ``user_changed_user_id``, the old
and the new BSUID's pseudonyms. When the journal is applied, ``resolve_records`` settles
each line's conversation id from ``wa_identities`` before the inbox sees it, so one person
keeps one conversation whichever identifiers WhatsApp gives this time.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from sqlalchemy.orm import sessionmaker

from clinic.messaging import identities
from clinic.privacy import ContactCipher
from whatsapp.inbound import InboundMessage, SystemMessage
from whatsapp.users import SYSTEM_USER_CHANGED_NUMBER, SYSTEM_USER_CHANGED_USER_ID

IDENTITY, USER_ID_CHANGE = identities.IDENTITY, identities.IDENTIFIER_CHANGE


def phone_of(message: InboundMessage) -> str | None:
    """The user's phone number (wa_id), when WhatsApp gave it: a username-only user has none."""
    contact = message.contact
    return message.from_ or (contact.wa_id if contact else None)


def bsuid_of(message: InboundMessage) -> str | None:
    contact = message.contact
    return message.from_user_id or (contact.user_id if contact else None)


def identity_fields(message: InboundMessage, pseudonym: Callable[[str], str],
                    cipher: ContactCipher) -> Dict[str, Any]:
    """What a message's journal line adds: its identifiers' pseudonyms (never the ids),
    and for a BSUID change the change and the new address to reply to."""
    phone, bsuid = phone_of(message), bsuid_of(message)
    username = message.contact.username if message.contact else None
    identity = identities.Identity(
        bsuid_key=pseudonym(bsuid) if bsuid else None,
        phone_key=pseudonym(phone) if phone else None,
        username_encrypted=cipher.encrypt(username) if username else None,
    )
    fields: Dict[str, Any] = {IDENTITY: identity.to_json()}
    if not isinstance(message, SystemMessage):
        return fields
    if message.system_type == SYSTEM_USER_CHANGED_USER_ID and bsuid and message.new_user_id:
        fields[USER_ID_CHANGE] = {"old": pseudonym(bsuid), "new": pseudonym(message.new_user_id),
                                  "kind": identities.BSUID}
        # Replies go to the phone when WhatsApp shares it, else to the new BSUID: the old
        # one no longer reaches the user.
        fields["address_encrypted"] = cipher.encrypt(phone or message.new_user_id)
    elif message.system_type == SYSTEM_USER_CHANGED_NUMBER and phone and message.new_wa_id:
        # The same for a new number (Meta's older notice): the conversation stays one.
        fields[USER_ID_CHANGE] = {"old": pseudonym(phone), "new": pseudonym(message.new_wa_id),
                                  "kind": identities.PHONE}
        fields["address_encrypted"] = cipher.encrypt(message.new_wa_id)
    return fields


def resolve_records(sessions: sessionmaker, records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The journal's records with each message's conversation id settled (and the links
    recorded), in one transaction, in the order the messages came."""
    if not any(isinstance(r, dict) and r.get("type") == "message" and r.get(IDENTITY) for r in records):
        return records  # lines from before usernames: their ids stand
    with sessions() as session, session.begin():
        return [identities.settle_record(session, r) if isinstance(r, dict) else r for r in records]
