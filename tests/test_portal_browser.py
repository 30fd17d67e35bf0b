"""The demo portal in a real browser (Chromium via Playwright): a link from a notification
asks for the date of birth, then shows the synthetic document; the same link opened again,
a forged link and a wrong date of birth get clear pages."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.test_notifications_api import api  # noqa: F401  (module fixture: live clinic API)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="Debian's Chromium (/usr/bin/chromium) is not installed")
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")


@pytest.mark.asyncio
async def test_link_then_birth_date_then_document_and_a_reused_link(api):  # noqa: F811
    from clinic.records.store import RecordStore

    patient = api.backend.register_patient("contact-browser", "Alex Example", dt.date(1979, 11, 23),
                                           "conv-browser", "whatsapp")
    RecordStore(api.sessions).put(patient.id, "document", "ready", subtype="referral_letter", document_id="ref-1")
    issued = api.portal.issue(patient.id, "ref-1", "document")
    link = f"{api.url}/portal/t/{issued.token}"
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page()
            await page.goto(link)
            assert await page.title() == "Confirm it's you · Riverside Family Clinic portal"
            await page.fill("#birth_date", "1980-01-01")
            await page.click("#open")
            assert "match our records" in await page.inner_text("#error")
            await page.fill("#birth_date", "1979-11-23")
            await page.click("#open")
            table = await page.inner_text("#document")
            assert "Alex Example" in table and "Referred to" in table
            assert "Referral letter" in await page.inner_text("h1")
            # The same link again (e.g. forwarded): a clear page, no document.
            response = await page.goto(link)
            assert response.status == 410
            assert await page.get_attribute("#refusal", "data-reason") == "used"
            assert "already been used" in await page.inner_text("h1")
            response = await page.goto(f"{api.url}/portal/t/{'A' * 54}")
            assert response.status == 404 and "not valid" in await page.inner_text("h1")
        finally:
            await browser.close()
    outcomes = [entry["outcome"] for entry in api.portal.access_log(20)]
    assert {"second_factor_failed", "redeemed", "used", "forged"} <= set(outcomes)
