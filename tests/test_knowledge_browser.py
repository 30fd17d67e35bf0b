"""The documents page in Chromium (issue 17): an administrator uploads the demo patient guide
PDF, reads the extracted passages with their pages, approves it; the search answers from it
with its source; retiring it stops the answers. Real inbox server, real SQLite, real browser."""

from __future__ import annotations

import os
from pathlib import Path

import pyotp
import pytest

from clinic.inbox.testing import FakeRasa
from clinic.knowledge.demo import DIRECTORY
from clinic.knowledge.search import Searcher
from tests.inbox_support import PASSWORD, LiveClock, build_world, running_inbox

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def test_admin_uploads_reviews_approves_and_retires_a_pdf(tmp_path):
    rasa = FakeRasa()
    rasa.start()
    world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
    searcher = Searcher(world.sessions)
    try:
        with running_inbox(world) as server, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"{server.url}/inbox/login")
            page.fill("#username", "adam")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_url("**/inbox/login/totp")
            page.fill("#code", pyotp.TOTP(world.secrets["adam"]).now())
            page.click("#verify")
            page.wait_for_url("**/inbox/admin/users")

            page.click("text=Documents")
            page.wait_for_url("**/inbox/knowledge")
            page.fill("#title", "Patient guide 2026")
            page.fill("#topic", "patient_guide")
            page.set_input_files("#file", str(DIRECTORY / "patient-guide.en.pdf"))
            page.click("#upload")
            page.wait_for_url("**/inbox/knowledge/versions/*")
            assert page.inner_text("#state") == "draft"
            rows = page.locator("#passages tr.passage")
            assert rows.count() == 15
            wifi = page.locator("#passages tr.passage", has_text="Free Wi-Fi")
            assert "page 3" in wifi.inner_text() and "en" in wifi.inner_text()
            # A draft is never offered to patients.
            assert not searcher.answer("Is there wifi in the waiting room?", "en").found

            page.click("#approve")
            page.wait_for_load_state()
            assert page.inner_text("#state") == "approved"
            answer = searcher.answer("Do you do home visits?", "en")
            assert answer.found and answer.source == "From: Patient guide 2026, page 1"
            assert answer.quote.startswith("We offer home visits")

            page.click("text=← Documents")
            page.click("#documents button:has-text('Retire')")
            page.wait_for_load_state()
            assert "retired" in page.inner_text("#documents")
            assert not searcher.answer("Do you do home visits?", "en").found
            browser.close()
    finally:
        rasa.stop()

    actions = [entry.action for entry in world.audit.entries(actor="adam")]
    for action in ("knowledge_uploaded", "knowledge_version_viewed", "knowledge_approved", "knowledge_retired"):
        assert action in actions
    assert world.audit.verify().ok
