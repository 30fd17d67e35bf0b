"""Webhook envelopes and their delivery, as Meta does it (reference §2 and §4):

- ``whatsapp_business_account`` envelopes, key order as in Meta's examples;
- bytes serialised like Meta's (compact, ASCII with ``\\uXXXX`` escapes, ``\\/``), so a
  connector that re-serialises parsed JSON before checking the signature fails as it would
  in production;
- ``X-Hub-Signature-256`` over the exact bytes sent;
- success only on HTTP 200; otherwise retried on a (configurable) schedule, then dropped;
- every attempt recorded with its HTTP status and latency.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional

import aiohttp

from whatsapp.signature import HEADER, sign

from .config import SimulatorConfig
from .state import Attempt, Delivery, State, now

log = logging.getLogger("simulator.webhooks")
USER_AGENT = "facebookexternalua"


def dumps(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def metadata(config: SimulatorConfig) -> Dict[str, str]:
    return {
        "display_phone_number": config.display_phone_number,
        "phone_number_id": config.phone_number_id,
    }


def envelope(config: SimulatorConfig, values: Iterable[Dict[str, Any]], layout: str = "changes",
             field: str = "messages") -> Dict[str, Any]:
    """Wrap change values: one entry with one change per value, or one entry per value."""
    changes = [{"value": value, "field": field} for value in values]
    if layout == "entries":
        entries = [{"id": config.waba_id, "changes": [change]} for change in changes]
    else:
        entries = [{"id": config.waba_id, "changes": changes}]
    return {"object": "whatsapp_business_account", "entry": entries}


def contact(name: str, wa_id: str, user_id: Optional[str] = None) -> Dict[str, Any]:
    item: Dict[str, Any] = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        item["user_id"] = user_id
    return item


def messages_value(config: SimulatorConfig, contacts: List[Dict[str, Any]],
                   messages: List[Dict[str, Any]]) -> Dict[str, Any]:
    value: Dict[str, Any] = {"messaging_product": "whatsapp", "metadata": metadata(config)}
    if contacts:  # system messages carry no contacts array
        value["contacts"] = contacts
    value["messages"] = messages
    return value


def statuses_value(config: SimulatorConfig, statuses: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"messaging_product": "whatsapp", "metadata": metadata(config), "statuses": statuses}


def signature_for(body: bytes, secret: str, mode: str) -> Optional[str]:
    if mode == "missing":
        return None
    if mode == "invalid":
        return sign(body + b"tampered", secret)
    if mode != "valid":
        raise ValueError("signature must be valid, invalid or missing")
    return sign(body, secret)


class Dispatcher:
    """Posts envelopes to the webhook URL with Meta's retry semantics."""

    def __init__(self, config: SimulatorConfig, state: State) -> None:
        self.config = config
        self.state = state
        self.session: Optional[aiohttp.ClientSession] = None
        self.tasks: set = set()

    async def start(self) -> None:
        # trust_env=False: never route the callback through a proxy from the environment.
        self.session = aiohttp.ClientSession(trust_env=False)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    def spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def send(
        self,
        kind: str,
        body: bytes,
        wamids: List[str],
        *,
        signature: str = "valid",
        redelivery_of: Optional[Delivery] = None,
        after: Optional[Delivery] = None,
        on_done: Optional[Callable[[Delivery], None]] = None,
    ) -> Delivery:
        """Record a delivery and start posting it. ``after``: wait for that delivery's first
        attempt first (keeps a message's statuses in order)."""
        if redelivery_of is not None:
            header = redelivery_of.signature
        else:
            header = signature_for(body, self.config.app_secret, signature)
        delivery = Delivery(
            id=self.state.next_delivery_id(),
            kind=kind,
            url=self.config.webhook_url,
            body=body,
            signature=header,
            wamids=list(wamids),
            redelivery_of=redelivery_of.id if redelivery_of else None,
        )
        self.state.add_delivery(delivery)
        self.spawn(self._run(delivery, after, on_done))
        return delivery

    async def _run(self, delivery: Delivery, after: Optional[Delivery],
                   on_done: Optional[Callable[[Delivery], None]]) -> None:
        try:
            if after is not None and not after.first_attempt.is_set():
                try:
                    await asyncio.wait_for(after.first_attempt.wait(), self.config.webhook_timeout + 1)
                except asyncio.TimeoutError:
                    pass
            if not delivery.url:
                delivery.state = "no_url"
                return
            number = 0
            delays = [0.0] + list(self.config.retry_schedule)
            for delay in delays:
                if delay:
                    await asyncio.sleep(delay)
                number += 1
                attempt = await self._attempt(delivery, number)
                delivery.first_attempt.set()
                if attempt.status == 200:
                    delivery.state = "delivered"
                    break
            else:
                delivery.state = "dropped"
        finally:
            delivery.first_attempt.set()
            delivery.done.set()
            if on_done is not None:
                try:
                    on_done(delivery)
                except Exception:  # pragma: no cover - a callback bug must not kill delivery
                    log.exception("delivery callback failed")

    async def _attempt(self, delivery: Delivery, number: int) -> Attempt:
        assert self.session is not None, "dispatcher not started"
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if delivery.signature is not None:
            headers[HEADER] = delivery.signature
        loop = asyncio.get_running_loop()
        started_at = now()
        t0 = loop.time()
        status: Optional[int] = None
        error: Optional[str] = None
        response: Optional[str] = None
        try:
            async with self.session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.config.webhook_timeout),
            ) as resp:
                status = resp.status
                response = (await resp.content.read(500)).decode("utf-8", "replace")
        except asyncio.TimeoutError:
            error = f"timeout after {self.config.webhook_timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = round((loop.time() - t0) * 1000, 3)
        attempt = Attempt(number=number, at=started_at, status=status, latency_ms=latency,
                          error=error, response=response)
        delivery.attempts.append(attempt)
        if status != 200:
            log.info("webhook %s attempt %d -> %s", delivery.id, number, status or error)
        return attempt


async def handshake(session: aiohttp.ClientSession, url: str, verify_token: str,
                    challenge: str, timeout: float = 10.0) -> Dict[str, Any]:
    """Meta's verification request: GET url?hub.mode=subscribe&hub.verify_token&hub.challenge."""
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    result: Dict[str, Any] = {"url": url, "challenge": challenge, "ok": False}
    try:
        async with session.get(url, params=params, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = (await resp.content.read(1000)).decode("utf-8", "replace")
            result.update(status=resp.status, body=text)
            result["ok"] = resp.status == 200 and text == challenge
            if resp.status == 200 and not result["ok"]:
                result["error"] = "HTTP 200 but the body is not the challenge"
            elif resp.status != 200:
                result["error"] = f"HTTP {resp.status}: endpoint not verified"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    return result
