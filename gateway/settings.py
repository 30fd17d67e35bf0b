"""The gateway's settings: the one place in this package that reads the environment.

``WhatsAppSettings`` (the channel: Meta's credentials, limits, the inbox and outbox; also
read by Rasa's side, connectors/whatsapp, where credentials.yml may set them too),
``DeliveryPolicy`` (how hard the sender tries) and ``GatewayAddress`` (where the gateway
process listens and where Rasa's replicas are). Missing or malformed settings stop the process at
start-up with a message naming them, rather than failing on the first patient message.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
import secrets
from typing import Any, Mapping, Optional, Tuple

from clinic.db import VAR_DIR
from clinic.privacy import secret_from
from whatsapp.client import DEFAULT_TIMEOUT_SECONDS
from whatsapp.media import DEFAULT_MAX_BYTES as DEFAULT_MEDIA_MAX_BYTES

DEFAULT_API_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
# The gateway's own secret for its calls to Rasa's /turn (and door → relay notices): never
# Meta's app secret, which only Meta and the door need. From WHATSAPP_INTERNAL_SECRET, else
# created on first use in this file (mode 0600), so processes on one machine share it.
INTERNAL_SECRET_ENV = "WHATSAPP_INTERNAL_SECRET"
INTERNAL_SECRET_FILE = VAR_DIR / "whatsapp-internal.key"

# setting -> (environment variable, required)
_ENV = {
    "verify_token": ("WHATSAPP_VERIFY_TOKEN", True),
    "app_secret": ("WHATSAPP_APP_SECRET", True),
    "internal_secret": (INTERNAL_SECRET_ENV, False),
    "access_token": ("WHATSAPP_ACCESS_TOKEN", True),
    "phone_number_id": ("WHATSAPP_PHONE_NUMBER_ID", True),
    "api_version": ("WHATSAPP_API_VERSION", False),
    "api_base_url": ("WHATSAPP_API_BASE_URL", False),
    "send_rate_per_second": ("WHATSAPP_SEND_RATE", False),
    "max_concurrent_conversations": ("WHATSAPP_MAX_CONCURRENT_CONVERSATIONS", False),
    "inbox_sweep_seconds": ("WHATSAPP_INBOX_SWEEP_SECONDS", False),
    "journal_dir": ("WHATSAPP_JOURNAL_DIR", False),
    "journal_fsync": ("WHATSAPP_JOURNAL_FSYNC", False),
    "gateway": ("WHATSAPP_GATEWAY", False),
    "inbound_max_attempts": ("WHATSAPP_INBOUND_MAX_ATTEMPTS", False),
    "inbound_retry_seconds": ("WHATSAPP_INBOUND_RETRY_SECONDS", False),
    "outbox_poll_seconds": ("WHATSAPP_OUTBOX_POLL_SECONDS", False),
    "worker_niceness": ("WHATSAPP_WORKER_NICENESS", False),
    "redis_url": ("REDIS_URL", False),
    "inbox_lease_seconds": ("WHATSAPP_INBOX_LEASE_SECONDS", False),
    "media_max_bytes": ("WHATSAPP_MEDIA_MAX_BYTES", False),
    "media_max_attempts": ("WHATSAPP_MEDIA_MAX_ATTEMPTS", False),
    "media_sweep_seconds": ("WHATSAPP_MEDIA_SWEEP_SECONDS", False),
}
# Turns the gateway process keeps in flight when WHATSAPP_MAX_CONCURRENT_CONVERSATIONS is not
# set. There a turn is only a request waiting in Rasa's queue (not inference on this process's
# loop, as in Rasa's own channel), so more than the channel's 8: with too few, Rasa idles while
# it awaits the action server.
GATEWAY_TURNS_IN_FLIGHT = 16


class WhatsAppConfigError(ValueError):
    """A required WhatsApp setting is missing or invalid."""


@dataclasses.dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try. From the environment (``from_environment``); defaults for Meta."""

    # Graph requests per delivery round (the client's retries on transient errors).
    attempts: int = 5
    # The Graph client's timeout (whatsapp/client.py explains the value).
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    # How long to wait for a status webhook that proves an ambiguous send went out. Meta
    # sends the `sent` status within seconds of taking a message, and redelivers webhooks
    # missed during a restart "immediately, then with decreasing frequency".
    unconfirmed_grace: float = 30.0
    # Later rounds for a turn's dead letter: seconds after each failure (bounded: then a
    # person follows up).
    dead_letter_retry: Tuple[float, ...] = (60.0, 300.0, 1800.0)
    # How often the outbox looks for due dead letters and stuck rows.
    sweep_seconds: float = 5.0

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None) -> "DeliveryPolicy":
        environ = os.environ if environ is None else environ
        default = cls()

        def number(name: str, fallback: float) -> float:
            value = (environ.get(name) or "").strip()
            return float(value) if value else fallback

        schedule = (environ.get("WHATSAPP_DEAD_LETTER_RETRY_SECONDS") or "").strip()
        policy = cls(
            attempts=int(number("WHATSAPP_SEND_ATTEMPTS", default.attempts)),
            timeout=number("WHATSAPP_GRAPH_TIMEOUT_SECONDS", default.timeout),
            unconfirmed_grace=number("WHATSAPP_UNCONFIRMED_GRACE_SECONDS", default.unconfirmed_grace),
            dead_letter_retry=tuple(float(x) for x in schedule.split(",") if x.strip())
            if schedule else default.dead_letter_retry,
            sweep_seconds=number("WHATSAPP_OUTBOX_SWEEP_SECONDS", default.sweep_seconds),
        )
        if policy.attempts < 1 or policy.timeout <= 0 or policy.unconfirmed_grace < 0 \
                or any(delay < 0 for delay in policy.dead_letter_retry) or policy.sweep_seconds <= 0:
            raise ValueError("WhatsApp delivery settings: attempts >= 1, timeout > 0, delays >= 0")
        return policy


