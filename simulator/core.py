"""The simulated Meta: what happens when the business sends, when a user sends, and the
status lifecycle in between. HTTP handlers (graph_api.py, control.py) stay thin."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import random
import secrets
from typing import Any, Dict, List, Optional

from whatsapp import limits

from .config import RUNTIME_KEYS, SimulatorConfig
from .graph_errors import GraphError, invalid
from .state import Delivery, InboundMessage, Media, OutboundMessage, State, User, new_wamid, now
from .templates import TemplateRegistry
from .user_messages import SpecError, build_message, choices_of, new_media_id, tap_spec
from .usernames import contact_of, status_recipient, withhold_phone
from .validation import SendRequest, interactive_choices, normalise_phone, validate_send
from .webhooks import (
    Dispatcher,
    dumps,
    envelope,
    handshake,
    messages_value,
    statuses_value,
)

STATUS_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3}
MEDIA_URL_TTL = 300  # "the URL expires after 5 minutes"
WINDOW = limits.CUSTOMER_SERVICE_WINDOW_SECONDS


def valid_wa_id(wa_id: str) -> str:
    digits = normalise_phone(str(wa_id))
    if not digits.isdigit() or not 7 <= len(digits) <= 15:
        raise SpecError(f"wa_id must be 7-15 digits, got {wa_id!r}")
    return digits


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._initial_runtime = {key: copy.deepcopy(getattr(config, key)) for key in RUNTIME_KEYS}
        self.state = State(config.max_records)
        self.templates = TemplateRegistry(config.templates_path)
        self.dispatcher = Dispatcher(config, self.state)
        self._status_chain: Dict[str, Delivery] = {}

    async def start(self) -> None:
        await self.dispatcher.start()

    async def close(self) -> None:
        self.state.bus.close_all()
        await self.dispatcher.close()

    async def reset(self) -> None:
        tasks = list(self.dispatcher.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for key, value in self._initial_runtime.items():
            setattr(self.config, key, copy.deepcopy(value))
        self.state.reset()
        self._status_chain.clear()
        self.state.bus.publish(None, "reset", {})

    def publish(self, wa_id: Optional[str], event: str, data: Dict[str, Any]) -> None:
        self.state.bus.publish(wa_id, event, data)

    # ------------------------------------------------------------------ auth

    def check_token(self, header: Optional[str]) -> None:
        if not header:
            raise GraphError(190, message="An access token is required to request this resource.",
                             reason="auth")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.config.access_token.encode()
        ):
            raise GraphError(190, reason="auth")

    def check_phone_number_id(self, phone_number_id: str) -> None:
        if phone_number_id != self.config.phone_number_id:
            raise GraphError(
                100,
                type="GraphMethodException",
                error_subcode=33,
                reason="unknown_phone_number_id",
                message=(
                    f"Unsupported post request. Object with ID '{phone_number_id}' does not exist, "
                    "cannot be loaded due to missing permissions, or does not support this "
                    "operation. Please read the Graph API documentation at "
                    "https://developers.facebook.com/docs/graph-api"
                ),
            )

    # ------------------------------------------------------------------ business sends

    async def apply_fault(self, endpoint: str, wa_id: Optional[str],
                          late: Optional[List[float]] = None) -> Optional[int]:
        """Sleep/raise as an injected fault says; return a code for a later `failed` status.
        ``late`` (sends): receives the rule's ``late_ms``, for the caller to answer late."""
        await self._latency(endpoint)
        rule = self.state.take_fault(endpoint, wa_id)
        if rule is None:
            return None
        if late is not None and rule.late_ms:
            late.append(rule.late_ms)
        if rule.delay_ms:
            await asyncio.sleep(rule.delay_ms / 1000)
        if rule.code is not None and rule.mode == "error":
            error = rule.error()
            error.reason = "fault"
            raise error
        if rule.mode == "failed_status":
            return rule.code or 131026
        return None

    async def _latency(self, endpoint: str) -> None:
        """The configured Graph latency (``latency_ms``: [low, high], uniform), before the
        request is handled: a client cut off meanwhile leaves nothing sent."""
        span = self.config.latency_ms
        if span and endpoint == "messages":
            await asyncio.sleep(random.uniform(span[0], span[1]) / 1000)

    def _check_throughput(self) -> None:
        t = now()
        window = self.state.requests
        window.append(t)
        while window and t - window[0] > 1.0:
            window.popleft()
        limit = self.config.throughput_limit
        if limit and len(window) > limit:
            raise GraphError(130429, reason="throughput")

    def _check_pair_rate(self, wa_id: str) -> None:
        t = now()
        sends = self.state.pair_sends[wa_id]
        while sends and t - sends[0] > limits.PAIR_RATE_WINDOW_SECONDS:
            sends.popleft()
        limit = self.config.pair_rate_limit
        if limit and len(sends) >= limit:
            raise GraphError(131056, reason="pair_rate")

    async def send(self, body: Any) -> Dict[str, Any]:
        """POST /{version}/{phone_number_id}/messages after auth. Raises GraphError."""
        guess = None
        if isinstance(body, dict) and isinstance(body.get("to"), str):
            guess = normalise_phone(body["to"])
        late: List[float] = []
        fail_code = await self.apply_fault("messages", guess, late)
        self._check_throughput()
        try:
            request = validate_send(body, self.templates)
        except GraphError as exc:
            exc.reason = exc.reason or ("template" if 132000 <= exc.code < 133000 else "validation")
            raise
        if request.kind == "read":
            return self._read_receipt(request)
        user = self._recipient(request)
        if request.type != "template" and not user.window_open(window=WINDOW):
            raise GraphError(131047, reason="window")
        self._check_pair_rate(user.wa_id)
        accepted = self._accept(request, user, fail_code)
        if late:
            # Taken (statuses are on their way), answered late: a client that gave up
            # cannot know whether the message went out.
            await asyncio.sleep(late[0] / 1000)
        return accepted

    def _recipient(self, request: SendRequest) -> User:
        if request.wa_id:
            return self.state.user(request.wa_id)
        user = self.state.user_by_bsuid(request.extra["recipient"])
        if user is None:
            raise invalid("recipient", "does not match any WhatsApp user", code=131009)
        return user

    def _accept(self, request: SendRequest, user: User, fail_code: Optional[int]) -> Dict[str, Any]:
        wamid = new_wamid(user.wa_id, outbound=True)
        category = request.template.category if request.template else "service"
        in_window = user.window_open(window=WINDOW)
        free = category == "service" or (in_window and category == "utility")
        message = OutboundMessage(
            seq=self.state.next_seq(),
            to=request.to or request.extra.get("recipient"),
            wa_id=user.wa_id,
            type=request.type,
            payload=request.body,
            wamid=wamid,
            rendered=request.rendered,
            category=category,
            context_id=request.context_id,
            pricing={
                "billable": not free,
                "pricing_model": "PMP",
                "category": category,
                "type": "free_customer_service" if free else "regular",
            },
            conversation_id=secrets.token_hex(16),
            fail_code=fail_code,
        )
        self.state.add_outbound(message)
        self.state.pair_sends[user.wa_id].append(now())
        if self.state.typing_until.pop(user.wa_id, None) is not None:
            self.publish(user.wa_id, "typing", {"wa_id": user.wa_id, "on": False})
        self.publish(user.wa_id, "business_message", self.chat_item(message))
        self.dispatcher.spawn(self._status_flow(message, fail_code))
        contact_item: Dict[str, Any] = {"input": message.to, "wa_id": user.wa_id}
        if request.extra.get("recipient"):
            contact_item = {"input": message.to, "user_id": request.extra["recipient"]}
        return {
            "messaging_product": "whatsapp",
            "contacts": [contact_item],
            "messages": [{"id": wamid}],
        }

    def record_rejected(self, body: Any, error: GraphError) -> OutboundMessage:
        to = body.get("to") if isinstance(body, dict) else None
        message = OutboundMessage(
            seq=self.state.next_seq(),
            to=to if isinstance(to, str) else None,
            wa_id=normalise_phone(to) if isinstance(to, str) else None,
            type=(body.get("type", "text") if "status" not in body else "read")
            if isinstance(body, dict) else None,
            payload=body,
            status="rejected",
            http_status=error.status,
            error=error.body()["error"],
            reason=error.reason or "validation",
        )
        self.state.add_outbound(message)
        return message

    # ------------------------------------------------------------------ statuses

    async def _status_flow(self, message: OutboundMessage, fail_code: Optional[int]) -> None:
        await asyncio.sleep(0)  # let the HTTP response go first
        self.advance(message, "sent")
        if message.type == "reaction":  # reactions only get `sent`
            return
        await asyncio.sleep(self.config.delivered_delay)
        if fail_code is not None:
            if message.status not in ("failed", "rejected"):
                self.set_status(message, "failed", error=GraphError(fail_code))
            return
        self.advance(message, "delivered")
        if self.config.auto_read is not None:
            await asyncio.sleep(self.config.auto_read)
            self.advance(message, "read")

    def advance(self, message: OutboundMessage, target: str) -> List[str]:
        """Move a business message forward (never backwards), emitting each missing status."""
        if message.status in ("failed", "rejected") or message.wamid is None:
            return []
        if (message.type == "reaction" or message.fail_code is not None) and target != "sent":
            target = "sent"  # reactions only get `sent`; doomed messages never reach the user
        emitted = []
        for status in ("sent", "delivered", "read"):
            if STATUS_RANK[status] > STATUS_RANK[target]:
                break
            if STATUS_RANK[status] > STATUS_RANK.get(message.status, 0):
                self.set_status(message, status)
                emitted.append(status)
        return emitted

    def status_object(self, message: OutboundMessage, status: str,
                      error: Optional[GraphError] = None) -> Dict[str, Any]:
        t = now()
        obj: Dict[str, Any] = {
            "id": message.wamid,
            "status": status,
            "timestamp": str(int(t)),
            "recipient_id": message.wa_id,
        }
        if error is not None:
            obj["errors"] = [error.webhook_error()]
        elif status in ("sent", "delivered") and message.type != "reaction":
            conversation: Dict[str, Any] = {"id": message.conversation_id}
            if status == "sent":
                conversation["expiration_timestamp"] = str(int(t + WINDOW))
            conversation["origin"] = {"type": message.category}
            obj["conversation"] = conversation
            obj["pricing"] = dict(message.pricing or {})
        status_recipient(self.state.users.get(message.wa_id or ""), obj)
        payload = message.payload if isinstance(message.payload, dict) else {}
        if payload.get("biz_opaque_callback_data"):
            obj["biz_opaque_callback_data"] = payload["biz_opaque_callback_data"]
        return obj

    def set_status(self, message: OutboundMessage, status: str, *, error: Optional[GraphError] = None,
                   deliver: bool = True, signature: str = "valid") -> Dict[str, Any]:
        obj = self.status_object(message, status, error)
        if status != "played":  # `played` (voice notes) is extra, not a step of the lifecycle
            message.status = status
        record: Dict[str, Any] = {"status": status, "at": now()}
        if error is not None:
            record["error"] = obj["errors"][0]
        message.statuses.append(record)
        if deliver:
            delivery = self._deliver_statuses([obj], signature=signature)
            record["delivery_id"] = delivery.id
        self.publish(message.wa_id, "business_status",
                     {"wamid": message.wamid, "status": status, "error": record.get("error")})
        return obj

    def _deliver_statuses(self, objs: List[Dict[str, Any]], signature: str = "valid") -> Delivery:
        body = dumps(envelope(self.config, [statuses_value(self.config, objs)]))
        wamids = [obj["id"] for obj in objs]
        after = self._status_chain.get(wamids[0]) if len(wamids) == 1 else None
        delivery = self.dispatcher.send("status", body, wamids, signature=signature, after=after)
        for wamid in wamids:
            self._status_chain[wamid] = delivery
        while len(self._status_chain) > self.config.max_records:
            self._status_chain.pop(next(iter(self._status_chain)))
        return delivery

    def emit_statuses(self, items: List[Dict[str, Any]], batch: bool = False,
                      signature: str = "valid") -> Dict[str, Any]:
        """Control API: send given statuses (e.g. `failed` with a code), optionally batched."""
        objs = []
        deliveries = []
        for item in items:
            wamid = item.get("message_id") or item.get("wamid")
            message = self.state.by_wamid.get(wamid)
            if message is None:
                raise SpecError(f"no business message with id {wamid!r}")
            status = item.get("status", "failed")
            if status not in ("sent", "delivered", "read", "failed", "played"):
                raise SpecError("status must be sent, delivered, read, failed or played")
            error = None
            if status == "failed":
                error = GraphError(int(item.get("code", 131026)), details=item.get("details"))
            obj = self.set_status(message, status, error=error, deliver=not batch, signature=signature)
            objs.append(obj)
            if not batch:
                deliveries.append(message.statuses[-1].get("delivery_id"))
        if batch and objs:
            delivery = self._deliver_statuses(objs, signature=signature)
            for obj in objs:
                self.state.by_wamid[obj["id"]].statuses[-1]["delivery_id"] = delivery.id
            deliveries = [delivery.id]
        return {"statuses": objs, "deliveries": deliveries}

    def user_read(self, wa_id: str, wamids: Optional[List[str]] = None) -> List[str]:
        """The user has seen business messages (the chat page displayed them)."""
        changed = []
        for message in list(self.state.outbound.values()):
            if message.wa_id != wa_id or message.wamid is None:
                continue
            if wamids is not None and message.wamid not in wamids:
                continue
            if self.advance(message, "read"):
                changed.append(message.wamid)
        return changed

    # ------------------------------------------------------------------ read receipts / typing

    def _read_receipt(self, request: SendRequest) -> Dict[str, Any]:
        target = self.state.inbound.get(request.message_id)
        if target is None:
            raise invalid("message_id", f"does not match any message received by this phone number: {request.message_id!r}")
        for message in self.state.inbound.values():
            if message.wa_id == target.wa_id and message.seq <= target.seq and message.status != "read":
                message.status = "read"
                self.publish(message.wa_id, "user_status", {"wamid": message.wamid, "status": "read"})
        receipt = {"message_id": request.message_id, "wa_id": target.wa_id, "typing": request.typing,
                   "at": now()}
        self.state.read_receipts.append(receipt)
        del self.state.read_receipts[: -self.config.max_records]
        if request.typing:
            self.state.typing_until[target.wa_id] = now() + self.config.typing_timeout
            self.publish(target.wa_id, "typing", {"wa_id": target.wa_id, "on": True,
                                                  "timeout": self.config.typing_timeout})
        return {"success": True}

    def typing(self, wa_id: str) -> bool:
        until = self.state.typing_until.get(wa_id)
        return until is not None and until > now()

    # ------------------------------------------------------------------ user messages

    def ensure_user(self, wa_id: str, name: Optional[str], user_id: Any) -> User:
        user = self.state.user(valid_wa_id(wa_id), name, default_name=self.config.default_user_name
                               if wa_id == self.config.default_user_wa_id else "WhatsApp User")
        if user_id is True and not user.user_id:
            user.user_id = "US." + str(10**19 + secrets.randbelow(9 * 10**19))
        elif isinstance(user_id, str) and user_id:
            user.user_id = user_id
        return user

    def _inbound(self, user: User, spec: Dict[str, Any]) -> InboundMessage:
        wamid = new_wamid(user.wa_id, outbound=False)
        t = now()
        message = build_message(
            spec,
            wa_id=user.wa_id,
            wamid=wamid,
            timestamp=str(int(t)),
            business_phone=self.config.display_phone_number,
            store_media=self._store_media,
            from_user_id=user.user_id,
        )
        withhold_phone(user, message)
        inbound = InboundMessage(seq=self.state.next_seq(), wamid=message.get("id", wamid),
                                 wa_id=user.wa_id, message=message, created_at=t)
        self.state.add_inbound(inbound)
        user.last_inbound_at = t  # opens/refreshes the 24-hour window
        self.publish(user.wa_id, "user_message", self.chat_item(inbound))
        return inbound

    def _inbound_done(self, delivery: Delivery) -> None:
        if delivery.state != "delivered":
            return
        for wamid in delivery.wamids:
            inbound = self.state.inbound.get(wamid)
            if inbound is not None and inbound.status == "sent":
                inbound.status = "delivered"
                self.publish(inbound.wa_id, "user_status", {"wamid": wamid, "status": "delivered"})

    async def _wait(self, delivery: Delivery, wait: str) -> None:
        timeout = self.config.webhook_timeout + 1
        if wait == "final":
            timeout = timeout * (1 + len(self.config.retry_schedule)) + sum(self.config.retry_schedule)
        event = {"none": None, "first": delivery.first_attempt, "final": delivery.done}.get(wait)
        if wait not in ("none", "first", "final"):
            raise SpecError("wait must be none, first or final")
        if event is not None:
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def user_message(self, wa_id: str, spec: Dict[str, Any], *, name: Optional[str] = None,
                           user_id: Any = None, signature: str = "valid",
                           wait: str = "first") -> Dict[str, Any]:
        user = self.ensure_user(wa_id, name, user_id)
        inbound = self._inbound(user, spec)
        contacts = [] if inbound.message.get("type") == "system" else [
            contact_of(user)
        ]
        body = dumps(envelope(self.config, [messages_value(self.config, contacts, [inbound.message])]))
        delivery = self.dispatcher.send("message", body, [inbound.wamid], signature=signature,
                                        on_done=self._inbound_done)
        inbound.delivery_id = delivery.id
        await self._wait(delivery, wait)
        return {"wamid": inbound.wamid, "message": inbound.message, "webhook": delivery.describe()}

    async def batch(self, items: List[Dict[str, Any]], *, layout: str = "messages",
                    signature: str = "valid", wait: str = "first") -> Dict[str, Any]:
        if not isinstance(items, list) or not items:
            raise SpecError("messages must be a non-empty array")
        if layout not in ("messages", "changes", "entries"):
            raise SpecError("layout must be messages, changes or entries")
        if len(items) > limits.WEBHOOK_UPDATES_MAX:
            raise SpecError(f"at most {limits.WEBHOOK_UPDATES_MAX} updates per webhook")
        built = []
        for item in items:
            if not isinstance(item, dict) or not item.get("from"):
                raise SpecError("each batch item needs from (the user's wa_id) and a message spec")
            user = self.ensure_user(item["from"], item.get("name"), item.get("user_id"))
            spec = {k: v for k, v in item.items() if k not in ("from", "name", "user_id")}
            built.append((user, self._inbound(user, spec)))
        if layout == "messages":
            contacts, seen = [], set()
            for user, _ in built:
                if user.wa_id not in seen:
                    seen.add(user.wa_id)
                    contacts.append(contact_of(user))
            values = [messages_value(self.config, contacts, [i.message for _, i in built])]
        else:
            values = [
                messages_value(self.config, [contact_of(u)], [i.message])
                for u, i in built
            ]
        body = dumps(envelope(self.config, values, layout="entries" if layout == "entries" else "changes"))
        wamids = [i.wamid for _, i in built]
        delivery = self.dispatcher.send("batch", body, wamids, signature=signature,
                                        on_done=self._inbound_done)
        for _, inbound in built:
            inbound.delivery_id = delivery.id
        await self._wait(delivery, wait)
        return {"wamids": wamids, "messages": [i.message for _, i in built],
                "webhook": delivery.describe()}

    async def tap(self, wa_id: str, message_id: str, choice_id: str, *, wait: str = "first",
                  signature: str = "valid") -> Dict[str, Any]:
        message = self.state.by_wamid.get(message_id)
        if message is None or message.wa_id != valid_wa_id(wa_id):
            raise SpecError(f"no business message {message_id!r} to {wa_id}")
        choices = choices_of(message.payload, message.rendered, interactive_choices)
        choice = next((c for c in choices if c["id"] == choice_id), None) or next(
            (c for c in choices if c["title"] == choice_id), None
        )
        if choice is None:
            options = ", ".join(repr(c["id"]) for c in choices) or "none"
            raise SpecError(f"message has no button/row {choice_id!r} (choices: {options})")
        return await self.user_message(wa_id, tap_spec(choice, message_id), wait=wait,
                                       signature=signature)

    async def raw_webhook(self, data: Dict[str, Any], signature: str = "valid",
                          wait: str = "first") -> Dict[str, Any]:
        if isinstance(data.get("body"), str):
            body = data["body"].encode("utf-8")
        elif isinstance(data.get("envelope"), dict):
            body = dumps(data["envelope"])
        elif isinstance(data.get("value"), dict):
            body = dumps(envelope(self.config, [data["value"]], field=data.get("field", "messages")))
        else:
            raise SpecError("give body (exact text), envelope (object) or value (change value)")
        delivery = self.dispatcher.send("raw", body, list(data.get("wamids") or []),
                                        signature=signature, on_done=self._inbound_done)
        await self._wait(delivery, wait)
        return {"webhook": delivery.describe()}

    async def redeliver(self, *, wamid: Optional[str] = None, delivery_id: Optional[str] = None,
                        wait: str = "first") -> Dict[str, Any]:
        deliveries = list(self.state.deliveries.values())
        original: Optional[Delivery] = None
        if delivery_id:
            original = self.state.deliveries.get(delivery_id)
        elif wamid:
            matching = [d for d in deliveries if wamid in d.wamids]
            preferred = [d for d in matching if d.kind in ("message", "batch", "raw")]
            original = (preferred or matching or [None])[-1]
        else:
            original = next((d for d in reversed(deliveries) if d.kind in ("message", "batch", "raw")), None)
        if original is None:
            raise SpecError("nothing to redeliver")
        while original.redelivery_of and original.redelivery_of in self.state.deliveries:
            original = self.state.deliveries[original.redelivery_of]
        delivery = self.dispatcher.send("redelivery", original.body, original.wamids,
                                        redelivery_of=original, on_done=self._inbound_done)
        await self._wait(delivery, wait)
        return {"webhook": delivery.describe()}

    # ------------------------------------------------------------------ media

    def _store_media(self, media: Media) -> None:
        self.state.media[media.id] = media

    def upload_media(self, data: bytes, mime_type: str, filename: Optional[str] = None) -> str:
        media = Media(id=new_media_id(), data=data, mime_type=mime_type,
                      sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                      filename=filename)
        self._store_media(media)
        return media.id

    def _media_hash(self, media_id: str, ext: str) -> str:
        return hmac.new(self.config.app_secret.encode(), f"{media_id}:{ext}".encode(),
                        hashlib.sha256).hexdigest()[:24]

    def media_info(self, media_id: str, origin: str) -> Dict[str, Any]:
        media = self.state.media.get(media_id)
        if media is None:
            raise GraphError(
                100, type="GraphMethodException", error_subcode=33,
                message=(f"Unsupported get request. Object with ID '{media_id}' does not exist, "
                         "cannot be loaded due to missing permissions, or does not support this operation."),
            )
        ext = str(int(now()))
        url = (f"{origin}/whatsapp_business/attachments/?mid={media.id}&ext={ext}"
               f"&hash={self._media_hash(media.id, ext)}")
        return {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": len(media.data),
            "id": media.id,
        }

    def media_download(self, mid: str, ext: str, digest: str) -> Media:
        media = self.state.media.get(mid)
        if media is None or not hmac.compare_digest(digest.encode(), self._media_hash(mid, ext).encode()):
            raise LookupError("unknown media URL")
        try:
            issued = int(ext)
        except ValueError:
            raise LookupError("unknown media URL") from None
        if now() - issued > MEDIA_URL_TTL:
            raise LookupError("media URL expired (5 minutes): ask GET /{media_id} again")
        return media

    # ------------------------------------------------------------------ views

    def chat_item(self, message: Any) -> Dict[str, Any]:
        if isinstance(message, InboundMessage):
            return {"direction": "in", "wamid": message.wamid, "message": message.message,
                    "status": message.status, "time": message.created_at, "seq": message.seq}
        return {
            "direction": "out",
            "wamid": message.wamid,
            "type": message.type,
            "payload": message.payload,
            "rendered": message.rendered,
            "status": message.status,
            "time": message.created_at,
            "seq": message.seq,
            "context_id": message.context_id,
        }

    def conversation(self, wa_id: str) -> List[Dict[str, Any]]:
        items: List[Any] = [m for m in self.state.inbound.values() if m.wa_id == wa_id]
        items += [m for m in self.state.outbound.values() if m.wa_id == wa_id and m.wamid]
        items.sort(key=lambda m: m.seq)
        return [self.chat_item(m) for m in items]

    def set_window(self, wa_id: str, data: Dict[str, Any]) -> Dict[str, Any]:
        user = self.ensure_user(wa_id, data.get("name"), None)
        if "age_seconds" in data:
            user.last_inbound_at = now() - float(data["age_seconds"])
        elif "last_inbound_at" in data:
            value = data["last_inbound_at"]
            user.last_inbound_at = None if value is None else float(value)
        elif data.get("open") is False or data.get("close") is True:
            user.last_inbound_at = None
        elif data.get("open") is True:
            user.last_inbound_at = now()
        else:
            raise SpecError("give age_seconds, last_inbound_at, open or close")
        return user.describe(WINDOW)

    async def handshake(self) -> Dict[str, Any]:
        if not self.config.webhook_url:
            return {"ok": False, "error": "no webhook URL configured"}
        if not self.config.verify_token:
            return {"ok": False, "error": "no verify token: set WHATSAPP_VERIFY_TOKEN"}
        assert self.dispatcher.session is not None
        challenge = str(secrets.randbelow(9 * 10**9) + 10**9)
        return await handshake(self.dispatcher.session, self.config.webhook_url,
                               self.config.verify_token, challenge)

    def health(self) -> Dict[str, Any]:
        return {
            "status": "ok",
            "business_name": self.config.business_name,
            "phone_number_id": self.config.phone_number_id,
            "webhook_url": self.config.webhook_url,
            "users": len(self.state.users),
            "business_messages": len(self.state.outbound),
            "user_messages": len(self.state.inbound),
            "webhooks": len(self.state.deliveries),
            "webhooks_pending": sum(1 for d in self.state.deliveries.values() if d.state == "pending"),
            "chat_subscribers": self.state.bus.count,
        }
