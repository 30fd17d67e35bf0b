"""Stand-ins for the conversation side, for the inbox's own tests and demos only.

``FakeRasa`` is a real HTTP server (a thread) answering the two Rasa HTTP API routes the
inbox uses, with Rasa's token check and pause semantics, so the tests exercise the real
``rasa_http`` clients over the network. ``RecordingReplyGateway`` "delivers" a staff reply
by appending it to the conversation's tracker, refusing (like the WhatsApp sender) when the
patient's last message is older than 24 hours. Production wires the WhatsApp gateway.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, unquote, urlparse

from clinic.inbox.model import Delivery
from clinic.inbox.ports import OUTSIDE_WINDOW_DETAIL, ReplyResult
from clinic.inbox.rasa_http import RasaHttp, staff_reply_event

WINDOW = dt.timedelta(hours=24)


class FakeRasa:
    def __init__(self, token: str = "test-rasa-token") -> None:
        self.token = token
        self.trackers: Dict[str, Dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.down = False  # answer 503 to everything (Rasa restarting)
        self.triggered: List[tuple[str, str]] = []  # (conversation id, intent) of trigger_intent
        self._server: Optional[ThreadingHTTPServer] = None

    # ── what a test does ────────────────────────────────────────────────────────────────
    def say(self, conversation_id: str, text: str, at: Optional[dt.datetime] = None,
            bot_answer: str = "(the assistant answers)", message_id: Optional[str] = None) -> bool:
        """The patient writes; the bot answers unless paused. Returns whether it answered.
        ``message_id``: the WhatsApp id Rasa keeps with the user event (a photo's media)."""
        stamp = (at or dt.datetime.now(dt.timezone.utc)).timestamp()
        with self.lock:
            tracker = self._tracker(conversation_id)
            event = {"event": "user", "text": text, "timestamp": stamp}
            if message_id:
                event["message_id"] = message_id
            tracker["events"].append(event)
            if tracker["paused"]:
                return False
            tracker["events"].append({"event": "bot", "text": bot_answer, "timestamp": stamp + 0.5})
            return True

    def paused(self, conversation_id: str) -> bool:
        with self.lock:
            return self._tracker(conversation_id)["paused"]

    def events(self, conversation_id: str) -> List[Dict[str, Any]]:
        with self.lock:
            return list(self._tracker(conversation_id)["events"])

    # ── server ──────────────────────────────────────────────────────────────────────────
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _route(self) -> Optional[tuple[str, str]]:
                url = urlparse(self.path)
                if fake.down:
                    self._reply(503, {"status": "failure"})
                    return None
                if parse_qs(url.query).get("token", [None])[0] != fake.token:
                    self._reply(401, {"status": "failure", "reason": "NotAuthenticated"})
                    return None
                parts = url.path.split("/")
                if len(parts) < 4 or parts[1] != "conversations":
                    self._reply(404, {})
                    return None
                return unquote(parts[2]), "/".join(parts[3:])

            def do_GET(self) -> None:  # noqa: N802
                route = self._route()
                if route and route[1] == "tracker":
                    with fake.lock:
                        tracker = fake._tracker(route[0])
                        self._reply(200, {"sender_id": route[0], "paused": tracker["paused"],
                                          "events": list(tracker["events"])})
                elif route:
                    self._reply(404, {})

            def do_POST(self) -> None:  # noqa: N802
                route = self._route()
                if not route:
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
                if route[1] == "trigger_intent" and isinstance(body, dict) and body.get("name"):
                    with fake.lock:
                        fake.triggered.append((route[0], body["name"]))
                        paused = fake._tracker(route[0])["paused"]
                    self._reply(200, {"tracker": {"sender_id": route[0], "paused": paused}, "messages": []})
                    return
                if route[1] != "tracker/events":
                    self._reply(404, {})
                    return
                events = body if isinstance(body, list) else [body]
                with fake.lock:
                    tracker = fake._tracker(route[0])
                    for event in events:
                        if not isinstance(event, dict) or "event" not in event:
                            self._reply(400, {"reason": "BadRequest"})
                            return
                        if event["event"] == "pause":
                            tracker["paused"] = True
                        elif event["event"] == "resume":
                            tracker["paused"] = False
                        tracker["events"].append({**event, "timestamp": event.get("timestamp") or time.time()})
                    self._reply(200, {"sender_id": route[0], "paused": tracker["paused"]})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _tracker(self, conversation_id: str) -> Dict[str, Any]:
        return self.trackers.setdefault(conversation_id, {"paused": False, "events": []})


class RecordingReplyGateway:
    """Appends the reply to the tracker (the transcript shows it once) and keeps a list of
    what was delivered; refuses outside the 24-hour window like the WhatsApp sender."""

    def __init__(self, rasa: RasaHttp) -> None:
        self._rasa = rasa
        self.delivered: List[tuple[str, str, int]] = []
        # (conversation id, template name, WhatsApp language code, values) of each template
        self.templates_sent: List[tuple[str, str, str, tuple]] = []

    def send(self, conversation_id: str, text: str, inbox_message_id: int) -> ReplyResult:
        try:
            events = self._rasa.tracker(conversation_id).get("events") or []
        except Exception as exc:  # noqa: BLE001
            return ReplyResult(Delivery.FAILED, f"could not reach the conversation ({exc})"[:300])
        last_inbound = max((e.get("timestamp") or 0 for e in events if e.get("event") == "user"), default=None)
        now = dt.datetime.now(dt.timezone.utc)
        if last_inbound is None or now - dt.datetime.fromtimestamp(last_inbound, dt.timezone.utc) > WINDOW:
            return ReplyResult(Delivery.REFUSED, OUTSIDE_WINDOW_DETAIL)
        try:
            self._rasa.append(conversation_id, [staff_reply_event(text, inbox_message_id, now)])
        except Exception as exc:  # noqa: BLE001
            return ReplyResult(Delivery.FAILED, f"could not record the reply ({exc})"[:300])
        self.delivered.append((conversation_id, text, inbox_message_id))
        return ReplyResult(Delivery.SENT)

    def send_template(self, conversation_id: str, template, values, rendered: str,
                      inbox_message_id: int) -> ReplyResult:
        """Templates may be sent outside the window: appended without the window check."""
        try:
            self._rasa.append(conversation_id, [staff_reply_event(rendered, inbox_message_id)])
        except Exception as exc:  # noqa: BLE001
            return ReplyResult(Delivery.FAILED, f"could not record the template ({exc})"[:300])
        self.delivered.append((conversation_id, f"[template {template.name}] {rendered}", inbox_message_id))
        self.templates_sent.append((conversation_id, template.name, template.language, tuple(values)))
        return ReplyResult(Delivery.SENT)
