"""The staff inbox process's own settings: the one place in this package that reads the
environment. (What the clinic domain needs — the encryption and session keys, the
WhatsApp channel's settings for the reply gateway — is read by the clinic's and the
gateway's own loaders, handed the same environment.)"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional

REPLY_GATEWAYS = ("whatsapp", "tracker", "none")


class InboxSettingsError(ValueError):
    """A setting of the inbox process is malformed; the message names it."""


@dataclasses.dataclass(frozen=True)
class InboxProcessSettings:
    host: str = "127.0.0.1"
    port: int = 8070
    # Rasa's HTTP API (pause/resume a conversation, transcripts); its token when Rasa runs
    # with --auth-token.
    rasa_url: Optional[str] = None
    rasa_token: Optional[str] = dataclasses.field(default=None, repr=False)
    # whatsapp (the default when the WhatsApp channel is configured), tracker (demos without
    # WhatsApp: replies only appended to the Rasa conversation) or none.
    reply_gateway: str = "none"
    cookie_secure: bool = False

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "InboxProcessSettings":
        environ = os.environ if environ is None else environ
        try:
            port = int(environ.get("INBOX_PORT") or cls.port)
        except ValueError as error:
            raise InboxSettingsError("INBOX_PORT must be a port number") from error
        whatsapp = bool(environ.get("WHATSAPP_ACCESS_TOKEN") and environ.get("WHATSAPP_PHONE_NUMBER_ID"))
        reply_gateway = environ.get("INBOX_REPLY_GATEWAY") or ("whatsapp" if whatsapp else "none")
        if reply_gateway not in REPLY_GATEWAYS:
            raise InboxSettingsError(f"INBOX_REPLY_GATEWAY must be one of {', '.join(REPLY_GATEWAYS)}")
        return cls(host=environ.get("INBOX_HOST") or cls.host, port=port,
                   rasa_url=environ.get("RASA_URL") or None, rasa_token=environ.get("RASA_AUTH_TOKEN") or None,
                   reply_gateway=reply_gateway,
                   cookie_secure=environ.get("INBOX_COOKIE_SECURE", "") in ("1", "true", "yes"))


def new_staff_password(environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """``INBOX_NEW_PASSWORD``: the password of an account created by ``python -m inbox.users``
    without a terminal (scripts); None: ask for it."""
    return (os.environ if environ is None else environ).get("INBOX_NEW_PASSWORD") or None


def environment(environ: Optional[Mapping[str, str]] = None) -> Mapping[str, str]:
    """The environment the inbox is built from (inbox/wiring.py hands it to the clinic's and
    the gateway's loaders): the process's, unless a test gives its own."""
    return os.environ if environ is None else environ
