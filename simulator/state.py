"""In-memory state of the simulated Meta: users, messages both ways, webhook deliveries,
media, read receipts, faults, rate counters and the event bus feeding chat pages."""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import random
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Deque, Dict, List, Optional, Set

from .graph_errors import CODES, GraphError


def new_wamid(wa_id: str, outbound: bool) -> str:
    """A unique id shaped like Meta's (``wamid.HBgL…``: base64 of a small protobuf with the
    user's number). Standard base64, so it may contain ``+``, ``/`` and ``=`` like real ones."""
    digits = wa_id.encode()[:200]
    rand = secrets.token_hex(10).upper().encode()
    raw = (
        b"\x1c\x18" + bytes([len(digits)]) + digits + b"\x15\x02\x00"
        + (b"\x11" if outbound else b"\x12") + b"\x18" + bytes([len(rand)]) + rand + b"\x00"
    )
    return "wamid." + base64.b64encode(raw).decode()


def now() -> float:
    return time.time()


@dataclass
class User:
    wa_id: str
    name: str
    user_id: Optional[str] = None  # business-scoped user id (BSUID), optional
    username: Optional[str] = None  # WhatsApp username (simulator/usernames.py)
    phone_hidden: bool = False  # the business gets the BSUID only, never this wa_id
    last_inbound_at: Optional[float] = None
    created_at: float = field(default_factory=now)

    def window_open(self, at: Optional[float] = None, window: float = 24 * 3600) -> bool:
        if self.last_inbound_at is None:
            return False
        return (at or now()) - self.last_inbound_at < window

    def describe(self, window: float) -> Dict[str, Any]:
        data = asdict(self)
        data["window_open"] = self.window_open(window=window)
        data["window_expires_at"] = (
            self.last_inbound_at + window if self.last_inbound_at is not None else None
        )
        return data


@dataclass
class OutboundMessage:
    """A send request of the business (accepted or rejected)."""

    seq: int
    to: Optional[str]
    wa_id: Optional[str]
    type: Optional[str]
    payload: Any
    wamid: Optional[str] = None
    status: str = "accepted"  # accepted|sent|delivered|read|failed|rejected
    http_status: int = 200
    error: Optional[Dict[str, Any]] = None
    reason: Optional[str] = None  # why rejected: validation|auth|window|template|fault|rate
    rendered: Optional[Dict[str, Any]] = None
    category: str = "service"
    statuses: List[Dict[str, Any]] = field(default_factory=list)
    context_id: Optional[str] = None
    pricing: Optional[Dict[str, Any]] = None
    conversation_id: Optional[str] = None
    # set by a `failed_status` fault: the message never gets past `sent`, then fails
    fail_code: Optional[int] = None
    created_at: float = field(default_factory=now)

    def describe(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class InboundMessage:
    """A message of a simulated user (sent to the connector as a webhook)."""

    seq: int
    wamid: str
    wa_id: str
    message: Dict[str, Any]
    status: str = "sent"  # sent (held by Meta) -> delivered (webhook got 200) -> read
    delivery_id: Optional[str] = None
    created_at: float = field(default_factory=now)

    def describe(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Attempt:
    number: int
    at: float
    status: Optional[int]
    latency_ms: float
    error: Optional[str] = None
    response: Optional[str] = None


@dataclass
class Delivery:
    """One webhook envelope and every attempt to deliver it."""

    id: str
    kind: str  # message|status|batch|raw|redelivery
    url: Optional[str]
    body: bytes
    signature: Optional[str]
    wamids: List[str]
    redelivery_of: Optional[str] = None
    state: str = "pending"  # pending|delivered|dropped|no_url
    attempts: List[Attempt] = field(default_factory=list)
    created_at: float = field(default_factory=now)
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)
    first_attempt: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    def describe(self, include_body: bool = False) -> Dict[str, Any]:
        data = {
            "id": self.id,
            "kind": self.kind,
            "url": self.url,
            "wamids": self.wamids,
            "redelivery_of": self.redelivery_of,
            "state": self.state,
            "delivered": self.state == "delivered",
            "attempts": [asdict(a) for a in self.attempts],
            "statuses": [a.status for a in self.attempts],
            "latency_ms": [a.latency_ms for a in self.attempts],
            "created_at": self.created_at,
            "bytes": len(self.body),
        }
        if include_body:
            data["body"] = self.body.decode("utf-8")
            data["signature"] = self.signature
        return data


@dataclass
class Media:
    id: str
    data: bytes
    mime_type: str
    sha256: str
    filename: Optional[str] = None
    created_at: float = field(default_factory=now)


@dataclass
class FaultRule:
    """Make matching Graph requests fail (``code``) and/or answer slowly (``delay_ms``)."""

    id: int
    code: Optional[int] = None
    count: Optional[int] = None  # next N matching requests
    fraction: Optional[float] = None  # or this share of them (deterministic with seed)
    seed: Optional[int] = None
    delay_ms: float = 0
    # Meta takes the message (it is sent, statuses follow) but its answer comes only after
    # this long: what a client whose timeout is shorter sees as a timeout. Sends only.
    late_ms: float = 0
    to: Optional[str] = None  # only sends to this wa_id
    endpoint: str = "messages"  # messages|media|any
    # "error": answer with the error; "failed_status": accept, then a `failed` status webhook
    mode: str = "error"
    hits: int = 0
    seen: int = 0
    _rng: Optional[random.Random] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.mode == "failed_status" and self.code is None:
            self.code = 131026  # message undeliverable
        if self.code is not None and self.mode == "error" and self.code not in CODES:
            raise ValueError(f"unknown error code {self.code}")
        if self.code is None and not self.delay_ms and not self.late_ms:
            raise ValueError("a fault needs a code, delay_ms and/or late_ms")
        if self.late_ms and (self.late_ms < 0 or self.code is not None):
            raise ValueError("late_ms (accept, answer late) goes without a code")
        if self.count is None and self.fraction is None:
            self.count = 1
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")
        if self.mode not in ("error", "failed_status"):
            raise ValueError("mode must be error or failed_status")
        self._rng = random.Random(self.seed)

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, endpoint: str, wa_id: Optional[str]) -> bool:
        if self.exhausted:
            return False
        if self.endpoint != "any" and self.endpoint != endpoint:
            return False
        if self.to and self.to != wa_id:
            return False
        self.seen += 1
        if self.fraction is not None:
            return self._rng.random() < self.fraction
        return True

    def describe(self) -> Dict[str, Any]:
        return {
            "id": self.id, "code": self.code, "count": self.count, "fraction": self.fraction,
            "seed": self.seed, "delay_ms": self.delay_ms, "late_ms": self.late_ms, "to": self.to,
            "endpoint": self.endpoint,
            "mode": self.mode, "hits": self.hits, "seen": self.seen, "exhausted": self.exhausted,
        }

    def error(self) -> GraphError:
        return GraphError(self.code or 131000)


