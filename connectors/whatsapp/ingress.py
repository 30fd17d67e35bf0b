"""The WhatsApp webhook door as a process of its own: ``python -m connectors.whatsapp.ingress``.

Why: in one process, acknowledging Meta's webhooks competes with the model's inference for
the same interpreter (the GIL) and the same cores, and at 100-200 messages a second the
acknowledgement's tail latency grows (docs/measurements.md). Here the door does only what
must happen before the 200 — check the signature, parse, redact, pseudonymise, append to its
journal (whatsapp/journal.py) — with the very code of the Rasa channel
(``WhatsAppInput.receive_webhook``); then it moves the records into the durable inbox and tells
the assistant which conversations have new messages (``POST
/webhooks/whatsapp/process``, signed with the app secret, ids only). If that notice is lost,
the assistant's periodic look at the inbox finds the messages anyway
(WHATSAPP_INBOX_SWEEP_SECONDS); nothing is lost and the inbox's unique wamid keeps anything
from being processed twice.

Meta (or the simulator) then calls this process's ``/webhooks/whatsapp/webhook`` instead of
Rasa's. Settings: the channel's WHATSAPP_* variables, CLINIC_DATABASE_URL (the same database
as the assistant), ``--rasa-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from typing import List, Optional, Set

import aiohttp
from aiohttp import web

from clinic.redaction import redact
from connectors.whatsapp.channel import WhatsAppInput
from connectors.whatsapp.settings import WhatsAppSettings
from whatsapp import signature

logger = logging.getLogger(__name__)

PATH = "/webhooks/whatsapp/webhook"


class Ingress:
    def __init__(self, channel: WhatsAppInput, rasa_url: str) -> None:
        self.channel = channel
        self.rasa_url = rasa_url.rstrip("/")
        self._pending: Set[str] = set()
        self._wake = asyncio.Event()
        self._session: Optional[aiohttp.ClientSession] = None
        self._notifier: Optional[asyncio.Task] = None
        channel.on_new_conversations = self._queue

    def _queue(self, conversations: List[str]) -> None:
        if conversations:
            self._pending.update(conversations)
            self._wake.set()

    async def _notify_forever(self) -> None:
        """Coalesces notices: one request carries every conversation that got messages
        since the last one, so a burst of webhooks costs the assistant a few requests."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            conversations, self._pending = sorted(self._pending), set()
            body = json.dumps({"conversations": conversations}).encode()
            headers = {signature.HEADER: signature.sign(body, self.channel.settings.app_secret),
                       "Content-Type": "application/json"}
            try:
                async with self._session.post(f"{self.rasa_url}/webhooks/whatsapp/process", data=body,
                                              headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    if reply.status != 200:
                        logger.warning("The assistant refused a notice (HTTP %s); its inbox sweep will "
                                       "find the messages", reply.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                self.channel.metrics.increment("process_notice_failed")
                logger.warning("Could not notify the assistant (%s); its inbox sweep will find the "
                               "messages", type(error).__name__)

    async def start(self, _app: web.Application) -> None:
        # Load the redaction recognizers now, not on the first patient's message.
        await asyncio.to_thread(redact, "warm-up 4111 1111 1111 1111")
        self._session = aiohttp.ClientSession()
        self._notifier = asyncio.get_running_loop().create_task(self._notify_forever())
        # Moves journalled webhooks into the inbox (leftovers from a crash first), then notifies.
        self.channel.start_flushing()

    async def stop(self, _app: web.Application) -> None:
        await self.channel.stop_flushing()
        await asyncio.sleep(0)  # let the notifier send the last notice
        if self._notifier is not None:
            self._notifier.cancel()
        if self._session is not None:
            await self._session.close()

    async def verify(self, request: web.Request) -> web.Response:
        status, text = self.channel.handshake(request.query.get("hub.mode"), request.query.get("hub.verify_token"),
                                              request.query.get("hub.challenge"))
        return web.Response(text=text, status=status)

    async def receive(self, request: web.Request) -> web.Response:
        status, text = await self.channel.receive_webhook(await request.read(),
                                                          request.headers.get(signature.HEADER))
        return web.Response(text=text, status=status)

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "counters": self.channel.metrics.snapshot()})

    def app(self) -> web.Application:
        # Meta's batches are at most 3 MB; receive_webhook answers 413 above its own limit.
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get(PATH, self.verify)
        app.router.add_post(PATH, self.receive)
        app.router.add_get("/webhooks/whatsapp/", self.health)
        app.on_startup.append(self.start)
        app.on_cleanup.append(self.stop)
        return app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m connectors.whatsapp.ingress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("WHATSAPP_INGRESS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("WHATSAPP_INGRESS_PORT", "5006")))
    parser.add_argument("--rasa-url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    ingress = Ingress(WhatsAppInput(WhatsAppSettings.load(), door="ingress"), args.rasa_url)
    web.run_app(ingress.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
