"""Metrics in Prometheus's text format (issue 14): ``whatsapp.metrics.Metrics`` maps the
channel's event names onto named metrics in a registry of its own, and the gateway serves
them at ``GET /metrics``, scraped here over real HTTP after messages went through it (the
simulator → the gateway → a stand-in for Rasa's turn endpoint). No label carries a phone
number, a conversation id or text."""

from __future__ import annotations

import asyncio
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.server import PATH
from tests.connector_support import ENCRYPTION_KEY
from tests.test_fault_inbound_gateway import Gateway, replies, serve_assistant
from whatsapp import signature
from whatsapp.metrics import CONTENT_TYPE, Metrics

PHONE_LIKE = re.compile(r"\d{7,}")


def samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_map_event_names_onto_named_metrics_in_their_own_registry():
    metrics, other = Metrics(), Metrics()
    metrics.increment("inbound_new", 3)
    metrics.increment("inbound_duplicates", 2)
    metrics.increment("webhook_signature_invalid")
    metrics.increment("inbound_processed")
    metrics.increment("outbound_sent")
    metrics.increment("outbound_error_131026")
    metrics.increment("outbound_error_None")
    metrics.increment("outbound_refused_outside_window")
    metrics.increment("outbound_refused_blocked_phi")
    metrics.increment("outbound_dead_letters")
    metrics.increment("inbound_dead_lettered")
    metrics.increment("Not An Event +15550101001")  # a bug's name: counted, not exposed
    with metrics.time_turn():
        pass
    metrics.set_queue_depth({"reminder": 4, "survey": 1})
    metrics.set_queue_depth({"reminder": 2})
    assert metrics.snapshot()["inbound_new"] == 3 and metrics.snapshot()["other"] == 1
    assert other.snapshot() == {}  # per-instance registries
    found = samples(metrics.exposition().decode())
    assert found[("whatsapp_inbound_total", (("result", "accepted"),))] == 3
    assert found[("whatsapp_inbound_total", (("result", "deduplicated"),))] == 2
    assert found[("whatsapp_inbound_total", (("result", "rejected"),))] == 1
    assert found[("whatsapp_turns_total", (("result", "processed"),))] == 1
    assert found[("whatsapp_turn_seconds_count", ())] == 1
    assert found[("whatsapp_sends_total", (("code", ""), ("result", "sent")))] == 1
    assert found[("whatsapp_sends_total", (("code", "131026"), ("result", "error")))] == 1
    assert found[("whatsapp_sends_total", (("code", "other"), ("result", "error")))] == 1
    assert found[("whatsapp_sends_total", (("code", "outside_window"), ("result", "refused")))] == 1
    assert found[("whatsapp_window_refusals_total", ())] == 1
    assert found[("whatsapp_phi_blocks_total", ())] == 1
    assert found[("whatsapp_dead_letters_total", (("direction", "outbound"),))] == 1
    assert found[("whatsapp_dead_letters_total", (("direction", "inbound"),))] == 1
    assert found[("whatsapp_outbox_queue_depth", (("priority", "reminder"),))] == 2
    assert found[("whatsapp_outbox_queue_depth", (("priority", "survey"),))] == 0
    assert "15550101001" not in metrics.exposition().decode()


@pytest.mark.servers
@pytest.mark.asyncio
async def test_the_gateway_serves_prometheus_metrics_without_patient_data(tmp_path, monkeypatch):
    from simulator.testing import TEST_APP_SECRET, running_simulator

    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    _, rasa_runner, rasa_url = await serve_assistant()
    async with running_simulator() as sim:
        gateway = await Gateway(sim, rasa_url, f"sqlite:///{tmp_path / 'gateway.db'}").start()
        try:
            patients = ["15550102001", "15550102002"]
            for patient in patients:
                await sim.user_says(patient, "hello, my card is 4111 1111 1111 1111")
            for patient in patients:
                assert len(await replies(sim, patient, 1)) == 1
            body = b'{"object":"whatsapp_business_account","entry":[]}'
            async with sim.session.post(gateway.url + PATH, data=body,
                                        headers={signature.HEADER: "sha256=" + "0" * 64}) as response:
                assert response.status in (401, 403)
            # A turn is counted once it is marked processed, just after its reply is queued:
            # read the metrics until both turns are in (or 10 s pass, and the asserts say so).
            for _ in range(100):
                async with sim.session.get(gateway.url + "/metrics") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == CONTENT_TYPE
                    text = await response.text()
                if samples(text).get(("whatsapp_turns_total", (("result", "processed"),)), 0) >= 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await gateway.stop()
    await rasa_runner.cleanup()
    found = samples(text)
    assert found[("whatsapp_inbound_total", (("result", "accepted"),))] >= 2
    assert found[("whatsapp_inbound_total", (("result", "rejected"),))] >= 1
    assert found[("whatsapp_turns_total", (("result", "processed"),))] >= 2
    assert found[("whatsapp_turn_seconds_count", ())] >= 2
    assert found[("whatsapp_sends_total", (("code", ""), ("result", "sent")))] >= 2
    assert ("whatsapp_outbox_queue_depth", (("priority", "reminder"),)) in found
    for (_name, labels) in found:
        for _label, value in labels:
            assert not PHONE_LIKE.search(value), value
    for secret in (*patients, "4111", "hello", TEST_APP_SECRET):
        assert secret not in text


@pytest.mark.asyncio
async def test_the_rasa_only_channel_serves_prometheus_metrics_too(tmp_path, monkeypatch):
    from tests.connector_support import make_channel

    channel = make_channel(tmp_path, monkeypatch)
    channel.metrics.increment("inbound_new")
    blueprint = channel.blueprint(lambda _message: None)
    [route] = [r for r in blueprint._future_routes if r.uri == "/metrics/prometheus"]
    reply = await route.handler(None)
    assert reply.content_type == CONTENT_TYPE
    found = samples(reply.body.decode())
    assert found[("whatsapp_inbound_total", (("result", "accepted"),))] == 1
    assert ("whatsapp_outbox_queue_depth", (("priority", "turn"),)) in found


def test_the_staff_inbox_serves_prometheus_metrics_without_a_session(tmp_path):
    import requests

    from tests.inbox_support import inbox_with_live_clock

    with inbox_with_live_clock(tmp_path) as server:
        requests.get(server.url + "/inbox/api/v1/me", timeout=10)  # 401: counted, its path not kept
        reply = requests.get(server.url + "/metrics", timeout=10)
    assert reply.status_code == 200 and "set-cookie" not in reply.headers
    found = samples(reply.text)
    assert found[("inbox_http_requests_total", (("method", "GET"), ("status", "4xx")))] >= 1
    assert "/inbox" not in reply.text
