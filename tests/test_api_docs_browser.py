"""Issue 12: the clinic API's /api/docs works on a network cut off from the internet.

A real Chromium (Playwright) opens the page with every request that is not to the local
server aborted, as on an isolated clinic network: Swagger UI must still render the API's
title and its operations, and the page must not even try to reach another host (FastAPI's
default page loads Swagger UI from a CDN and stays blank there).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.test_clinic_api import api  # noqa: F401  (module fixture: live clinic API)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="Debian's Chromium (/usr/bin/chromium) is not installed")
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


@pytest.mark.asyncio
async def test_api_docs_render_with_the_internet_blocked(api):  # noqa: F811
    blocked: list[str] = []

    async def only_local(route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                   args=["--no-sandbox", "--disable-gpu"])
        try:
            context = await browser.new_context()
            await context.route("**/*", only_local)
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            response = await page.goto(f"{api.url}/api/docs")
            assert response.status == 200
            # Swagger UI builds the page from /api/openapi.json: the title and the operations.
            title = page.locator(".swagger-ui .info .title")
            await title.wait_for(timeout=15_000)
            assert "Clinic assistant API" in await title.inner_text()
            operations = page.locator(".swagger-ui .opblock")
            await operations.first.wait_for(timeout=15_000)
            paths = await page.locator(".swagger-ui .opblock-summary-path").all_inner_texts()
            assert any(p.startswith("/api/v1/") for p in paths), paths
            # One operation opens and shows its parameters, i.e. the UI's script is running.
            await operations.first.locator(".opblock-summary").click()
            await page.locator(".swagger-ui .opblock-body").first.wait_for(timeout=10_000)
            assert errors == []
        finally:
            await browser.close()
    assert blocked == [], f"the docs page tried to reach other hosts: {blocked}"
