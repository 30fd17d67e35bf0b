"""The WhatsApp gateway, a process of its own without Rasa: ``python -m gateway``.

Why: in one process, everything WhatsApp asks of us — acknowledging webhooks, the inbox's
bookkeeping, marking messages read, sending replies, recording delivery statuses — shares
one interpreter (the GIL) with the model's inference, and the assistant answered fewer
messages a second through WhatsApp than through Rasa's REST channel (docs/measurements.md).
Here that work runs beside Rasa instead, on the machine's other cores:

- the door (door.py): signature, parsing, redaction, pseudonyms, the journal, 200 — the
  same code the Rasa-only development channel uses; statuses too;
- the inbox: each conversation's messages in arrival order, several conversations at once,
  crash recovery at start-up, a periodic sweep (WHATSAPP_INBOX_SWEEP_SECONDS);
- the relay (relay.py): each turn goes to the assistant as one request (``POST /webhooks/whatsapp/turn``, ids and
  redacted text only) signed with the gateway's own secret (WHATSAPP_INTERNAL_SECRET, never
  Meta's app secret), exactly the work Rasa's REST channel asks of it; the replies are
  rendered (render.py) and sent by the outbox (outbox.py, sender.py: rate-limited,
  retrying, recorded before the first is sent).

Nothing is lost when Rasa is down or restarting: the message stays in the inbox and the turn
is retried until the assistant answers. A turn the assistant answers with an error (HTTP 5xx:
it took the message and failed on it) is an attempt of that message; after
WHATSAPP_INBOUND_MAX_ATTEMPTS it is a dead letter (quarantine and a ticket, processor.py) and
the conversation moves on. Nothing is answered twice: a retried turn that Rasa
had already taken in returns the replies it gave then, and a turn's replies are recorded
before the first is sent, so after a crash exactly those that did not go out are sent
(gateway/outbox.py).

For busy numbers, run it as two processes: ``--role door --relay-url …`` (webhooks, journal,
inbox; a signed notice with conversation ids tells the relay, whose sweep makes a lost notice
good) and ``--role relay`` (turns and replies), so acknowledgements never share an
interpreter with relaying replies (docs/measurements.md).

Rasa runs with WHATSAPP_GATEWAY=1 (its channel then leaves the inbox to this process) and
Meta (or the simulator) calls this process's ``/webhooks/whatsapp/webhook``. Settings: the
channel's WHATSAPP_* variables, CLINIC_DATABASE_URL (the same database as the assistant),
``--rasa-url`` (RASA_URLS / RASA_URL: several Rasa replicas, comma-separated, share the turns;
relay.py, replicas.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any, List, Optional, Sequence, Set, Union

import aiohttp
from aiohttp import web

from clinic.db import database_problem, readiness_report
from clinic.inbox.patient_side import claimed_by_staff
from clinic.logs import configure_logging
from clinic.messaging.store import PendingMessage
from clinic.privacy import load_pseudonym_key
from clinic.redaction import redact
from gateway.door import Door
from gateway.flow_endpoint import add_route as add_flow_route
from gateway.flow_endpoint import build_endpoint as build_flow_endpoint
from gateway.processor import InboxProcessor, mark_read_best_effort
from gateway.relay import RETRY_MAX_SECONDS, TURN_TIMEOUT_SECONDS, Relay, TurnFailed, TurnRefused
from gateway.render import deliver_turn
from gateway.settings import FlowSettings, GatewayAddress, WhatsAppSettings
from gateway.worker import WorkerLoop
from whatsapp import signature
from whatsapp.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

logger = logging.getLogger(__name__)

__all__ = ["Ingress", "PATH", "RETRY_MAX_SECONDS", "TURN_TIMEOUT_SECONDS", "TurnFailed", "TurnRefused", "main"]

PATH = "/webhooks/whatsapp/webhook"
READY_TIMEOUT_SECONDS = 2.0


ROLES = ("all", "door", "relay")


class Ingress:
    """``role``: "all" (one process: door and relay), "door" (webhooks, journal, inbox; tells
    the relay which conversations have new messages) or "relay" (turns and replies)."""

    def __init__(self, channel: Door, rasa_url: Union[str, Sequence[str]], role: str = "all",
                 relay_url: Optional[str] = None) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if role == "door" and not relay_url:
            raise ValueError("a door needs --relay-url")
        self.role = role
        self.channel = channel
        self.relay_url = (relay_url or "").rstrip("/")
        # One Rasa or several replicas (RASA_URLS): the relay spreads turns over them.
        self.relay = Relay(rasa_url, channel.settings.internal_secret, channel.metrics,
                           lambda conversation_id: claimed_by_staff(channel.sessions, conversation_id))
        self.rasa_url = self.relay.rasa_url
        self._pending_notice: Set[str] = set()
        self._notice_wanted = asyncio.Event()
        self._notifier: Optional[asyncio.Task[Any]] = None
        self._notice_session: Optional[aiohttp.ClientSession] = None
        self.processor = InboxProcessor(channel.store, self._handle, channel.settings.gateway_turns_in_flight,
                                        channel.metrics,
                                        max_attempts=channel.settings.inbound_max_attempts,
                                        retry_seconds=channel.settings.inbound_retry_seconds,
                                        dead_letter=channel.dead_letter,
                                        lease_seconds=channel.settings.inbox_lease_seconds)
        channel.on_new_conversations = self._queue_notice if role == "door" else self._submit
        # Turns and replies run on a loop of their own (a lower-priority thread, worker.py),
        # so the acknowledgements on the web server's loop never queue behind them.
        self._worker = WorkerLoop("whatsapp-gateway", channel.settings.worker_niceness)

    def _submit(self, conversations: List[str]) -> None:
        if self._worker.running:
            for conversation_id in conversations:
                self._worker.call_soon(self.processor.submit, conversation_id)

    # ── door → relay ───────────────────────────────────────────────────────────────────────
    def _queue_notice(self, conversations: List[str]) -> None:
        if conversations:
            self._pending_notice.update(conversations)
            self._notice_wanted.set()

    async def _notify_forever(self) -> None:
        """One notice carries every conversation that got messages since the last one, so a
        burst of webhooks costs the relay a few requests. A lost notice is made good by the
        relay's sweep of the inbox (WHATSAPP_INBOX_SWEEP_SECONDS)."""
        session = self._notice_session
        if session is None:  # start() opens it before this task
            return
        while True:
            await self._notice_wanted.wait()
            self._notice_wanted.clear()
            conversations, self._pending_notice = sorted(self._pending_notice), set()
            body = json.dumps({"conversations": conversations}).encode()
            headers = {signature.HEADER: signature.sign(body, self.channel.settings.internal_secret),
                       "Content-Type": "application/json"}
            try:
                async with session.post(f"{self.relay_url}/webhooks/whatsapp/process", data=body,
                                                     headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                    if reply.status != 200:
                        logger.warning("The relay refused a notice (HTTP %s); its sweep will find the "
                                       "messages", reply.status)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                self.channel.metrics.increment("process_notice_failed")
                logger.warning("Could not notify the relay (%s); its sweep will find the messages",
                               type(error).__name__)

    async def process_notice(self, request: web.Request) -> web.Response:
        """The relay's side: "these conversations have new messages in the inbox" (ids only,
        signed with WHATSAPP_INTERNAL_SECRET, like the turns)."""
        body = await request.read()
        if not signature.verify(body, request.headers.get(signature.HEADER), self.channel.settings.internal_secret):
            self.channel.metrics.increment("process_notice_rejected")
            return web.Response(text="invalid signature", status=403)
        try:
            conversations = [str(c) for c in json.loads(body)["conversations"]][:1000]
        except (ValueError, KeyError, TypeError):
            return web.Response(text="malformed notice", status=400)
        self._submit(conversations)
        return web.Response(text="OK")

    # ── one message: mark read, the assistant's turn, the replies ───────────────────────────
    async def _handle(self, message: PendingMessage) -> None:
        sender = self.channel.sender
        turn = message.turn
        marking = asyncio.ensure_future(mark_read_best_effort(sender, turn.wamid, self.channel.metrics))
        reply = await self.relay.turn(turn)
        await marking
        # Every reply recorded before the first is sent, then sent in order; a crash in
        # between loses none (gateway/outbox.py).
        await deliver_turn(self.channel.outbox, turn, reply)
        # A photo, voice note, video, document or sticker: fetched and stored encrypted for
        # staff once the replies are on their way (gateway/media.py); never raises.
        await self.channel.media.take(turn, message.id)

    # ── lifecycle ──────────────────────────────────────────────────────────────────────────
    async def start(self, _app: web.Application) -> None:
        if self.role != "relay":
            # Load the redaction recognizers now, not on the first patient's message; then
            # webhooks acknowledged before a crash but not yet in the inbox go in first.
            await asyncio.to_thread(redact, "warm-up 4111 1111 1111 1111")
            await self.channel.drain_journal_at_start()
        if self.role != "door":
            # Recovery (in each conversation's order), then the sweep.
            self._worker.start()
            await asyncio.wrap_future(self._worker.submit(self._start_processing()))
        if self.role == "door":
            self._notice_session = aiohttp.ClientSession()
            self._notifier = asyncio.get_running_loop().create_task(self._notify_forever())
        if self.role != "relay":
            self.channel.start_flushing()

    async def _start_processing(self) -> None:
        self.relay.start()
        store = self.channel.store

        async def already_replied(message: PendingMessage) -> bool:
            # Interrupted after its replies were recorded: done here, the outbox sends those
            # that did not go out. Otherwise it is requeued and its turn says it is a retry
            # (see ``_turn``): Rasa answers with the replies it gave, if it took it in.
            return await asyncio.to_thread(store.turn_recorded, message.turn.wamid)

        # Replies recorded but not sent before a crash go first, each conversation in order.
        await self.channel.outbox.resume()
        await self.processor.recover(already_replied)
        self.processor.start_sweeping(self.channel.settings.inbox_sweep_seconds)
        # Dead letters' later rounds, and replies nobody is sending.
        self.channel.outbox.start_sweeping()
        # Every other sender's messages (staff replies, reminders, notifications, surveys,
        # broadcasts), queued in the database by their processes: sent from here, with this
        # process's one Graph client and its one rate limit (outbox.py, clinic/messaging/outbox_queue.py).
        self.channel.outbox.start_draining(self.channel.settings.outbox_poll_seconds)
        # Media left pending (a transient Graph failure, a crash mid-download).
        self.channel.media.start_sweeping(self.channel.settings.media_sweep_seconds)
        # Staff's call actions (connect, accept, terminate…), sent as the inbox queues them.
        self.channel.calls.start_draining()

    async def _stop_processing(self) -> None:
        await self.processor.idle()
        await self.channel.media.stop()
        await self.channel.calls.stop()
        await self.relay.close()
        await self.channel.close_client()

    async def stop(self, _app: web.Application) -> None:
        if self.role != "relay":
            await self.channel.stop_flushing()
        if self._notifier is not None:
            await asyncio.sleep(0.1)  # let the last notice go
            self._notifier.cancel()
            if self._notice_session is not None:
                await self._notice_session.close()
        if self._worker.running:
            try:
                await asyncio.wait_for(asyncio.wrap_future(self._worker.submit(self._stop_processing())), 30)
            except asyncio.TimeoutError:
                logger.warning("Stopping with turns in flight; they stay in the inbox for the next start")
            self._worker.stop()

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

    async def healthz(self, _request: web.Request) -> web.Response:
        """Liveness: the process and its web loop answer."""
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Readiness: the clinic database answers and, for the roles that run turns (all,
        relay), so does Rasa's WhatsApp channel (its turn endpoint's blueprint)."""
        problems = {"database": await asyncio.to_thread(database_problem, self.channel.sessions)}
        if self.role != "door":
            problems["rasa"] = await self._rasa_problem()
        status, body = readiness_report(problems)
        return web.json_response(body, status=status)

    async def _rasa_problem(self) -> Optional[str]:
        """None when at least one Rasa replica answers (the relay sends turns to those that
        do); else the first replica's problem."""
        async with aiohttp.ClientSession() as session:
            problems = await asyncio.gather(*(self._replica_problem(session, replica.url)
                                              for replica in self.relay.replicas.replicas))
        return None if None in problems else problems[0]

    @staticmethod
    async def _replica_problem(session: aiohttp.ClientSession, url: str) -> Optional[str]:
        try:
            async with session.get(f"{url}/webhooks/whatsapp/",
                                   timeout=aiohttp.ClientTimeout(total=READY_TIMEOUT_SECONDS)) as reply:
                return None if reply.status == 200 else f"HTTP {reply.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError) as error:
            return f"unreachable ({type(error).__name__})"

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.channel.metrics_report())

    async def prometheus(self, _request: web.Request) -> web.Response:
        body = await self.channel.metrics_exposition()
        # CONTENT_TYPE carries its own charset parameter: aiohttp wants it as a header.
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    def app(self) -> web.Application:
        # Meta's batches are at most 3 MB; receive_webhook answers 413 above its own limit.
        app = web.Application(client_max_size=4 * 1024 * 1024)
        if self.role != "relay":
            app.router.add_get(PATH, self.verify)
            app.router.add_post(PATH, self.receive)
            # The booking Flow's data endpoint, beside the webhook (when a Flows key is set).
            add_flow_route(app, build_flow_endpoint(FlowSettings.load(), self.channel.settings.app_secret,
                                                    self.channel.sessions, load_pseudonym_key()))
        if self.role == "relay":
            app.router.add_post("/webhooks/whatsapp/process", self.process_notice)
        app.router.add_get("/webhooks/whatsapp/", self.health)
        app.router.add_get("/healthz", self.healthz)  # liveness
        app.router.add_get("/readyz", self.readyz)  # readiness: database (and Rasa) answer
        app.router.add_get("/webhooks/whatsapp/metrics", self.metrics)  # JSON: counters and states
        app.router.add_get("/metrics", self.prometheus)  # Prometheus's text format
        # aiohttp 3.9's annotations of Signal.append do not accept a plain handler (its own
        # documented use); fixed in later aiohttp releases.
        app.on_startup.append(self.start)  # type: ignore[arg-type]
        app.on_cleanup.append(self.stop)  # type: ignore[arg-type]
        return app


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    address = GatewayAddress.load()
    parser.add_argument("--host", default=address.host)
    parser.add_argument("--port", type=int, default=address.port)
    parser.add_argument("--rasa-url", default=",".join(address.rasa_urls),
                        help="Rasa, or several replicas comma-separated (default: RASA_URLS, else RASA_URL); "
                             "the relay spreads turns over them")
    parser.add_argument("--role", choices=ROLES, default="all",
                        help="all: one process; door + relay: two processes, so acknowledgements never "
                             "share an interpreter with relaying replies (busy numbers)")
    parser.add_argument("--relay-url", help="for --role door: where the relay listens")
    args = parser.parse_args(argv)
    configure_logging("gateway" if args.role == "all" else f"gateway-{args.role}")
    if args.role == "door" and not args.relay_url:
        parser.error("--role door needs --relay-url")
    channel = Door(WhatsAppSettings.load(), door="relay" if args.role == "relay" else "ingress")
    ingress = Ingress(channel, args.rasa_url, role=args.role, relay_url=args.relay_url)
    web.run_app(ingress.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
