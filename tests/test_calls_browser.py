"""THE calling test (issue 19, item 1): a staff member calls a patient from the inbox and both
pages report a connected audio stream.

Real parts: the WhatsApp gateway and the Cloud API simulator as processes, the staff inbox
on a real port, one SQLite database, and Debian's Chromium with fake media devices (a
synthetic microphone, permission granted) for the staff page and the patient's phone. The
signalling goes the way production's does: the staff page's SDP offer → the inbox → the
call-action queue → the gateway → POST /{phone_number_id}/calls (the simulator) → the phone
rings; the phone's SDP answer → the simulator's `calls` webhook → the gateway → the inbox →
the staff page. The audio flows directly between the two pages (WebRTC on this machine).
Then the call is recorded on the ticket with its outcome and duration, its SDPs erased."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import urllib.request
from pathlib import Path

import pyotp
import pytest

from benchmarks.stack import Stack
from clinic.inbox.testing import FakeRasa
from clinic.messaging.store import ContactRow
from clinic.privacy import ContactCipher, contact_key
from tests.inbox_support import PASSWORD, LiveClock, _template, build_world, running_inbox

CHROMIUM = Path("/usr/bin/chromium")
MEDIA_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
              "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"]
WA_ID = "15550401919"  # synthetic

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

# Inbound audio as each page's RTCPeerConnection reports it.
AUDIO_IN = """async (name) => {
  const pc = window[name] && window[name].pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  let packets = 0, bytes = 0;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") {
    packets += s.packetsReceived || 0; bytes += s.bytesReceived || 0; } });
  return {state: pc.connectionState, packets, bytes};
}"""


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def call_rows(database: Path, direction: str = "business") -> list:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT direction, state, outcome, duration_seconds, offer_sdp, answer_sdp, "
                          "started_at, ended_at, call_id, team, ticket_id FROM wa_calls WHERE direction = ? "
                          "ORDER BY id", (direction,)).fetchall()


def wait_until(check, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world_and_stack(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("calls")
    rasa = FakeRasa()
    rasa.start()
    stack = Stack(tmp_path / "stack", tmp_path / "no-model", ingress=True)
    # Teams staffed all day: the gateway gives Meta these as the calling hours (a patient's
    # call outside them would not go through), whatever the hour the test runs at.
    stack.env["CLINIC_RECEPTION_HOURS"] = stack.env["CLINIC_NURSE_LINE_HOURS"] = "mon-sun 00:00-23:59"
    world = build_world(stack.database, rasa, LiveClock())
    key = _template(tmp_path)["key"]
    stack.env["CLINIC_ENCRYPTION_KEY"] = key.decode()  # the gateway decrypts the address the inbox's key sealed
    conversation = contact_key(WA_ID, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    with world.sessions() as session, session.begin():
        session.add(ContactRow(conversation_id=conversation, address_encrypted=ContactCipher(key).encrypt(WA_ID),
                               created_at=LiveClock()()))
    ticket = world.inbox.open_for_handoff(conversation, "nurse").ticket
    world.inbox.claim(world.members["nina"].actor, ticket.id)
    try:
        stack.start_ingress()  # no Rasa: calls need none
        stack.start_simulator()
        yield world, stack, ticket
    finally:
        stack.stop()
        rasa.stop()


_LAST_STEP = [-1]


def log_in(page, server, world) -> None:
    # The inbox accepts a code only from a later 30-second step than the last one it accepted
    # (replay refused), so each login takes a fresh step and types that step's code, not
    # whatever `now()` gives a moment later: a step boundary in between made CI's second
    # login type a code the inbox had already seen.
    totp = pyotp.TOTP(world.secrets["nina"])
    step = int(time.time()) // totp.interval
    while step <= _LAST_STEP[0]:
        time.sleep(1)
        step = int(time.time()) // totp.interval
    _LAST_STEP[0] = step
    code = totp.at(step * totp.interval)
    page.goto(f"{server.url}/inbox/login")
    page.fill("#username", "nina")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url("**/inbox/login/totp")
    page.fill("#code", code)
    page.click("#verify")
    page.wait_for_url("**/inbox/queues")


def test_staff_call_a_patient_and_both_pages_have_audio(world_and_stack):
    world, stack, ticket = world_and_stack
    simulator = stack.url("simulator")
    # The patient allowed the clinic to call them (a call-permission reply).
    assert post(f"{simulator}/_sim/users/{WA_ID}/call-permission", {"response": "accept"})["permission"]["status"] \
        == "granted"

    def permission_rows():
        with sqlite3.connect(stack.database) as db:
            return db.execute("SELECT response FROM wa_call_permissions").fetchall()
    assert wait_until(permission_rows, what="the permission reply at the gateway") == [("accept",)]
    with running_inbox(world) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=MEDIA_ARGS)
        try:
            errors: list = []
            staff = browser.new_context().new_page()
            phone = browser.new_context().new_page()
            for page in (staff, phone):
                page.on("pageerror", lambda error: errors.append(str(error)))
            phone.goto(f"{simulator}/?user={WA_ID}")
            phone.wait_for_selector("body[data-call-ready='1']", state="attached")
            log_in(staff, server, world)
            staff.goto(f"{server.url}/inbox/tickets/{ticket.id}")
            # The reply went simulator → gateway: recorded for staff, not a message for the assistant.
            assert "allows the clinic to call them" in staff.inner_text("#call-permission")
            with sqlite3.connect(stack.database) as db:
                assert db.execute("SELECT count(*) FROM wa_inbox").fetchone() == (0,)
            staff.click("#call-patient")

            # The phone rings (the offer went inbox → gateway → simulator); the patient answers.
            phone.wait_for_selector("#call-screen[data-state='incoming']", timeout=20000)
            phone.click("#call-accept")

            # Both ends connected, and audio arrives at each of them.
            staff.wait_for_selector("#calls[data-connection='connected']", state="attached", timeout=30000)
            phone.wait_for_selector("body[data-call-connection='connected']", state="attached", timeout=30000)
            staff_audio = wait_until(lambda: (s := staff.evaluate(AUDIO_IN, "inboxCall")) and s["packets"] > 20 and s,
                                     what="audio at the staff page")
            phone_audio = wait_until(lambda: (s := phone.evaluate(AUDIO_IN, "simCall")) and s["packets"] > 20 and s,
                                     what="audio at the patient's phone")
            assert staff_audio["state"] == phone_audio["state"] == "connected"
            assert staff_audio["bytes"] > 0 and phone_audio["bytes"] > 0
            assert staff.inner_text("#call-status").startswith("Connected")
            [(direction, state, *_)] = call_rows(stack.database)
            assert (direction, state) == ("business", "accepted")

            time.sleep(1.2)  # a call that lasts a second or more
            staff.click("#call-hangup")
            phone.wait_for_selector("#call-screen[data-state='ended']", timeout=20000)
            wait_until(lambda: call_rows(stack.database)[0][1] == "ended", what="the terminate webhook")
            staff.wait_for_selector("#call-status[data-state='ended']", timeout=10000)
            assert not errors, errors

            # Recorded on the ticket: direction, start, duration, outcome; no SDP kept.
            [(direction, state, outcome, duration, offer, answer, started, ended, call_id, *_)] = \
                call_rows(stack.database)
            assert (direction, state, outcome) == ("business", "ended", "completed")
            assert duration is not None and duration >= 1 and started and ended and call_id.startswith("wacid.")
            assert offer is None and answer is None
            staff.reload()
            history = staff.inner_text("#call-history")
            assert "clinic → patient" in history and "completed" in history and f"{duration} s" in history
            assert f"Voice call, clinic → patient: completed ({duration} s)" in staff.inner_text("#timeline")
            actions = [e.action for e in world.audit.entries(actor="nina")]
            assert "call_placed" in actions and "call_ended" in actions
        finally:
            browser.close()
    # The gateway's log names calls by row, never the patient's number or an SDP.
    log = stack.log("ingress")
    assert "Call 1: connect sent" in log
    assert WA_ID not in log and "v=0" not in log and "a=fingerprint" not in log


def test_a_patient_calls_the_clinic_and_the_team_answers_on_the_ticket_page(world_and_stack):
    """A user-initiated call: the phone's offer in the `calls` webhook rings on the ticket page
    of the team the conversation is routed to (its open ticket: nurse); the agent answers
    (pre_accept, then accept, with the page's SDP answer) and both ends have audio; the
    patient hangs up and the call is recorded."""
    world, stack, ticket = world_and_stack
    simulator = stack.url("simulator")
    with running_inbox(world) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=MEDIA_ARGS)
        try:
            errors: list = []
            staff = browser.new_context().new_page()
            phone = browser.new_context().new_page()
            for page in (staff, phone):
                page.on("pageerror", lambda error: errors.append(str(error)))
            log_in(staff, server, world)
            staff.goto(f"{server.url}/inbox/tickets/{ticket.id}")
            phone.goto(f"{simulator}/?user={WA_ID}")
            phone.wait_for_selector("body[data-call-ready='1']", state="attached")
            # The gateway gave Meta the clinic's calling settings at its start: the button shows.
            phone.wait_for_selector("body[data-call-icon='shown']", state="attached")
            phone.click("#call-clinic")

            staff.wait_for_selector("#call-incoming:not([hidden])", timeout=20000)
            [(direction, state, *_, team, ticket_id)] = call_rows(stack.database, "user")
            assert (direction, state, team, ticket_id) == ("user", "ringing", "nurse", ticket.id)
            calls_page = staff.context.new_page()
            calls_page.goto(f"{server.url}/inbox/calls")
            assert "Nurse" in calls_page.inner_text("#ringing") and f"ticket #{ticket.id}" in \
                calls_page.inner_text("#ringing")
            calls_page.close()
            staff.click("#call-accept")

            staff.wait_for_selector("#calls[data-connection='connected']", state="attached", timeout=30000)
            phone.wait_for_selector("body[data-call-connection='connected']", state="attached", timeout=30000)
            staff_audio = wait_until(lambda: (s := staff.evaluate(AUDIO_IN, "inboxCall")) and s["packets"] > 20 and s,
                                     what="audio at the staff page")
            phone_audio = wait_until(lambda: (s := phone.evaluate(AUDIO_IN, "simCall")) and s["packets"] > 20 and s,
                                     what="audio at the patient's phone")
            assert staff_audio["bytes"] > 0 and phone_audio["bytes"] > 0
            sim_call = json.loads(urllib.request.urlopen(f"{simulator}/_sim/calls?user={WA_ID}").read())["calls"][-1]
            assert sim_call["actions"] == ["pre_accept", "accept"]

            phone.click("#call-hangup")
            wait_until(lambda: call_rows(stack.database, "user")[0][1] == "ended", what="the terminate webhook")
            staff.wait_for_selector("#call-status[data-state='ended']", timeout=10000)
            [(_, _, outcome, duration, offer, answer, *_)] = call_rows(stack.database, "user")
            assert outcome == "completed" and duration is not None and offer is None and answer is None
            staff.reload()
            assert "patient → clinic" in staff.inner_text("#call-history")
            assert "call_answered" in [e.action for e in world.audit.entries(actor="nina")]
            assert not errors, errors
        finally:
            browser.close()
