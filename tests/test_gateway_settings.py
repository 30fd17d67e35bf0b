"""The gateway's settings (gateway/settings.py): the one place the package reads the
environment; a missing or malformed value stops start-up with its name, not a patient's turn."""

from __future__ import annotations

import pytest

from gateway.settings import (
    GATEWAY_TURNS_IN_FLIGHT,
    DeliveryPolicy,
    GatewayAddress,
    WhatsAppConfigError,
    WhatsAppSettings,
)

REQUIRED = {"WHATSAPP_VERIFY_TOKEN": "verify", "WHATSAPP_APP_SECRET": "meta-secret",
            "WHATSAPP_ACCESS_TOKEN": "token", "WHATSAPP_PHONE_NUMBER_ID": "1234",
            "WHATSAPP_INTERNAL_SECRET": "our-own-secret"}


def load(**environ: str) -> WhatsAppSettings:
    return WhatsAppSettings.load(environ={**REQUIRED, **environ})


def test_defaults_for_a_minimal_configuration():
    settings = load()
    assert (settings.send_rate_per_second, settings.max_concurrent_conversations) == (80.0, 8)
    assert (settings.outbox_poll_seconds, settings.worker_niceness) == (0.2, 10)
    # The gateway keeps more turns in flight than Rasa's own channel unless told otherwise.
    assert settings.gateway_turns_in_flight == GATEWAY_TURNS_IN_FLIGHT
    assert settings.delivery == DeliveryPolicy()


def test_every_tunable_is_read_from_the_environment():
    settings = load(WHATSAPP_OUTBOX_POLL_SECONDS="0.05", WHATSAPP_WORKER_NICENESS="0",
                    WHATSAPP_MAX_CONCURRENT_CONVERSATIONS="4", WHATSAPP_SEND_ATTEMPTS="2",
                    WHATSAPP_DEAD_LETTER_RETRY_SECONDS="1,2")
    assert (settings.outbox_poll_seconds, settings.worker_niceness) == (0.05, 0)
    assert (settings.max_concurrent_conversations, settings.gateway_turns_in_flight) == (4, 4)
    assert (settings.delivery.attempts, settings.delivery.dead_letter_retry) == (2, (1.0, 2.0))


@pytest.mark.parametrize("environ, named", [
    ({"WHATSAPP_ACCESS_TOKEN": ""}, "WHATSAPP_ACCESS_TOKEN"),
    ({"WHATSAPP_OUTBOX_POLL_SECONDS": "0"}, "WHATSAPP_OUTBOX_POLL_SECONDS"),
    ({"WHATSAPP_WORKER_NICENESS": "low"}, "WhatsApp channel"),
    ({"WHATSAPP_SEND_ATTEMPTS": "0"}, "delivery settings"),
    ({"WHATSAPP_INTERNAL_SECRET": "meta-secret"}, "must differ"),
])
def test_a_bad_setting_is_named_at_start_up(environ, named):
    with pytest.raises(WhatsAppConfigError, match=named):
        load(**environ)


def test_the_secrets_are_never_in_the_settings_repr():
    text = repr(load())
    assert "meta-secret" not in text and "our-own-secret" not in text and "token" not in text


def test_where_the_gateway_listens():
    assert GatewayAddress.load({}) == GatewayAddress("127.0.0.1", 5006, ("http://127.0.0.1:5005",))
    assert GatewayAddress.load({"WHATSAPP_INGRESS_PORT": "7000", "RASA_URL": "http://rasa:5005"}) == \
        GatewayAddress("127.0.0.1", 7000, ("http://rasa:5005",))
    with pytest.raises(WhatsAppConfigError, match="WHATSAPP_INGRESS_PORT"):
        GatewayAddress.load({"WHATSAPP_INGRESS_PORT": "http"})
