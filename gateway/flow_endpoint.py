"""The booking Flow's data endpoint on the gateway's public door: ``POST /flows/booking``.

WhatsApp calls it, encrypted (whatsapp/flows_crypto.py), when the patient opens the booking
Flow (``INIT``), moves between its screens (``data_exchange``, ``BACK``) and for its
health check (``ping``). Answers, encrypted with the request's key, come from the live
calendar (clinic/booking_flow/screens.py) in the patient's language. Errors are Meta's HTTP
statuses: 432 when the request's signature (X-Hub-Signature-256, the app secret, as on the
webhook) does not verify, 421 when it does not decrypt with our key (WhatsApp then fetches
the public key again), 427 when the flow token is not one we issued, is expired or names
another conversation, 400 for a request of the wrong shape. Nothing of the patient's
answers is logged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from clinic.booking_flow import tokens
from clinic.booking_flow.screens import BookingFlowError, BookingFlowScreens
from clinic.scheduling.model import SchedulingError
from gateway.settings import FlowSettings
from whatsapp import signature
from whatsapp.flows import (
    CANNOT_DECRYPT,
    ERROR_ACKNOWLEDGED,
    PING_ANSWER,
    SIGNATURE_FAILED,
    TOKEN_NO_LONGER_VALID,
    FlowRequestError,
    parse_request,
)
from whatsapp.flows_crypto import (
    FlowDecryptError,
    decrypt_request,
    encrypt_response,
    load_private_key,
)

logger = logging.getLogger(__name__)

PATH = "/flows/booking"
BODY_MAX_BYTES = 64 * 1024  # a Flow request is a few kilobytes


class FlowEndpoint:
    def __init__(self, private_key: rsa.RSAPrivateKey, screens: BookingFlowScreens, app_secret: str,
                 pseudonym_key: bytes, clock: Optional[Callable[[], dt.datetime]] = None) -> None:
        self._key = private_key
        self._screens = screens
        self._app_secret = app_secret
        self._pseudonym_key = pseudonym_key
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if len(body) > BODY_MAX_BYTES:
            return web.Response(status=413, text="too large")
        if not signature.verify(body, request.headers.get(signature.HEADER), self._app_secret):
            return web.Response(status=SIGNATURE_FAILED, text="signature verification failed")
        status, text = await asyncio.to_thread(self.answer, body)
        return web.Response(status=status, text=text, content_type="text/plain")

    def answer(self, body: bytes) -> tuple[int, str]:
        """``(status, text)`` for a request body whose signature was checked."""
        try:
            envelope = decrypt_request(json.loads(body), self._key)
        except (FlowDecryptError, ValueError, AttributeError) as error:
            logger.warning("Flow request could not be decrypted: %s", error)
            return CANNOT_DECRYPT, "cannot decrypt"
        try:
            request = parse_request(envelope.payload)
        except FlowRequestError as error:
            return 400, str(error)

        def sealed(answer: Dict[str, Any]) -> tuple[int, str]:
            return 200, encrypt_response(answer, envelope.aes_key, envelope.iv)

        if request.action == "ping":
            return sealed(PING_ANSWER)
        if request.is_error_notification:
            logger.warning("WhatsApp reported an error in the booking Flow (screen %s)", request.screen)
            return sealed(ERROR_ACKNOWLEDGED)
        try:
            grant = tokens.verify(str(request.flow_token), self._pseudonym_key, self._clock())
        except tokens.InvalidFlowToken as error:
            logger.info("Flow token refused: %s", error)
            return TOKEN_NO_LONGER_VALID, "flow token no longer valid"
        try:
            answer = self._screens.answer(request.action, request.screen, request.data, grant)
        except (BookingFlowError, SchedulingError) as error:
            return 400, str(error)
        return sealed({"version": request.version, **answer})


def build_endpoint(settings: FlowSettings, app_secret: str, sessions: Any,
                   pseudonym_key: bytes) -> Optional[FlowEndpoint]:
    """The endpoint when a Flows key is configured (``None`` otherwise)."""
    if not settings.private_key_file:
        return None
    from clinic.container import build_scheduling  # the clinic's calendar, as the actions build it
    from clinic.settings import load_settings

    key = load_private_key(Path(settings.private_key_file).read_bytes(),
                           settings.passphrase.encode() if settings.passphrase else None)
    clinic = load_settings()
    screens = BookingFlowScreens(build_scheduling(sessions, clinic), clinic.timezone, pseudonym_key)
    return FlowEndpoint(key, screens, app_secret, pseudonym_key)


def add_route(app: web.Application, endpoint: Optional[FlowEndpoint]) -> None:
    if endpoint is not None:
        app.router.add_post(PATH, endpoint.handle)
