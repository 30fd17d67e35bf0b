"""Simulator settings: one dataclass, filled from CLI flags with environment fallbacks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5005/webhooks/whatsapp/webhook"
# Synthetic identifiers (555 numbers, obviously fake ids): never a real account.
DEFAULT_PHONE_NUMBER_ID = "100000000000001"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550100100"
DEFAULT_WABA_ID = "200000000000002"
DEFAULT_BUSINESS_NAME = "Riverside Family Clinic"
DEFAULT_USER_WA_ID = "15550123456"
DEFAULT_USER_NAME = "Alex Demo"

# Knobs that can be changed at run time through POST /_sim/config.
RUNTIME_KEYS = (
    "webhook_url",
    "delivered_delay",
    "auto_read",
    "retry_schedule",
    "webhook_timeout",
    "pair_rate_limit",
    "throughput_limit",
    "typing_timeout",
    "latency_ms",
)


class ConfigError(ValueError):
    """A setting is missing or invalid (the CLI prints it and exits)."""


@dataclass
class SimulatorConfig:
    app_secret: str
    access_token: str
    webhook_url: Optional[str] = DEFAULT_WEBHOOK_URL
    host: str = "127.0.0.1"
    port: int = 8081
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER
    waba_id: str = DEFAULT_WABA_ID
    business_name: str = DEFAULT_BUSINESS_NAME
    verify_token: Optional[str] = None
    templates_path: Optional[str] = None
    # Seconds between the `sent` and the `delivered` status webhook of a business message.
    delivered_delay: float = 0.5
    # Seconds after which a business message is marked read even with no chat page open
    # (None: only when a chat page displays it, or when the control API says so).
    auto_read: Optional[float] = None
    # Webhook redelivery: seconds to wait before each retry; the delivery is dropped when
    # the list is exhausted. Meta retries "immediately, then with decreasing frequency".
    retry_schedule: List[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    webhook_timeout: float = 20.0
    # Meta's pair rate: more than N messages to one user within 6 s -> 131056 (None: off).
    pair_rate_limit: Optional[int] = None
    # Global throughput: more than N send requests within 1 s -> 130429 (None: off;
    # Meta's default for a number is 80).
    throughput_limit: Optional[int] = None
    typing_timeout: float = 25.0
    # Graph API latency for message sends, [low, high] milliseconds drawn uniformly per
    # request (None: answer at once). Meta documents none for the Graph API; its webhook
    # guidance is "median latency not to exceed 250ms, less than 1% exceeds 1s".
    latency_ms: Optional[List[float]] = None
    # WhatsApp Flows (simulator/flows.py): "ID,FLOW_JSON[,ENDPOINT_URL]" each, and the PEM file
    # of the business's public key (what a business uploads to Meta).
    flows: List[str] = field(default_factory=list)
    flows_public_key: Optional[str] = None
    default_user_wa_id: str = DEFAULT_USER_WA_ID
    default_user_name: str = DEFAULT_USER_NAME
    max_records: int = 20000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.app_secret:
            raise ConfigError(
                "No app secret: set WHATSAPP_APP_SECRET (or --app-secret). The simulator signs every "
                "webhook with it, exactly like Meta; use the same value as the connector."
            )
        if not self.access_token:
            raise ConfigError(
                "No access token: set WHATSAPP_ACCESS_TOKEN (or --access-token). The simulator's Graph "
                "API accepts only this Bearer token; use the same value as the connector."
            )
        if not str(self.phone_number_id).isdigit():
            raise ConfigError(f"phone_number_id must be digits, got {self.phone_number_id!r}")
        if self.delivered_delay < 0 or self.webhook_timeout <= 0:
            raise ConfigError("delivered_delay must be >= 0 and webhook_timeout > 0")
        if any(delay < 0 for delay in self.retry_schedule):
            raise ConfigError("retry_schedule delays must be >= 0")
        if self.latency_ms is not None and (len(self.latency_ms) != 2 or not 0 <= self.latency_ms[0]
                                            <= self.latency_ms[1] <= 60000):
            raise ConfigError("latency_ms must be [low, high] milliseconds, 0 <= low <= high <= 60000")
        for name in ("pair_rate_limit", "throughput_limit"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be >= 1 (or unset to switch it off)")

    def public(self) -> Dict[str, Any]:
        """Everything but the secrets (served by GET /_sim/config and used by the chat page)."""
        data = dataclasses.asdict(self)
        data.pop("app_secret")
        data.pop("access_token")
        data.pop("verify_token")
        return data

    def update_runtime(self, changes: Dict[str, Any]) -> Dict[str, Any]:
        unknown = sorted(set(changes) - set(RUNTIME_KEYS))
        if unknown:
            raise ConfigError(f"not changeable at run time: {', '.join(unknown)}")
        old = {key: getattr(self, key) for key in changes}
        try:
            for key, value in changes.items():
                if key in ("delivered_delay", "webhook_timeout", "typing_timeout"):
                    value = float(value)
                elif key == "auto_read":
                    value = None if value is None else float(value)
                elif key in ("pair_rate_limit", "throughput_limit"):
                    value = None if value in (None, 0) else int(value)
                elif key == "retry_schedule":
                    value = [float(item) for item in value]
                elif key == "latency_ms":
                    value = None if value in (None, 0, [], "") else [float(item) for item in (
                        value.split(",") if isinstance(value, str) else value)]
                setattr(self, key, value)
            self.validate()
        except (TypeError, ValueError) as exc:
            for key, value in old.items():
                setattr(self, key, value)
            raise ConfigError(str(exc)) from exc
        return self.public()