@dataclasses.dataclass(frozen=True)
class WhatsAppSettings:
    verify_token: str
    app_secret: str
    access_token: str
    phone_number_id: str
    api_version: str = DEFAULT_API_VERSION
    api_base_url: str = DEFAULT_API_BASE_URL
    send_rate_per_second: float = 80.0
    max_concurrent_conversations: int = 8
    inbox_sweep_seconds: float = 2.0  # see processor.start_sweeping (0 = off)
    # The door's journal (whatsapp/journal.py): "" = beside the SQLite database, or var/.
    journal_dir: str = ""
    # fsync every append: survives a power cut too, at ~ms per webhook.
    journal_fsync: bool = False
    # A separate gateway process (gateway/server.py) takes the webhooks, runs
    # each turn through this channel's /turn endpoint and sends the replies; Rasa's process
    # then leaves the inbox alone.
    gateway: bool = False
    # Processing attempts per inbound message before it is a dead letter (quarantine and a
    # ticket, gateway/processor.py), and the pause before the second attempt
    # (doubled for each further one).
    inbound_max_attempts: int = 3
    inbound_retry_seconds: float = 2.0
    # Signs the gateway's turn calls to Rasa and the door's notices to the relay (see
    # INTERNAL_SECRET_ENV); empty refuses every such call.
    internal_secret: str = ""
    # How often the outbox looks for queued messages (staff replies, reminders, surveys,
    # broadcasts) when nothing woke it.
    outbox_poll_seconds: float = 0.2
    # Priority of the thread that runs turns and sends (worker.py; 0 = same as the loop
    # that acknowledges webhooks).
    worker_niceness: int = 10
    # Turns in flight in the gateway process (see GATEWAY_TURNS_IN_FLIGHT).
    gateway_turns_in_flight: int = GATEWAY_TURNS_IN_FLIGHT
    delivery: DeliveryPolicy = DeliveryPolicy()
    # Several gateway workers (issue 16): the Redis that holds the number's shared send rate
    # (gateway/shared_limit.py; "" = this process's own limit), and how long a worker holds
    # an inbox message it processes unless it renews the lease (gateway/processor.py).
    redis_url: str = ""
    inbox_lease_seconds: float = 30.0
    # Patients' media fetched for staff (gateway/media.py): the most bytes kept per type
    # (WHATSAPP_MEDIA_MAX_BYTES, e.g. "image=5242880,document=20971520"; Meta's documented
    # limits for the types not named), fetch tries before a transiently failing media is
    # given up, and how often rows left pending are tried again (0 = never).
    media_max_bytes: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(DEFAULT_MEDIA_MAX_BYTES))
    media_max_attempts: int = 3
    media_sweep_seconds: float = 30.0

    def __repr__(self) -> str:  # never print secrets
        return (
            f"WhatsAppSettings(phone_number_id={self.phone_number_id!r}, "
            f"api_base_url={self.api_base_url!r}, api_version={self.api_version!r})"
        )

    @classmethod
    def load(
        cls, credentials: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None
    ) -> "WhatsAppSettings":
        """Environment first, then credentials.yml values; validated."""
        environ = os.environ if environ is None else environ
        credentials = credentials or {}
        values: dict[str, str] = {}
        missing = []
        for name, (env_name, required) in _ENV.items():
            value = environ.get(env_name) or credentials.get(name)
            value = "" if value is None else str(value).strip()
            if required and not value:
                missing.append(env_name)
            values[name] = value
        if missing:
            raise WhatsAppConfigError(
                "WhatsApp channel is not configured: set " + ", ".join(missing)
                + " (see README, 'WhatsApp')."
            )
        try:
            rate = float(values["send_rate_per_second"] or 80)
            concurrency = int(values["max_concurrent_conversations"] or 8)
            sweep = float(values["inbox_sweep_seconds"] or 2.0)
            attempts = int(values["inbound_max_attempts"] or 3)
            retry = float(values["inbound_retry_seconds"] or 2.0)
            poll = float(values["outbox_poll_seconds"] or 0.2)
            niceness = int(values["worker_niceness"] or 10)
            lease = float(values["inbox_lease_seconds"] or 30.0)
            media_max_bytes = media_limits(values["media_max_bytes"])
            media_attempts = int(values["media_max_attempts"] or 3)
            media_sweep = float(values["media_sweep_seconds"] or 30.0)
            delivery = DeliveryPolicy.from_environment(environ)
        except ValueError as exc:
            raise WhatsAppConfigError(f"WhatsApp channel: {exc}") from exc
        if rate <= 0 or concurrency <= 0:
            raise WhatsAppConfigError("WHATSAPP_SEND_RATE and concurrency must be positive")
        if attempts < 1 or retry < 0:
            raise WhatsAppConfigError("WHATSAPP_INBOUND_MAX_ATTEMPTS must be 1 or more and "
                                      "WHATSAPP_INBOUND_RETRY_SECONDS 0 or more")
        if poll <= 0:
            raise WhatsAppConfigError("WHATSAPP_OUTBOX_POLL_SECONDS must be positive")
        if lease <= 0:
            raise WhatsAppConfigError("WHATSAPP_INBOX_LEASE_SECONDS must be positive")
        if sweep < 0:
            raise WhatsAppConfigError("WHATSAPP_INBOX_SWEEP_SECONDS must be 0 (off) or more")
        if media_attempts < 1 or media_sweep < 0:
            raise WhatsAppConfigError("WHATSAPP_MEDIA_MAX_ATTEMPTS must be 1 or more and "
                                      "WHATSAPP_MEDIA_SWEEP_SECONDS 0 (off) or more")
        internal_secret = values["internal_secret"] or secret_from(
            environ, INTERNAL_SECRET_ENV, INTERNAL_SECRET_FILE, lambda: secrets.token_hex(32).encode()).decode()
        if hmac.compare_digest(internal_secret.encode(), values["app_secret"].encode()):
            raise WhatsAppConfigError(f"{INTERNAL_SECRET_ENV} must differ from WHATSAPP_APP_SECRET (Meta's)")
        base_url = (values["api_base_url"] or DEFAULT_API_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise WhatsAppConfigError("WHATSAPP_API_BASE_URL must be an http(s) URL")
        return cls(
            verify_token=values["verify_token"],
            app_secret=values["app_secret"],
            access_token=values["access_token"],
            phone_number_id=values["phone_number_id"],
            api_version=values["api_version"] or DEFAULT_API_VERSION,
            api_base_url=base_url,
            send_rate_per_second=rate,
            max_concurrent_conversations=concurrency,
            inbox_sweep_seconds=sweep,
            journal_dir=values["journal_dir"],
            journal_fsync=_flag(values["journal_fsync"]),
            gateway=_flag(values["gateway"]),
            inbound_max_attempts=attempts,
            inbound_retry_seconds=retry,
            internal_secret=internal_secret,
            outbox_poll_seconds=poll,
            worker_niceness=niceness,
            gateway_turns_in_flight=concurrency if values["max_concurrent_conversations"] else GATEWAY_TURNS_IN_FLIGHT,
            delivery=delivery,
            redis_url=values["redis_url"],
            inbox_lease_seconds=lease,
            media_max_bytes=media_max_bytes,
            media_max_attempts=media_attempts,
            media_sweep_seconds=media_sweep,
        )


DEFAULT_RASA_URL = "http://127.0.0.1:5005"


@dataclasses.dataclass(frozen=True)
class GatewayAddress:
    """Where the gateway process listens, and where Rasa (the ``/turn`` endpoint) is: one URL
    or several replicas, among which the relay spreads turns (gateway/replicas.py)."""

    host: str = "127.0.0.1"
    port: int = 5006
    rasa_urls: Tuple[str, ...] = (DEFAULT_RASA_URL,)

    @property
    def rasa_url(self) -> str:
        """The first replica (a single Rasa's address, as before RASA_URLS)."""
        return self.rasa_urls[0]

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "GatewayAddress":
        """RASA_URLS (``http://a:5005,http://b:5005``) if set, else RASA_URL."""
        environ = os.environ if environ is None else environ
        try:
            port = int(environ.get("WHATSAPP_INGRESS_PORT") or cls.port)
        except ValueError as exc:
            raise WhatsAppConfigError("WHATSAPP_INGRESS_PORT must be a port number") from exc
        name = "RASA_URLS" if (environ.get("RASA_URLS") or "").strip() else "RASA_URL"
        urls = rasa_urls(environ.get(name) or DEFAULT_RASA_URL, name)
        return cls(host=environ.get("WHATSAPP_INGRESS_HOST") or cls.host, port=port, rasa_urls=urls)


def rasa_urls(text: str, name: str = "--rasa-url") -> Tuple[str, ...]:
    """``"http://a:5005, http://b:5005/"`` → the replicas' base URLs, in order, once each."""
    urls: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        url = item.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise WhatsAppConfigError(f"{name}: {item!r} is not an http(s) URL")
        if url not in urls:
            urls.append(url)
    if not urls:
        raise WhatsAppConfigError(f"{name} names no Rasa URL")
    return tuple(urls)


def media_limits(text: str) -> dict[str, int]:
    """``"image=5242880,document=20971520"`` → Meta's documented limits with those replaced."""
    limits = dict(DEFAULT_MEDIA_MAX_BYTES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, value = item.partition("=")
        kind = kind.strip().lower()
        if kind not in DEFAULT_MEDIA_MAX_BYTES or not value.strip().isdigit() or int(value) <= 0:
            raise ValueError(f"WHATSAPP_MEDIA_MAX_BYTES: {item!r} is not <type>=<bytes> for a type among "
                             + ", ".join(sorted(DEFAULT_MEDIA_MAX_BYTES)))
        limits[kind] = int(value)
    return limits


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclasses.dataclass(frozen=True)
class FlowSettings:
    """The booking Flow's data endpoint (gateway/flow_endpoint.py): the RSA private key whose
    public half is registered with Meta (WHATSAPP_FLOWS_PRIVATE_KEY_FILE, a PEM file;
    WHATSAPP_FLOWS_KEY_PASSPHRASE when it is encrypted). No key: no endpoint."""

    private_key_file: str = ""
    passphrase: str = ""

    @classmethod
    def load(cls, environ: Optional[Mapping[str, str]] = None) -> "FlowSettings":
        environ = os.environ if environ is None else environ
        path = (environ.get("WHATSAPP_FLOWS_PRIVATE_KEY_FILE") or "").strip()
        if path and not os.path.isfile(path):
            raise WhatsAppConfigError("WHATSAPP_FLOWS_PRIVATE_KEY_FILE does not name a readable file")
        return cls(private_key_file=path, passphrase=environ.get("WHATSAPP_FLOWS_KEY_PASSPHRASE") or "")
