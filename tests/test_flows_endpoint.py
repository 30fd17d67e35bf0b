"""The booking Flow's data endpoint (gateway/flow_endpoint.py) with the demo clinic on a real
database: ping, INIT, the date picker's days, times, first-time patients, and Meta's error
statuses (421, 427, 432). Requests are sealed exactly as Meta does (whatsapp/flows_crypto.py,
checked against the reference algorithm in tests/test_flows_crypto.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from clinic.booking_flow import tokens
from clinic.booking_flow.screens import LANGUAGES, BookingFlowScreens, texts
from clinic.privacy import contact_key
from clinic.scheduling.model import SlotQuery
from gateway.flow_endpoint import PATH, FlowEndpoint, add_route
from tests.scheduling_support import BERLIN, NOW, Clock, demo_backend
from whatsapp import signature
from whatsapp.flows_crypto import (
    decrypt_response,
    encrypt_request,
    generate_private_key_pem,
    load_private_key,
)

PSEUDONYM_KEY = b"p" * 32
APP_SECRET = "app-secret-for-tests"
CONVERSATION = "conv-pseudonym-1"
KEY = load_private_key(generate_private_key_pem())


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    with demo_backend(f"sqlite:///{tmp_path / 'clinic.db'}", clock=clock) as (backend, _, _):
        screens = BookingFlowScreens(backend, BERLIN, PSEUDONYM_KEY, clock=clock)
        yield FlowEndpoint(KEY, screens, APP_SECRET, PSEUDONYM_KEY, clock=clock), backend, clock


def token(language="en", now=NOW, conversation=CONVERSATION, ttl=tokens.DEFAULT_TTL):
    return tokens.issue(conversation, "whatsapp", language, PSEUDONYM_KEY, now, ttl)


def call(endpoint, payload, public_key=None):
    body, aes_key, iv = encrypt_request(payload, public_key or KEY.public_key())
    status, text = endpoint.answer(json.dumps(body).encode())
    return status, (decrypt_response(text, aes_key, iv) if status == 200 else text)


def exchange(endpoint, screen, data, language="en", action="data_exchange"):
    status, answer = call(endpoint, {"version": "3.0", "action": action, "screen": screen,
                                     "data": data, "flow_token": token(language)})
    assert status == 200, answer
    return answer


def test_ping_answers_active(setup):
    endpoint, _, _ = setup
    assert call(endpoint, {"version": "3.0", "action": "ping"}) == (200, {"data": {"status": "active"}})


def test_a_request_for_another_key_is_421(setup):
    endpoint, _, _ = setup
    other = load_private_key(generate_private_key_pem())
    status, _ = call(endpoint, {"version": "3.0", "action": "ping"}, public_key=other.public_key())
    assert status == 421


def test_an_expired_forged_or_foreign_token_is_427(setup):
    endpoint, _, clock = setup
    expired = token(now=NOW - dt.timedelta(hours=3))
    forged = token().rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
    for bad in (expired, forged, "not-a-token"):
        status, _ = call(endpoint, {"version": "3.0", "action": "INIT", "flow_token": bad})
        assert status == 427
    # The same token, still valid, works; once the clock passes its expiry, it does not.
    fine = token(ttl=dt.timedelta(minutes=5))
    assert call(endpoint, {"version": "3.0", "action": "INIT", "flow_token": fine})[0] == 200
    clock.now = NOW + dt.timedelta(minutes=6)
    assert call(endpoint, {"version": "3.0", "action": "INIT", "flow_token": fine})[0] == 427


def test_init_lists_the_live_services(setup):
    endpoint, backend, _ = setup
    status, answer = call(endpoint, {"version": "3.0", "action": "INIT", "flow_token": token()})
    assert status == 200 and answer["screen"] == "SERVICE" and answer["version"] == "3.0"
    assert [s["id"] for s in answer["data"]["services"]] == [s.id for s in backend.services()]
    assert answer["data"]["heading"] == texts("en")["service_heading"]


def test_the_date_picker_offers_only_days_with_free_slots(setup):
    endpoint, backend, _ = setup
    answer = exchange(endpoint, "PRACTITIONER", {"service": "physiotherapy", "practitioner": "silva"})
    assert answer["screen"] == "DATE"
    data = answer["data"]
    assert data["min_date"] == "2025-03-24"  # today (Monday) has free times
    # Rafael Silva works Monday to Friday: the weekend cannot be picked.
    assert {"2025-03-29", "2025-03-30"} <= set(data["unavailable_dates"])
    assert "2025-03-26" not in data["unavailable_dates"]
    # Every one of his Wednesday slots is booked: Wednesday cannot be picked any more.
    patient = backend.register_patient("k" * 64, "Test Patient", dt.date(1980, 1, 1), "c", "whatsapp")
    start = dt.datetime(2025, 3, 26, tzinfo=BERLIN)
    for slot in backend.search_slots(SlotQuery("physiotherapy", start, start + dt.timedelta(days=1),
                                               practitioner_id="silva", limit=100)):
        backend.book(slot.id, patient.id, "physiotherapy", NOW)
    data = exchange(endpoint, "PRACTITIONER", {"service": "physiotherapy", "practitioner": "silva"})["data"]
    assert "2025-03-26" in data["unavailable_dates"]
    assert "2025-03-25" not in data["unavailable_dates"] and "2025-03-27" not in data["unavailable_dates"]


def test_times_of_the_day_then_details_for_a_first_time_patient_then_confirm(setup):
    endpoint, backend, _ = setup
    answer = exchange(endpoint, "SERVICE", {"service": "gp_consultation"})
    assert answer["screen"] == "PRACTITIONER"
    assert [p["id"] for p in answer["data"]["practitioners"]] == \
        ["any", *(p.id for p in backend.practitioners("gp_consultation"))]
    answer = exchange(endpoint, "DATE", {"service": "gp_consultation", "practitioner": "okafor", "day": "2025-03-25"})
    assert answer["screen"] == "TIME"
    times = answer["data"]["times"]
    start = dt.datetime(2025, 3, 25, tzinfo=BERLIN)
    free = backend.search_slots(SlotQuery("gp_consultation", start, start + dt.timedelta(days=1),
                                          practitioner_id="okafor", limit=100))
    assert [t["id"] for t in times] == [s.id for s in free]
    assert times[0]["title"].startswith("08:00")
    chosen = {"service": "gp_consultation", "practitioner": "okafor", "day": "2025-03-25", "slot": times[0]["id"]}
    answer = exchange(endpoint, "TIME", chosen)
    assert answer["screen"] == "DETAILS"  # nobody is registered for this conversation yet
    bad = exchange(endpoint, "DETAILS", {**chosen, "name": "1234", "birth_date": "1985-04-03"})
    assert bad["screen"] == "DETAILS" and bad["data"]["error_message"] == texts("en")["name_invalid"]
    answer = exchange(endpoint, "DETAILS", {**chosen, "name": "Anna Petrova", "birth_date": "1985-04-03"})
    assert answer["screen"] == "CONFIRM"
    assert answer["data"]["slot"] == times[0]["id"] and answer["data"]["name"] == "Anna Petrova"
    assert "Dr Amara Okafor" in answer["data"]["summary"]


def test_a_known_patient_goes_straight_to_confirm_and_a_taken_time_is_refused(setup):
    endpoint, backend, _ = setup
    patient = backend.register_patient(contact_key(CONVERSATION, "whatsapp", PSEUDONYM_KEY), "Known Patient",
                                       dt.date(1970, 5, 5), CONVERSATION, "whatsapp")
    times = exchange(endpoint, "DATE", {"service": "gp_consultation", "practitioner": "any",
                                        "day": "2025-03-25"})["data"]["times"]
    chosen = {"service": "gp_consultation", "practitioner": "any", "day": "2025-03-25", "slot": times[0]["id"]}
    assert exchange(endpoint, "TIME", chosen)["screen"] == "CONFIRM"
    backend.book(times[0]["id"], patient.id, "gp_consultation", NOW)  # someone is quicker
    answer = exchange(endpoint, "TIME", chosen)
    assert answer["screen"] == "TIME" and answer["data"]["error_message"] == texts("en")["time_taken"]
    assert times[0]["id"] not in [t["id"] for t in answer["data"]["times"]]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_screens_speak_the_patients_language(setup, language):
    endpoint, _, _ = setup
    words = texts(language)
    init = call(endpoint, {"version": "3.0", "action": "INIT", "flow_token": token(language)})[1]
    assert init["data"]["title"] == words["title"] and init["data"]["button"] == words["continue"]
    practitioners = exchange(endpoint, "SERVICE", {"service": "gp_consultation"}, language)["data"]
    assert practitioners["practitioners"][0]["title"] == words["anyone"]
    times = exchange(endpoint, "DATE", {"service": "gp_consultation", "practitioner": "any", "day": "2025-03-25"},
                     language)["data"]
    assert times["label"] == words["time_label"]
    if language != "en":  # written for the project, not English left in place
        assert words["title"] != texts("en")["title"] and words["cta"] != texts("en")["cta"]
    assert set(words) == set(texts("en"))


def test_the_http_route_checks_the_signature_first(setup):
    endpoint, _, _ = setup

    async def scenario():
        app = web.Application()
        add_route(app, endpoint)
        async with TestClient(TestServer(app)) as client:
            body, aes_key, iv = encrypt_request({"version": "3.0", "action": "ping"}, KEY.public_key())
            raw = json.dumps(body).encode()
            unsigned = await client.post(PATH, data=raw)
            wrong = await client.post(PATH, data=raw, headers={signature.HEADER: signature.sign(raw, "other")})
            good = await client.post(PATH, data=raw, headers={signature.HEADER: signature.sign(raw, APP_SECRET)})
            return unsigned.status, wrong.status, good.status, await good.text(), aes_key, iv

    unsigned, wrong, good, text, aes_key, iv = asyncio.run(scenario())
    assert (unsigned, wrong, good) == (432, 432, 200)
    assert decrypt_response(text, aes_key, iv) == {"data": {"status": "active"}}