class EventBus:
    """Fan-out of chat events to Server-Sent-Event subscribers, per user (and "*": all)."""

    def __init__(self) -> None:
        self._subscribers: Dict[str, Set[asyncio.Queue]] = collections.defaultdict(set)

    def subscribe(self, user: str) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self._subscribers[user].add(queue)
        return queue

    def unsubscribe(self, user: str, queue: asyncio.Queue) -> None:
        self._subscribers[user].discard(queue)

    def publish(self, user: Optional[str], event: str, data: Dict[str, Any]) -> None:
        targets = set(self._subscribers.get("*", set()))
        if user:
            targets |= self._subscribers.get(user, set())
        for queue in targets:
            try:
                queue.put_nowait((event, data))
            except asyncio.QueueFull:  # a stuck page must not block the simulator
                pass

    def close_all(self) -> None:
        for queues in self._subscribers.values():
            for queue in queues:
                try:
                    queue.put_nowait(None)
                except asyncio.QueueFull:
                    pass

    @property
    def count(self) -> int:
        return sum(len(q) for q in self._subscribers.values())


class State:
    def __init__(self, max_records: int = 20000) -> None:
        self.max_records = max_records
        self.bus = EventBus()
        self.reset()

    def reset(self) -> None:
        self._seq = itertools.count(1)
        self._fault_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)
        self.users: Dict[str, User] = {}
        self.outbound: "collections.OrderedDict[int, OutboundMessage]" = collections.OrderedDict()
        self.by_wamid: Dict[str, OutboundMessage] = {}
        self.inbound: "collections.OrderedDict[str, InboundMessage]" = collections.OrderedDict()
        self.deliveries: "collections.OrderedDict[str, Delivery]" = collections.OrderedDict()
        self.media: Dict[str, Media] = {}
        self.read_receipts: List[Dict[str, Any]] = []
        self.faults: List[FaultRule] = []
        self.pair_sends: Dict[str, Deque[float]] = collections.defaultdict(collections.deque)
        self.requests: Deque[float] = collections.deque()
        self.typing_until: Dict[str, float] = {}

    def next_seq(self) -> int:
        return next(self._seq)

    def next_delivery_id(self) -> str:
        return f"d{next(self._delivery_ids)}"

    # ----------------------------------------------------------------- records

    def user(self, wa_id: str, name: Optional[str] = None, default_name: str = "WhatsApp user") -> User:
        user = self.users.get(wa_id)
        if user is None:
            user = self.users[wa_id] = User(wa_id=wa_id, name=name or default_name)
        elif name:
            user.name = name
        return user

    def user_by_bsuid(self, user_id: str) -> Optional[User]:
        return next((u for u in self.users.values() if u.user_id == user_id), None)

    def add_outbound(self, message: OutboundMessage) -> None:
        self.outbound[message.seq] = message
        if message.wamid:
            self.by_wamid[message.wamid] = message
        while len(self.outbound) > self.max_records:
            _, old = self.outbound.popitem(last=False)
            if old.wamid:
                self.by_wamid.pop(old.wamid, None)

    def add_inbound(self, message: InboundMessage) -> None:
        self.inbound[message.wamid] = message
        while len(self.inbound) > self.max_records:
            self.inbound.popitem(last=False)

    def add_delivery(self, delivery: Delivery) -> None:
        self.deliveries[delivery.id] = delivery
        while len(self.deliveries) > self.max_records:
            self.deliveries.popitem(last=False)

    def add_fault(self, **kwargs: Any) -> FaultRule:
        rule = FaultRule(id=next(self._fault_ids), **kwargs)
        self.faults.append(rule)
        return rule

    def take_fault(self, endpoint: str, wa_id: Optional[str]) -> Optional[FaultRule]:
        for rule in self.faults:
            if rule.matches(endpoint, wa_id):
                rule.hits += 1
                return rule
        return None
