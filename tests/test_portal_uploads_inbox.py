"""Patients' uploaded documents in the staff inbox (inbox/documents.py, templates/_documents.html):
listed on the ticket page of their conversation, downloaded decrypted by staff who may see
the ticket (nobody else), each download in the audit log; and the whole path in a real
browser (Chromium): the portal's landing page, an upload through a minted link, the file on
the ticket page, its download."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
from pathlib import Path

import pyotp
import pytest
import requests
import uvicorn

from clinic.api_keys import ApiKeys
from clinic.inbox.testing import FakeRasa
from clinic.portal import uploads as up
from clinic.portal.tokens import PortalTokens
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from clinic_api.app import create_app
from tests.inbox_support import PASSWORD, LiveClock, build_world, conversation, login, running_inbox
from tests.test_clinic_api import _free_port
from tests.test_portal_uploads import DOCUMENT_KEY, MARKER, PNG, TOKEN_KEY, pdf

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@contextlib.contextmanager
def inbox_with_documents(tmp_path):
    rasa = FakeRasa()
    rasa.start()
    world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
    tokens = PortalTokens(world.sessions, TOKEN_KEY)
    uploads = up.Uploads(world.sessions, up.DocumentCipher(DOCUMENT_KEY), tokens)
    try:
        with running_inbox(world) as server:
            # What python -m inbox does with wiring.build()'s documents.
            server.server.config.app.state.documents = up.Uploads(world.sessions, up.DocumentCipher(DOCUMENT_KEY))
            yield server, world, tokens, uploads
    finally:
        rasa.stop()


def new_ticket(world, name: str, team: str = "nurse"):
    patient = conversation(name)
    world.rasa.say(patient, "I have my insurance card")
    return patient, world.inbox.open_for_handoff(patient, team).ticket


def send(tokens, uploads, patient: str, name: str, data: bytes, kind: str = "insurance_card") -> up.UploadInfo:
    url, _ = up.issue_upload_link(tokens, "http://portal.example/portal", patient, kind)
    return uploads.receive(url.rsplit("/", 1)[1], name, data)


def test_staff_see_and_download_a_conversations_documents_and_each_download_is_audited(tmp_path):
    with inbox_with_documents(tmp_path) as (server, world, tokens, uploads):
        patient, ticket = new_ticket(world, "docs-1")
        other_patient, other_ticket = new_ticket(world, "docs-2")
        mine = send(tokens, uploads, patient, "Полис ОМС <img src=x onerror=alert(1)>.pdf", pdf())
        theirs = send(tokens, uploads, other_patient, "theirs.png", PNG)
        nina, bill, sara, adam = (login(server, name) for name in ("nina", "bill", "sara", "adam"))

        page = nina.get(f"{server.url}/inbox/tickets/{ticket.id}")
        assert page.status_code == 200
        assert 'id="documents"' in page.text and f'id="document-{mine.id}"' in page.text
        assert "Полис ОМС &lt;img src=x onerror=alert(1)&gt;.pdf" in page.text  # the name is text, never markup
        assert "insurance card" in page.text and ">PDF<" in page.text and theirs.id not in page.text
        url = f"{server.url}/inbox/tickets/{ticket.id}/documents/{mine.id}"
        downloaded = nina.get(url)
        assert downloaded.status_code == 200 and downloaded.content == pdf() and MARKER in downloaded.content
        assert downloaded.headers["content-type"] == "application/pdf"
        assert downloaded.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''%D0%9F%D0%BE%D0%BB%D0%B8%D1%81" in downloaded.headers["content-disposition"]
        assert downloaded.headers["cache-control"] == "no-store"
        assert sara.get(url).status_code == 200  # a supervisor sees every team

        # Nobody else: another team, an administrator, no session, another ticket's document.
        assert bill.get(url).status_code == 403
        assert adam.get(url).status_code == 403
        anonymous = requests.get(url, allow_redirects=False, timeout=10)
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/inbox/login"
        assert nina.get(f"{server.url}/inbox/tickets/{ticket.id}/documents/{theirs.id}").status_code == 404
        assert nina.get(f"{server.url}/inbox/tickets/{other_ticket.id}/documents/{mine.id}").status_code == 404
        assert nina.get(f"{server.url}/inbox/tickets/{ticket.id}/documents/pup_not-an-id").status_code == 404

        entries = world.audit.entries(action="document_downloaded")
        assert [(e.actor, e.detail, e.conversation_id, e.ticket_id) for e in entries] == \
            [("sara", mine.id, patient, ticket.id), ("nina", mine.id, patient, ticket.id)]
        assert all(e.client == "127.0.0.1" and "Полис" not in e.detail for e in entries)
        assert world.audit.verify().ok


def test_a_ticket_without_documents_says_so(tmp_path):
    with inbox_with_documents(tmp_path) as (server, world, _tokens, _uploads):
        _patient, ticket = new_ticket(world, "docs-none")
        page = login(server, "nina").get(f"{server.url}/inbox/tickets/{ticket.id}")
        assert page.status_code == 200 and 'id="no-documents"' in page.text


@contextlib.contextmanager
def running_clinic_api(world, tokens, uploads):
    app = create_app(SqlSchedulingBackend(world.sessions), ApiKeys(world.sessions), world.sessions,
                     settings=load_settings(), portal_tokens=tokens)
    app.state.uploads = uploads
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)")
def test_in_a_browser_landing_page_upload_then_the_document_on_the_ticket(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with inbox_with_documents(tmp_path) as (inbox, world, tokens, uploads), \
            running_clinic_api(world, tokens, uploads) as portal, sync_api.sync_playwright() as pw:
        patient, ticket = new_ticket(world, "browser-docs")
        url, _ = up.issue_upload_link(tokens, portal + "/portal", patient, "insurance_card")
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            # The landing page: what the portal is, no sign-in form.
            response = page.goto(portal + "/portal")
            assert response.status == 200 and page.inner_text("h1") == "Patient portal"
            assert "no password" in page.inner_text("#intro") and page.locator("input[type=password]").count() == 0
            page.click("#lang-ru")
            assert page.inner_text("h1") == "Портал пациента"
            page.click("#lang-en")

            # A file whose name lies is refused politely; the same link then takes the PDF.
            page.goto(url)
            assert page.inner_text("h1") == "Send your insurance card"
            page.set_input_files("#document", files=[{"name": "card.pdf", "mimeType": "application/pdf",
                                                      "buffer": b"MZ\x90\x00 not really a pdf"}])
            page.click("#send")
            assert page.get_attribute("#error", "data-reason") == "wrong_type"
            page.set_input_files("#document", files=[{"name": "insurance card.pdf", "mimeType": "application/pdf",
                                                      "buffer": pdf()}])
            page.click("#send")
            assert page.inner_text("h1") == "Thank you, we have received your document"
            assert "insurance card.pdf" in page.inner_text("#uploaded")
            response = page.goto(url)
            assert response.status == 410 and page.get_attribute("#refusal", "data-reason") == "used"

            # Staff: log in (password, TOTP), open the ticket, see and download the document.
            page.goto(f"{inbox.url}/inbox/login")
            page.fill("#username", "nina")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_url("**/inbox/login/totp")
            page.fill("#code", pyotp.TOTP(world.secrets["nina"]).now())
            page.click("#verify")
            page.wait_for_url("**/inbox/queues")
            page.goto(f"{inbox.url}/inbox/tickets/{ticket.id}")
            [stored] = uploads.for_conversation(patient)
            row = page.inner_text(f"#document-{stored.id}")
            assert "insurance card.pdf" in row and "PDF" in row and "insurance card" in row
            with page.expect_download() as download:
                page.click(f"#download-{stored.id}")
            assert download.value.suggested_filename == "insurance card.pdf"
            assert Path(download.value.path()).read_bytes() == pdf()
        finally:
            browser.close()
    assert [e.actor for e in world.audit.entries(action="document_downloaded")] == ["nina"]
    outcomes = [e["outcome"] for e in tokens.access_log(50)]
    assert {"upload_wrong_type", "uploaded", "used"} <= set(outcomes)
    assert dt.datetime.now(dt.timezone.utc) - stored.created_at < dt.timedelta(minutes=5)
