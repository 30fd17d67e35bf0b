"""The staff inbox in a real browser (Debian's Chromium driven by Playwright): log in with
password and TOTP (first login shows the key), claim a waiting ticket, reply, resolve; the
patient's hostile text stays text, the bot is paused and resumed over Rasa's HTTP API; the
page names the patient by a friendly label, shows tapped buttons by their titles, WhatsApp's
*bold* as bold and times in the clinic's time zone; the patient is told who has joined."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pyotp
import pytest

from clinic.inbox.model import TicketState
from clinic.inbox.rasa_http import RasaHttp
from clinic.inbox.testing import FakeRasa
from clinic.language.memory import LanguageMemory
from tests.inbox_support import PASSWORD, LiveClock, build_world, conversation, running_inbox

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
SCREENSHOT = Path(tempfile.gettempdir()) / "inbox-ticket.png"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> chest feels tight'
REPLY = ("Hello, this is Nina from the nurse team. Please call 112 if it gets worse. "
         "Здравствуйте, если станет хуже, звоните 112. 如果情况恶化，请拨打112。")
JOINED_RU = "К чату подключается Nina из команды медсестёр. Ответ придёт здесь, в этом чате."
# Earlier in the conversation: the assistant's buttons and the patient's tap, as the
# WhatsApp channel logs them (payload for the assistant, title with it). 08:05 UTC is 09:05
# in the clinic (content/clinic.yml: Europe/Berlin, CET in January).
EARLIER = dt.datetime(2026, 1, 15, 8, 5, tzinfo=dt.timezone.utc).timestamp()
BUTTONS_AND_TAP = [
    {"event": "bot", "text": "Our *nurse team* isn't available right now.", "timestamp": EARLIER,
     "data": {"buttons": [{"title": "Call me back", "payload": "/request_callback"},
                          {"title": "I'll wait here", "payload": "/deny"}]}},
    {"event": "user", "text": "/deny", "timestamp": EARLIER + 60,
     "metadata": {"whatsapp": {"kind": "button_reply", "redacted": [], "title": "I'll wait here"}}},
]

# In CI (.ci/run installs Chromium) a missing browser is a failure, never a silent skip.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def test_login_with_totp_claim_reply_resolve(tmp_path):
    rasa = FakeRasa()
    rasa.start()
    world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
    patient = conversation("browser-patient")
    RasaHttp(rasa.url, rasa.token).append(patient, BUTTONS_AND_TAP)
    rasa.say(patient, XSS)
    LanguageMemory(world.sessions).remember(patient, "ru")
    ticket = world.inbox.open_for_handoff(patient, "nurse").ticket
    try:
        with running_inbox(world) as server, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Password, then the TOTP step, which shows the key on the first login.
            page.goto(f"{server.url}/inbox/queues")
            assert page.url.endswith("/inbox/login")
            page.fill("#username", "nina")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_url("**/inbox/login/totp")
            secret = page.inner_text("#totp-secret").strip()
            assert secret == world.secrets["nina"]
            page.fill("#code", "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
            page.click("#verify")
            assert "wrong user name, password or code" in page.inner_text("[role=alert]")
            page.fill("#code", pyotp.TOTP(secret).now())
            page.click("#verify")
            page.wait_for_url("**/inbox/queues")

            # The queue shows the waiting ticket and its language; open it, claim it.
            assert page.inner_text(f"#ticket-row-{ticket.id} .lang") == "Русский"
            page.click(f"#ticket-row-{ticket.id} a")
            page.wait_for_url(f"**/inbox/tickets/{ticket.id}")
            assert page.inner_text("#state") == "waiting"
            assert page.inner_text("#language") == "Русский"
            timeline = page.inner_text("#timeline")
            assert '<script>window.__xss=2</script>' in timeline  # shown as text…
            assert page.evaluate("window.__xss") is None          # …never run
            # Who the patient is, what they saw and when, for staff.
            assert page.inner_text("#patient-label") == ticket.patient_label != patient
            assert page.inner_text("#timeline .msg-patient .text >> nth=0") == "I'll wait here"
            assert "/deny" not in timeline
            assert page.inner_text("#timeline .msg-bot strong") == "nurse team"  # *bold*, rendered
            assert "*" not in page.inner_text("#timeline .msg-bot >> nth=0")
            assert page.inner_text("#timeline .msg-bot .at >> nth=0") == "2026-01-15 09:05 CET"
            page.click("#claim")
            page.wait_for_selector("#reply-text")
            assert page.inner_text("#state") == "assigned" and page.inner_text("#owner") == "Nina"
            assert rasa.paused(patient)
            # The patient was told who joined, in Russian; staff see it as the inbox's notice.
            assert page.inner_text(".msg-notice .text") == JOINED_RU

            # Reply: it reaches the conversation and shows once in the timeline.
            page.fill("#reply-text", REPLY)
            page.click("#reply")
            page.wait_for_selector(".msg-staff")
            assert page.locator(".msg-staff").count() == 1
            assert REPLY in page.inner_text(".msg-staff")
            sent = [e["text"] for e in rasa.events(patient) if e.get("metadata", {}).get("inbox_message_id")]
            assert sent == [JOINED_RU, REPLY]  # the reply as typed
            page.fill("#note-text", "Advised emergency number; follow up tomorrow")
            page.click("#add-note")
            page.wait_for_selector(".msg-note")
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # Resolve with a reason: back to the queues, the bot answers again.
            page.select_option("#resolve-reason", "answered")
            page.click("#resolve")
            page.wait_for_url("**/inbox/queues")
            assert "resolved" in page.inner_text(".flash")
            assert not rasa.paused(patient) and world.inbox.mode(patient) == "bot"
            assert rasa.say(patient, "thank you")  # the next message goes to the bot

            page.click("#logout")
            page.wait_for_url("**/inbox/login")
            assert errors == []
            browser.close()
    finally:
        rasa.stop()

    final = world.inbox.ticket_unchecked(ticket.id)
    assert final.state is TicketState.RESOLVED and final.resolution_reason == "answered"
    assert final.first_response_at is not None
    actions = [e.action for e in reversed(world.audit.entries(actor="nina", limit=50))]
    assert actions == ["password_ok", "login_failed", "login", "ticket_viewed", "ticket_claimed",
                       "ticket_viewed", "reply_sent", "ticket_viewed", "note_added", "ticket_viewed",
                       "ticket_resolved", "logout"]
    assert world.audit.verify().ok
