"""Builds the inbox from the environment: database, encryption key, Rasa HTTP API, reply
gateway, session secret.

Settings: ``CLINIC_DATABASE_URL``, ``CLINIC_ENCRYPTION_KEY`` (or var/encryption.key),
``CLINIC_ENCRYPTION_KEYS`` (or var/clinic-encryption.keys: the keyring sealing message texts),
``CLINIC_DOCUMENT_KEY`` (or var/document.key: patients' uploaded documents and the media
they send in the chat, which the gateway stores in the media folder beside the database),
``RASA_URL`` + ``RASA_AUTH_TOKEN``, ``INBOX_SECRET_KEY`` (or var/inbox-session.key),
``INBOX_COOKIE_SECURE=1`` behind HTTPS, ``INBOX_OVERDUE_MINUTES``,
``INBOX_IDLE_TIMEOUT_MINUTES`` (admins can change both on the settings page),
``INBOX_REPLY_GATEWAY``: ``whatsapp`` (the default when ``WHATSAPP_ACCESS_TOKEN`` and
``WHATSAPP_PHONE_NUMBER_ID`` are set: replies are queued for the WhatsApp gateway's outbox,
see inbox/whatsapp_gateway.py), ``tracker`` (demos without WhatsApp: replies are appended to the
Rasa conversation only) or ``none``. ``INBOX_TEMPLATES_FILE``: the approved templates staff
may send outside the 24-hour window (clinic/inbox/templates.py).
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Optional

from clinic.at_rest import clinic_sealer
from clinic.at_rest_rotation import check_keys
from clinic.db import VAR_DIR, create_schema, make_engine, make_session_factory
from clinic.inbox.audit import AuditLog
from clinic.inbox.model import Delivery
from clinic.inbox.ports import ReplyGateway, ReplyResult
from clinic.inbox.rasa_http import RasaConversationControl, RasaHttp, RasaTranscriptSource
from clinic.inbox.service import Inbox
from clinic.inbox.staff import StaffAccounts
from clinic.messaging.media import MediaStore, media_directory
from clinic.portal.uploads import DocumentCipher, Uploads
from clinic.privacy import ContactCipher, secret_from
from inbox.settings import InboxProcessSettings, environment

SESSION_KEY_FILE = VAR_DIR / "inbox-session.key"


class NotConnectedReplyGateway:
    """Until the WhatsApp gateway is wired: the reply is kept, staff are told plainly."""

    def send(self, conversation_id: str, text: str, inbox_message_id: int) -> ReplyResult:
        return ReplyResult(Delivery.FAILED, "replies are not connected to WhatsApp on this server yet")


@dataclasses.dataclass
class Built:
    inbox: Inbox
    staff: StaffAccounts
    audit: AuditLog
    secret_key: str
    cookie_secure: bool
    documents: Optional[Uploads] = None  # patients' uploads (clinic/portal/uploads.py), read-only here
    media: Optional[MediaStore] = None  # media patients sent in the chat (clinic/messaging/media.py)


def build(database_url: Optional[str] = None, replies: Optional[ReplyGateway] = None,
          environ: Optional[dict] = None) -> Built:
    environ = environment(environ)
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    settings = InboxProcessSettings.load(environ)
    cipher = ContactCipher.from_environment(environ)
    rasa = RasaHttp(settings.rasa_url, settings.rasa_token)
    if replies is None:
        from inbox.whatsapp_gateway import build_gateway

        choice = settings.reply_gateway
        if choice == "whatsapp":
            replies = build_gateway(environ, sessions, cipher, rasa)
        elif choice == "tracker":
            from clinic.inbox.testing import RecordingReplyGateway

            replies = RecordingReplyGateway(rasa)
        else:
            replies = NotConnectedReplyGateway()
    sealer = clinic_sealer(environ)
    check_keys(engine, sealer)  # a missing or wrong key stops the inbox here, naming the key id
    inbox = Inbox(sessions, cipher, transcripts=RasaTranscriptSource(rasa),
                  control=RasaConversationControl(rasa), replies=replies, sealer=sealer)
    secret = secret_from(environ, "INBOX_SECRET_KEY", SESSION_KEY_FILE,
                          lambda: secrets.token_hex(32).encode()).decode()
    documents = DocumentCipher.from_environment(environ)
    return Built(inbox, StaffAccounts(sessions, cipher), AuditLog(sessions), secret,
                 settings.cookie_secure,
                 Uploads(sessions, documents),
                 MediaStore(sessions, media_directory(str(engine.url)), documents))
