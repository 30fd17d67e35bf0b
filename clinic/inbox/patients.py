"""Who the patient behind a ticket is, as far as staff may see it.

A ticket only holds the conversation's pseudonym (a 64-character keyed hash for WhatsApp):
unreadable, and nothing staff can say aloud or tell apart at a glance. Staff get instead:

- ``friendly_label``: "Patient 4F2K", derived deterministically from the pseudonym, so the
  same conversation always has the same label (queue, ticket page, API) and it reveals
  nothing the pseudonym doesn't;
- on the ticket page (an audited view: ``ticket_viewed``), the name and date of birth from
  the clinic's patient record when the contact has one (``patients``, written when the
  patient books: ``PatientRow.contact_key`` is the same pseudonymous contact key the handoff
  stores on the ticket), and how many earlier tickets the conversation had.

The phone number is never read here: ``wa_contacts`` keeps it encrypted for the sender
only, and no staff role may see it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clinic.inbox.tables import TicketRow
from clinic.messaging import identities
from clinic.privacy import ContactCipher
from clinic.scheduling.tables import PatientRow

# Crockford's base 32: no I, L, O or U, so a label read aloud or copied by hand is not
# mistaken for another ("1" vs "I", "0" vs "O").
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LABEL_CHARACTERS = 4  # 32**4 ≈ 1 million labels: a clash among a day's tickets is unlikely


def friendly_label(conversation_id: str) -> str:
    """"Patient 4F2K": the same for the same conversation, every time and in every process.
    Hashed again (not a prefix of the id) so ids of any shape (a REST demo's "web-1") spread
    evenly over the labels."""
    number = int.from_bytes(hashlib.sha256(conversation_id.encode("utf-8")).digest()[:8], "big")
    code = ""
    for _ in range(LABEL_CHARACTERS):
        number, digit = divmod(number, 32)
        code += _ALPHABET[digit]
    return f"Patient {code}"


@dataclasses.dataclass(frozen=True)
class PatientFacts:
    """What the ticket page says about the patient."""

    label: str
    name: Optional[str]  # from the clinic's patient record, when the contact has one
    birth_date: Optional[dt.date]
    earlier_tickets: int  # tickets of this conversation opened before this one
    # The WhatsApp username, when the patient has one (issue 19): a username user may share
    # no phone number, and staff never see one anyway.
    username: Optional[str] = None

    @property
    def known(self) -> bool:
        return self.name is not None


def patient_facts(session: Session, ticket: TicketRow, cipher: Optional[ContactCipher] = None) -> PatientFacts:
    record = None
    if ticket.contact_key:
        record = session.execute(
            select(PatientRow.name, PatientRow.birth_date).where(PatientRow.contact_key == ticket.contact_key)
        ).first()
    earlier = session.execute(
        select(func.count()).select_from(TicketRow).where(
            TicketRow.conversation_id == ticket.conversation_id, TicketRow.id < ticket.id)
    ).scalar_one()
    username = identities.username_of(session, ticket.conversation_id) if cipher is not None else None
    return PatientFacts(label=friendly_label(ticket.conversation_id),
                        name=record.name if record else None,
                        birth_date=record.birth_date if record else None,
                        earlier_tickets=int(earlier),
                        username=cipher.decrypt(username) if cipher is not None and username else None)
