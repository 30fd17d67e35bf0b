"""The simulator's chat page as a username patient (issue 19, item 4), in Debian's Chromium:
the page starts as a user whose number WhatsApp withholds, a bot answers by BSUID
(``recipient``) and the answer shows; **Change user id** sends Meta's
``user_changed_user_id`` and the page then chats under the new id."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import aiohttp
import pytest
from aiohttp import web

from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
from tests.test_simulator_chat_browser import CHROMIUM, CHROMIUM_ARGS, pytestmark  # noqa: F401
from whatsapp.users import is_bsuid

playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
USER = "15550133333"
USERNAME = "alex.demo"


class BsuidBot:
    """Answers each text by ``recipient`` (the sender's BSUID: there is no number to use)."""

    def __init__(self) -> None:
        self.received: List[Dict[str, Any]] = []
        self.graph_url = ""
        self.session: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""
        self.tasks: set = set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self.webhook)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/webhook"
        self.session = aiohttp.ClientSession(trust_env=False)

    async def stop(self) -> None:
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session:
            await self.session.close()
        if self.runner:
            await self.runner.cleanup()

    async def webhook(self, request: web.Request) -> web.Response:
        payload = json.loads(await request.read())
        for entry in payload["entry"]:
            for change in entry["changes"]:
                for message in change["value"].get("messages", []):
                    self.received.append(message)
                    if message["type"] == "text":
                        task = asyncio.get_running_loop().create_task(self.answer(message))
                        self.tasks.add(task)
                        task.add_done_callback(self.tasks.discard)
        return web.Response(text="ok")

    async def answer(self, message: Dict[str, Any]) -> None:
        assert self.session is not None
        body = {"messaging_product": "whatsapp", "recipient_type": "individual",
                "recipient": message["from_user_id"], "type": "text",
                "text": {"body": f"Hello, you said {message['text']['body']}"}}
        async with self.session.post(self.graph_url, json=body,
                                     headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}) as resp:
            assert resp.status == 200, await resp.text()


@pytest.mark.asyncio
async def test_the_chat_page_as_a_username_patient_and_the_id_change() -> None:
    bot = BsuidBot()
    await bot.start()
    try:
        async with running_simulator(webhook_url=bot.url, delivered_delay=0.05) as sim:
            bot.graph_url = sim.graph_url()
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page(viewport={"width": 420, "height": 860})
                    page.set_default_timeout(8000)
                    errors: List[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    await page.goto(f"{sim.url}/?user={USER}&name=Alex%20Demo&username={USERNAME}")
                    await page.wait_for_selector("body[data-ready='1']")
                    await page.fill("#input", "first")
                    await page.press("#input", "Enter")
                    await page.locator(".row[data-from='business']", has_text="you said first").wait_for()
                    [first] = [m for m in bot.received if m["type"] == "text"]  # answered, so received
                    assert "from" not in first and is_bsuid(first["from_user_id"])

                    await page.click("#switch-user")
                    assert f"@{USERNAME}" in await page.text_content("#user-current")
                    assert first["from_user_id"] in await page.text_content("#user-current")
                    await page.click("#change-user-id")
                    await page.wait_for_function(
                        "old => !document.getElementById('user-current').textContent.includes(old)",
                        arg=first["from_user_id"])
                    for _ in range(50):  # the webhook is delivered apart from the control call's answer
                        if any(m["type"] == "system" for m in bot.received):
                            break
                        await asyncio.sleep(0.1)
                    [change] = [m for m in bot.received if m["type"] == "system"]
                    assert change["system"]["type"] == "user_changed_user_id"
                    assert change["from_user_id"] == first["from_user_id"]
                    new_id = change["system"]["user_id"]
                    assert new_id in await page.text_content("#user-current")

                    await page.click("#switch-user")  # closes the panel
                    await page.fill("#input", "second")
                    await page.press("#input", "Enter")
                    await page.locator(".row[data-from='business']", has_text="you said second").wait_for()
                    second = [m for m in bot.received if m["type"] == "text"][-1]
                    assert second["from_user_id"] == new_id and "from" not in second
                    assert errors == []
                finally:
                    await browser.close()
    finally:
        await bot.stop()
