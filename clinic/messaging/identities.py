"""Which conversation a WhatsApp user's identifiers belong to (issue 19, usernames).

A user reaches the clinic by a phone number, a business-scoped user id (BSUID), or both;
since the username rollout the phone may be withheld, and a BSUID can change
(``user_changed_user_id``). The conversation must stay one all the same, because the
conversation id is what the clinic keys everything on (the Rasa tracker, consent, language
memory, patient records and appointments, reminders, tickets): keep it, and all of these
follow without moving a row.

``wa_identities`` maps the pseudonym of each identifier (``contact_key`` of the phone or of
the BSUID: the same HMAC as a conversation id, never the identifier itself) to the
conversation it belongs to. An inbound message is resolved in this order:

1. its BSUID is known → that conversation;
2. its phone is known → that conversation;
3. its phone has a conversation from before BSUIDs (a ``wa_contacts`` row whose id is the
   phone's pseudonym: that is how every conversation was keyed until now) → that one, so an
   existing patient keeps their history when a BSUID starts to appear beside the number;
4. otherwise a new conversation, keyed on the BSUID when there is one (it survives the phone
   being withheld), else on the phone: the id the door gave the message.

Then every identifier the message carried is linked to the conversation. A BSUID change
links the new BSUID to the old one's conversation (and the reply address moves to it).
The username (``profile.username``), when WhatsApp gives one, is kept Fernet-encrypted like
the address, so staff see who wrote without a phone number ever being shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from sqlalchemy import Column, DateTime, String, Text, delete, select
from sqlalchemy.orm import Session

from clinic.clock import utcnow
from clinic.db import Base
from clinic.messaging.store import ContactRow

PHONE, BSUID = "phone", "bsuid"


class IdentityRow(Base):
    __tablename__ = "wa_identities"

    identity_key = Column(String(64), primary_key=True)  # contact_key of the phone or BSUID
    kind = Column(String(8), nullable=False)  # phone | bsuid
    conversation_id = Column(String(64), nullable=False, index=True)
    username_encrypted = Column(Text, nullable=True)  # Fernet (ContactCipher), BSUID rows only
    updated_at = Column(DateTime(timezone=True), nullable=False)


@dataclasses.dataclass(frozen=True)
class Identity:
    """What one inbound message says about its sender, pseudonymised at the door."""

    bsuid_key: Optional[str] = None
    phone_key: Optional[str] = None
    username_encrypted: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return {"bsuid": self.bsuid_key, "phone": self.phone_key, "username": self.username_encrypted}

    @classmethod
    def from_json(cls, data: Any) -> Optional["Identity"]:
        if not isinstance(data, dict):
            return None
        fields = [data.get(name) if isinstance(data.get(name), str) else None
                  for name in ("bsuid", "phone", "username")]
        return cls(*fields) if fields[0] or fields[1] else None


def resolve(session: Session, identity: Identity, default: str) -> str:
    """The conversation of a message with ``identity`` (order in the module's docstring),
    its identifiers linked to it. ``default``: the id the door gave (step 4)."""
    conversation_id = _known(session, identity.bsuid_key) or _known(session, identity.phone_key)
    if conversation_id is None and identity.phone_key and session.get(ContactRow, identity.phone_key):
        conversation_id = identity.phone_key
    conversation_id = conversation_id or default
    _link(session, identity.bsuid_key, BSUID, conversation_id, identity.username_encrypted)
    _link(session, identity.phone_key, PHONE, conversation_id, None)
    return conversation_id


def change_identifier(session: Session, old_key: str, new_key: str, kind: str = BSUID,
                      phone_key: Optional[str] = None) -> str:
    """``user_changed_user_id`` (``kind`` bsuid) or ``user_changed_number`` (phone): the
    new identifier joins the old one's conversation (which stays linked, so a late message
    under the old id lands there too). Returns the conversation."""
    if kind == PHONE:
        conversation_id = resolve(session, Identity(phone_key=old_key), old_key)
        _link(session, new_key, PHONE, conversation_id, None)
        return conversation_id
    conversation_id = resolve(session, Identity(bsuid_key=old_key, phone_key=phone_key), old_key)
    old = session.get(IdentityRow, old_key)
    _link(session, new_key, BSUID, conversation_id, old.username_encrypted if old is not None else None)
    return conversation_id


# The journal line's fields (gateway/identities.py writes them at the door).
IDENTITY, IDENTIFIER_CHANGE = "identity", "user_id_change"


def settle_record(session: Session, record: Dict[str, Any]) -> Dict[str, Any]:
    """A journal message line with its conversation id settled (and its identifiers linked):
    by ``resolve``, or by ``change_identifier`` for a line announcing a change. A line
    without identities (written before them) is returned as it is."""
    if record.get("type") != "message":
        return record
    change = record.get(IDENTIFIER_CHANGE)
    identity = Identity.from_json(record.get(IDENTITY))
    conversation_id = record.get("conversation_id")
    if isinstance(change, dict) and isinstance(change.get("old"), str) and isinstance(change.get("new"), str):
        conversation_id = change_identifier(session, change["old"], change["new"], str(change.get("kind") or BSUID),
                                            identity.phone_key if identity else None)
    elif identity is not None and isinstance(conversation_id, str):
        conversation_id = resolve(session, identity, conversation_id)
    else:
        return record
    return {**record, "conversation_id": conversation_id}


def username_of(session: Session, conversation_id: str) -> Optional[str]:
    """The latest known username of a conversation (encrypted), or None."""
    return session.execute(
        select(IdentityRow.username_encrypted)
        .where(IdentityRow.conversation_id == conversation_id, IdentityRow.username_encrypted.is_not(None))
        .order_by(IdentityRow.updated_at.desc()).limit(1)
    ).scalar_one_or_none()


def forget(session: Session, conversation_id: str) -> int:
    """Erasure: the conversation's identifier links (their pseudonyms and the username)."""
    result = session.execute(delete(IdentityRow).where(IdentityRow.conversation_id == conversation_id))
    return int(result.rowcount or 0)


def count(session: Session, conversation_id: str) -> int:
    return len(session.execute(
        select(IdentityRow.identity_key).where(IdentityRow.conversation_id == conversation_id)).all())


def _known(session: Session, key: Optional[str]) -> Optional[str]:
    if not key:
        return None
    row = session.get(IdentityRow, key)
    return row.conversation_id if row is not None else None


def _link(session: Session, key: Optional[str], kind: str, conversation_id: str,
          username_encrypted: Optional[str]) -> None:
    if not key:
        return
    row = session.get(IdentityRow, key)
    if row is None:
        session.add(IdentityRow(identity_key=key, kind=kind, conversation_id=conversation_id,
                                username_encrypted=username_encrypted, updated_at=utcnow()))
        session.flush()  # the next message of the same batch finds it
        return
    changed = row.conversation_id != conversation_id or (
        username_encrypted is not None and row.username_encrypted != username_encrypted)
    if changed:
        row.conversation_id = conversation_id
        if username_encrypted is not None:
            row.username_encrypted = username_encrypted
        row.updated_at = utcnow()
