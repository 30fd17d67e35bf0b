"""Media for staff (issue 19, item 3) through the real stack: the simulator (Meta), the
WhatsApp gateway, Rasa, the action server and the staff inbox as separate processes over
real HTTP, real SQLite files.

A patient asks for a person; staff claim the ticket; the patient then sends a photo. The
gateway downloads it through the simulator's Graph media endpoints after the turn and stores
it sealed in the media folder beside the clinic database; the staff member's ticket page
shows it in the transcript as an ``<img>``, and the inbox serves it decrypted, with one audit
row per view. The patient's side is as before (no reply while staff have the chat).
"""

from __future__ import annotations

import base64
import re
import sqlite3
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.messaging.media import media_directory
from clinic.privacy import contact_key
from tests.inbox_support import demo_staff_login, inbox_api
from tests.test_inbound_media import PNG_SIGNATURE, png

pytestmark = [pytest.mark.model, pytest.mark.servers]
WA_ID = "15550307919"  # synthetic
PHOTO = png(4, 4, (10, 120, 200))


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("media-e2e"), model, ingress=True)
    running.env["CLINIC_RECEPTION_HOURS"] = "mon-sun 00:00-23:59"
    running.start()
    running.start_inbox()
    yield running
    running.stop()


def clinic_rows(stack: Stack, sql: str, **params) -> list:
    with sqlite3.connect(stack.database) as db:
        return db.execute(sql, params).fetchall()


def test_a_photo_sent_during_a_handoff_is_in_the_staff_transcript(stack):
    staff = demo_staff_login(stack, "demo-agent", "agent")  # nurse and reception: may see media
    conversation = contact_key(WA_ID, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    stack.say(WA_ID, "hi")
    seen = len(stack.wait_for_replies(WA_ID, 2, timeout=90))
    stack.say(WA_ID, "I'd like to talk to a real person please")
    queued = stack.wait_for_replies(WA_ID, seen + 1, timeout=90)[seen:]
    seen += len(queued)
    assert "team" in reply_text(queued[0])
    queues = inbox_api(staff, "GET", "/queues")
    [ticket] = [t for team in queues["teams"].values() for t in team if t["conversation_id"] == conversation]
    inbox_api(staff, "POST", f"/tickets/{ticket['id']}/claim")
    seen = len(stack.wait_for_replies(WA_ID, seen + 1))  # "… has joined the chat"

    sent = stack.sim(f"/_sim/users/{WA_ID}/messages", {
        "type": "image", "data_base64": base64.b64encode(PHOTO).decode(), "mime_type": "image/png",
        "name": "Synthetic Patient"})
    wamid = sent["message"]["id"]
    deadline = time.monotonic() + 60
    rows: list = []
    while time.monotonic() < deadline:
        rows = clinic_rows(stack, "SELECT id, state, conversation_id, wamid FROM inbound_media")
        if rows and rows[0][1] != "pending":
            break
        time.sleep(0.3)
    [(media_id, state, media_conversation, media_wamid)] = rows
    assert (state, media_conversation, media_wamid) == ("stored", conversation, wamid)
    sealed = media_directory(f"sqlite:///{stack.database}") / f"{media_id}.sealed"
    assert sealed.exists() and PNG_SIGNATURE not in sealed.read_bytes()

    # The transcript (Rasa's tracker, with the message's id) shows the photo inline.
    deadline = time.monotonic() + 30
    url = f"/inbox/tickets/{ticket['id']}/media/{media_id}"
    page = ""
    while time.monotonic() < deadline:
        page = staff.get(f"{staff.base}/inbox/tickets/{ticket['id']}", timeout=30).text
        if f'<img src="{url}"' in page:
            break
        time.sleep(0.5)
    assert f'<img src="{url}"' in page, re.findall(r'<li class="msg msg-patient">.*?</li>', page, re.S)[-3:]
    viewed = staff.get(staff.base + url, timeout=30)
    assert viewed.status_code == 200 and viewed.content == PHOTO
    assert viewed.headers["content-type"] == "image/png" and viewed.headers["cache-control"] == "no-store"
    assert clinic_rows(stack, "SELECT actor, detail FROM inbox_audit WHERE action = 'media_viewed'") == [
        ("demo-agent", media_id)]
    # The patient got no reply from the assistant while staff have the chat, as before.
    time.sleep(1)
    assert len(stack.wait_for_replies(WA_ID, seen)) == seen
