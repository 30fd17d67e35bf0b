"""Builders for WhatsApp webhook payloads and a channel bound to a temporary database."""

from __future__ import annotations

import itertools
import json

from connectors.whatsapp.channel import WhatsAppInput
from gateway.settings import WhatsAppSettings
from whatsapp.signature import sign

APP_SECRET = "test-app-secret"
INTERNAL_SECRET = "test-internal-secret"  # the gateway's turn calls to Rasa
VERIFY_TOKEN = "test-verify-token"
PHONE_NUMBER_ID = "106540352242922"
ENCRYPTION_KEY = "kO8ZC5fbQ1YJtC0yGM2Fv3Sk7dxd8xAZ9lVLJ4k7B3I="
_ids = itertools.count(1)


def settings(base_url: str = "http://127.0.0.1:9", **overrides) -> WhatsAppSettings:
    values = dict(
        verify_token=VERIFY_TOKEN, app_secret=APP_SECRET, internal_secret=INTERNAL_SECRET,
        access_token="test-token",
        phone_number_id=PHONE_NUMBER_ID, api_base_url=base_url, send_rate_per_second=1000.0,
    )
    values.update(overrides)
    return WhatsAppSettings(**values)


def make_channel(tmp_path, monkeypatch, base_url: str = "http://127.0.0.1:9") -> WhatsAppInput:
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    return WhatsAppInput(settings(base_url), database_url=f"sqlite:///{tmp_path / 'wa.db'}")


def wamid() -> str:
    return f"wamid.TEST{next(_ids):08d}"


def message(wa_id: str, body: dict, **extra) -> dict:
    return {"from": wa_id, "id": extra.pop("id", None) or wamid(), "timestamp": extra.pop("timestamp", "1763800000"), **body, **extra}


def text(wa_id: str, body: str, **extra) -> dict:
    return message(wa_id, {"type": "text", "text": {"body": body}}, **extra)


def envelope(*messages: dict, statuses: tuple = (), contacts: tuple = ()) -> dict:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
    }
    if messages:
        value["contacts"] = list(contacts) or [
            {"profile": {"name": "Synthetic Patient"}, "wa_id": m["from"]}
            for m in {m["from"]: m for m in messages}.values()
        ]
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}]}


def signed(payload) -> tuple[bytes, str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return body, sign(body, APP_SECRET)


async def deliver(channel: WhatsAppInput, body: bytes, signature_header) -> tuple[int, str]:
    """A webhook through the door, then the flusher's step (journal → inbox) at once, as the
    running channel does right after the 200."""
    answer = await channel.receive_webhook(body, signature_header)
    await channel.flush_journal()
    return answer


def opened(row: dict) -> dict:
    """A raw database row with its sealed columns (clinic/at_rest.py ``SealedText``) opened
    with the process's clinic keyring, as the stores read them."""
    from clinic.at_rest import clinic_sealer

    return {key: clinic_sealer().open(value) if isinstance(value, str) and value.startswith("enc:v1:") else value
            for key, value in row.items()}


def opened_journal(directory) -> str:
    """The journal's lines with each message's words opened (clinic/messaging/journal_lines.py),
    one JSON object a line: what the door wrote, readable."""
    from clinic.at_rest import clinic_sealer
    from clinic.messaging.journal_lines import open_record

    lines = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                lines.append(json.dumps(open_record(json.loads(line), clinic_sealer())) + "\n")
    return "".join(lines)
