"""The chat page in a real browser (Debian's Chromium driven by Playwright) against the
simulator and a scripted fake bot that answers webhooks through the simulator's Graph API."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import aiohttp
import pytest
from aiohttp import web

from simulator.testing import TEST_ACCESS_TOKEN, TEST_APP_SECRET, running_simulator
from whatsapp.signature import HEADER, verify

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREENSHOT = Path(tempfile.gettempdir()) / "simulator-chat.png"
USER = "15550123456"
XSS_TEXT = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> *still bold*'

# In CI (.ci/run installs Chromium) a missing browser is a failure, never a silent skip.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)"
)
playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")


class FakeBot:
    """Answers each user message like a tiny assistant would, through the Graph API."""

    def __init__(self) -> None:
        self.received: List[Dict[str, Any]] = []
        self.bad_signatures = 0
        self.graph_url = ""
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set = set()
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self.webhook)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/webhook"
        self.session = aiohttp.ClientSession(trust_env=False)

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session:
            await self.session.close()
        if self.runner:
            await self.runner.cleanup()

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not verify(raw, request.headers.get(HEADER), TEST_APP_SECRET):
            self.bad_signatures += 1
            return web.Response(status=401)
        payload = json.loads(raw)
        for entry in payload["entry"]:
            for change in entry["changes"]:
                for message in change["value"].get("messages", []):
                    self.received.append(message)
                    task = asyncio.get_running_loop().create_task(self.answer(message))
                    self.tasks.add(task)
                    task.add_done_callback(self.tasks.discard)
        return web.Response(text="ok")  # answer fast, work in the background

    async def graph(self, body: Dict[str, Any]) -> Dict[str, Any]:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}
        async with self.session.post(self.graph_url, json=body, headers=headers) as resp:
            data = await resp.json()
            assert resp.status == 200, data
            return data

    async def send(self, to: str, kind: str, content: Dict[str, Any]) -> None:
        await self.graph({"messaging_product": "whatsapp", "recipient_type": "individual",
                          "to": to, "type": kind, kind: content})

    async def answer(self, message: Dict[str, Any]) -> None:
        user = message["from"]
        await self.graph({"messaging_product": "whatsapp", "status": "read",
                          "message_id": message["id"], "typing_indicator": {"type": "text"}})
        await asyncio.sleep(0.8)  # "thinking": the page shows typing…
        kind = message["type"]
        if kind == "text" and message["text"]["body"].strip().lower() == "hello":
            await self.send(user, "interactive", {
                "type": "button",
                "header": {"type": "text", "text": "Riverside Family Clinic"},
                "body": {"text": "Hi *Alex*! I'm the clinic's assistant.\nWhat can I do for you?"},
                "footer": {"text": "Not for emergencies: call 112"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "book", "title": "Book appointment"}},
                    {"type": "reply", "reply": {"id": "info", "title": "Clinic info"}},
                    {"type": "reply", "reply": {"id": "nurse", "title": "Talk to a nurse"}},
                ]},
            })
        elif kind == "text" and message["text"]["body"].strip().lower() == "xss":
            await self.send(user, "text", {"body": XSS_TEXT})
        elif kind == "interactive" and message["interactive"]["type"] == "button_reply":
            await self.send(user, "interactive", {
                "type": "list",
                "body": {"text": "Which information do you need?"},
                "footer": {"text": "Riverside Family Clinic"},
                "action": {"button": "Choose a topic", "sections": [
                    {"title": "Visiting", "rows": [
                        {"id": "hours", "title": "Opening hours", "description": "Mon-Sat, holidays"},
                        {"id": "address", "title": "Address & parking"},
                    ]},
                    {"title": "Billing", "rows": [
                        {"id": "insurance", "title": "Insurance", "description": "Plans we accept"},
                    ]},
                ]},
            })
        elif kind == "interactive" and message["interactive"]["type"] == "list_reply":
            await self.send(user, "interactive", {
                "type": "cta_url",
                "body": {"text": "We're open Mon-Fri 8:00-18:00 and Sat 9:00-13:00."},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "See all hours", "url": "https://clinic.example/hours"}},
            })
            await self.graph({
                "messaging_product": "whatsapp", "to": user, "type": "template",
                "template": {"name": "appointment_reminder", "language": {"code": "en_US"},
                             "components": [
                                 {"type": "body", "parameters": [
                                     {"type": "text", "text": "Alex"},
                                     {"type": "text", "text": "12 May"},
                                     {"type": "text", "text": "09:30"}]},
                                 {"type": "button", "sub_type": "quick_reply", "index": "0",
                                  "parameters": [{"type": "payload", "payload": "CONFIRM_APPT_42"}]},
                             ]},
            })
        elif kind == "button":
            await self.send(user, "text", {"body": f"Thanks, received {message['button']['payload']}."})
        else:
            await self.send(user, "text", {"body": "Sorry, I only understand a few words."})


@pytest.mark.asyncio
async def test_chat_page_in_chromium(tmp_path: Path) -> None:
    bot = FakeBot()
    await bot.start()
    browser = None
    try:
        async with running_simulator(webhook_url=bot.url, delivered_delay=0.05) as sim:
            bot.graph_url = sim.graph_url()
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 420, "height": 860})
                page.set_default_timeout(8000)
                errors: List[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{sim.url}/?user={USER}&name=Alex%20Demo")
                await page.wait_for_selector("body[data-ready='1']")
                assert await page.text_content("#biz-name") == "Riverside Family Clinic"

                # typing and sending text (Enter sends)
                await page.fill("#input", "hello")
                await page.press("#input", "Enter")
                user_bubble = page.locator(".row[data-from='user']", has_text="hello")
                await user_bubble.wait_for()
                assert await page.input_value("#input") == ""

                # the bot marks it read with a typing indicator: blue ticks + "typing…"
                await page.wait_for_selector("#presence.typing")
                assert await page.text_content("#presence") == "typing…"
                await page.wait_for_selector(".row[data-from='user'][data-status='read'] .ticks.read")
                color = await page.eval_on_selector(".ticks.read", "e => getComputedStyle(e).color")
                assert color == "rgb(83, 189, 235)"

                # reply buttons rendered; typing disappears with the business message
                info = page.locator(".action-btn", has_text="Clinic info")
                await info.wait_for()
                await page.wait_for_selector("#presence:not(.typing)")
                assert await page.locator(".row[data-from='business'] strong", has_text="Alex").count() == 1
                await info.click()
                await page.locator(".row[data-from='user']", has_text="Clinic info").wait_for()

                # list: the button opens a bottom sheet; tapping a row sends list_reply
                await page.locator(".list-open", has_text="Choose a topic").click()
                await page.wait_for_selector("#sheet-backdrop:not([hidden])")
                assert await page.locator(".sheet-section-title").all_text_contents() == ["Visiting", "Billing"]
                await page.click(".sheet-row[data-row-id='hours']")
                await page.wait_for_selector("#sheet-backdrop", state="hidden")
                await page.locator(".row[data-from='user']", has_text="Opening hours").wait_for()

                # CTA URL opens in a new tab; the template shows its body and quick replies
                cta = page.locator("a.cta")
                await cta.wait_for()
                assert await cta.get_attribute("href") == "https://clinic.example/hours"
                assert await cta.get_attribute("target") == "_blank"
                template = page.locator(".row[data-from='business']", has_text="reminder of your appointment on 12 May at 09:30")
                await template.wait_for()
                await template.locator(".action-btn", has_text="Confirm").click()
                await page.locator(".row[data-from='business']", has_text="Thanks, received CONFIRM_APPT_42.").wait_for()

                # HTML in a bot message is shown as text, never interpreted
                await page.fill("#input", "xss")
                await page.click("#send")
                evil = page.locator(".row[data-from='business']", has_text="<img src=x")
                await evil.wait_for()
                assert "<script>window.__xss=2</script>" in await evil.text_content()
                assert await evil.locator("strong", has_text="still bold").count() == 1
                assert await page.locator(".messages img, .messages script").count() == 0
                assert await page.evaluate("window.__xss === undefined")
                await page.wait_for_timeout(300)  # let the last read receipt go out

                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                await page.screenshot(path=str(tmp_path / "chat.png"))
                shutil.copy(tmp_path / "chat.png", SCREENSHOT)
                assert not errors, errors
                await browser.close()
                browser = None

            # what the bot received: Meta-shaped replies with context of the tapped message
            kinds = [(m["type"], (m.get("interactive") or {}).get("type")) for m in bot.received]
            assert kinds == [("text", None), ("interactive", "button_reply"),
                             ("interactive", "list_reply"), ("button", None), ("text", None)]
            tap, row, quick = bot.received[1], bot.received[2], bot.received[3]
            assert tap["interactive"]["button_reply"] == {"id": "info", "title": "Clinic info"}
            assert tap["context"]["from"] == sim.config.display_phone_number
            assert row["interactive"]["list_reply"] == {
                "id": "hours", "title": "Opening hours", "description": "Mon-Sat, holidays"}
            assert quick["button"] == {"payload": "CONFIRM_APPT_42", "text": "Confirm"}
            sent = {m["wamid"] for m in (await sim.get("/_sim/messages"))[1]["messages"]}
            assert {tap["context"]["id"], row["context"]["id"], quick["context"]["id"]} <= sent
            assert bot.bad_signatures == 0
            # the page displayed the business messages: they were marked read
            _, log = await sim.get("/_sim/messages", status="read")
            assert len(log["messages"]) >= 4
    finally:
        if browser is not None:
            await browser.close()
        await bot.stop()


@pytest.mark.asyncio
async def test_a_user_that_is_not_a_number_gets_the_patient_form_not_a_json_error() -> None:
    # ?user=alice: found by a newcomer; the page used to show "Unexpected non-whitespace
    # character after JSON at position 3" and an empty chat.
    bot = FakeBot()
    await bot.start()
    browser = None
    try:
        async with running_simulator(webhook_url=bot.url, delivered_delay=0.05) as sim:
            async with playwright_api.async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = await browser.new_page(viewport={"width": 420, "height": 860})
                page.set_default_timeout(8000)
                await page.goto(f"{sim.url}/?user=alice")
                await page.wait_for_selector("body[data-ready='invalid-user']", state="attached")
                notice = await page.text_content(".notice.error")
                assert "“alice” is not a WhatsApp number" in notice and "JSON" not in notice
                assert await page.is_visible("#user-panel")
                assert await page.is_disabled("#input") and await page.is_disabled("#send")
                # choosing a patient from the panel opens their chat
                await page.fill("#user-wa", "+44 7700 900123")
                await page.click("#user-form button[type='submit'], #user-form button")
                await page.wait_for_selector("body[data-ready='1']", state="attached")
                assert "user=447700900123" in page.url
                assert await page.is_enabled("#input")
    finally:
        if browser is not None:
            await browser.close()
        await bot.stop()
