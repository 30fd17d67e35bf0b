"""Booking in a WhatsApp Flow end to end: the simulator (Meta, with the Flow and the
business's public key registered), the WhatsApp gateway (webhooks and the Flow's data
endpoint), Rasa and the action server as separate processes over real HTTP, on real SQLite.

A patient asks to book: the assistant sends the Flow ("Book in a form") and the chat
question; the phone opens the Flow (INIT from the live calendar), walks its screens and
completes it; the booking is made by the chat form's own action and confirmed in chat. A
time taken meanwhile gets the chat form's polite answer and other times. A Russian patient
gets the Flow and its screens in Russian. Last, the same in Chromium: a patient books
through the Flow in the chat page.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.booking_flow.screens import FLOW_JSON_FILE, texts
from clinic.db import make_engine, make_session_factory
from clinic.privacy import contact_key
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from whatsapp.flows_crypto import generate_private_key_pem, load_private_key, public_key_pem

pytestmark = [pytest.mark.model, pytest.mark.servers]
TZ = load_settings().timezone
FLOW_ID = "990000000000042"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flows-e2e")
    private = generate_private_key_pem()
    (workdir / "flows-private.pem").write_bytes(private)
    (workdir / "flows-public.pem").write_bytes(public_key_pem(load_private_key(private)))
    running = Stack(workdir, model, ingress=True)
    running.env["WHATSAPP_FLOWS_PRIVATE_KEY_FILE"] = str(workdir / "flows-private.pem")
    running.env["WHATSAPP_BOOKING_FLOW_ID"] = FLOW_ID
    endpoint = f"http://127.0.0.1:{running.ports['ingress']}/flows/booking"
    running.simulator_args = ("--flow", f"{FLOW_ID},{FLOW_JSON_FILE},{endpoint}",
                              "--flows-public-key", str(workdir / "flows-public.pem"))
    running.start()
    install_demo_clinic(make_session_factory(make_engine(running.env["CLINIC_DATABASE_URL"])),
                        timezone=TZ, weeks=2)
    yield running
    running.stop()


def backend(stack) -> SqlSchedulingBackend:
    return SqlSchedulingBackend(make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"])))


def patient_key(stack, wa_id: str) -> str:
    pseudonym = stack.env["CLINIC_PSEUDONYM_KEY"].encode()
    return contact_key(contact_key(wa_id, "whatsapp", pseudonym), "whatsapp", pseudonym)


def replies_after(stack, wa_id: str, seen: int, at_least: int = 1) -> list:
    stack.wait_for_replies(wa_id, seen + at_least, timeout=90)
    time.sleep(1.0)  # the rest of the turn
    return [m for m in stack.replies(wa_id) if not m.get("error")][seen:]


def ask_to_book(stack, wa_id: str, text: str) -> tuple:
    """The patient asks to book; returns (the Flow message, replies so far)."""
    stack.say(wa_id, text)
    replies = replies_after(stack, wa_id, 0, at_least=2)
    flows = [m for m in replies if (m.get("payload") or {}).get("type") == "interactive"
             and m["payload"]["interactive"]["type"] == "flow"]
    assert flows, [reply_text(m) for m in replies]
    return flows[0], replies


def walk_to_confirm(stack, wa_id: str, flow_message: dict, birth: bool = True) -> tuple:
    opened = stack.sim(f"/_sim/users/{wa_id}/flows/open", {"message_id": flow_message["wamid"]})
    assert opened["screen"]["id"] == "SERVICE", opened
    session = opened["session"]

    def exchange(screen, payload):
        return stack.sim(f"/_sim/flows/{session}/exchange", {"screen": screen, "payload": payload})

    page = exchange("SERVICE", {"service": "gp_consultation"})
    page = exchange("PRACTITIONER", {"service": "gp_consultation", "practitioner": "any"})
    chosen = {"service": "gp_consultation", "practitioner": "any", "day": page["data"]["min_date"]}
    page = exchange("DATE", chosen)
    chosen["slot"] = page["data"]["times"][0]["id"]
    page = exchange("TIME", chosen)
    if page["screen"]["id"] == "DETAILS":
        chosen.update(name="Anna Petrova", birth_date="1985-04-03")
        page = exchange("DETAILS", chosen)
    assert page["screen"]["id"] == "CONFIRM", page
    return opened, session, chosen, page


def test_a_patient_books_through_the_flow_and_is_confirmed_in_chat(stack):
    wa_id = "15550109001"
    flow, replies = ask_to_book(stack, wa_id, "I want to book an appointment")
    params = flow["payload"]["interactive"]["action"]["parameters"]
    assert params["flow_id"] == FLOW_ID and params["flow_cta"] == texts("en")["cta"]
    assert params["flow_action"] == "data_exchange"
    # The chat question follows: the list-based booking stays as the fallback.
    assert any("What would you like to book" in reply_text(m) for m in replies)
    seen = len(replies)
    opened, session, chosen, _ = walk_to_confirm(stack, wa_id, flow)
    assert opened["data"]["title"] == texts("en")["title"]
    done = stack.sim(f"/_sim/flows/{session}/complete", {"payload": {**chosen}})
    assert done["completed"]
    confirmed = replies_after(stack, wa_id, seen)
    assert any("You're booked" in reply_text(m) for m in confirmed), [reply_text(m) for m in confirmed]
    clinic = backend(stack)
    patient = clinic.find_patient(patient_key(stack, wa_id))
    assert patient is not None and patient.name == "Anna Petrova" and patient.birth_date == dt.date(1985, 4, 3)
    [appointment] = clinic.upcoming(patient_key(stack, wa_id))
    assert appointment.slot_id == chosen["slot"] and appointment.service.id == "gp_consultation"


def test_a_time_taken_meanwhile_gets_the_chat_forms_answer(stack):
    wa_id = "15550109002"
    flow, replies = ask_to_book(stack, wa_id, "book an appointment please")
    seen = len(replies)
    _, session, chosen, _ = walk_to_confirm(stack, wa_id, flow)
    clinic = backend(stack)
    someone = clinic.register_patient("e" * 64, "Quick Patient", dt.date(1970, 1, 1), "other", "whatsapp")
    clinic.book(chosen["slot"], someone.id, "gp_consultation")  # someone is quicker
    stack.sim(f"/_sim/flows/{session}/complete", {"payload": {**chosen}})
    answer = replies_after(stack, wa_id, seen, at_least=2)
    texts_seen = [reply_text(m) for m in answer]
    assert any("that time was taken by someone else" in t for t in texts_seen), texts_seen
    assert clinic.upcoming(patient_key(stack, wa_id)) == []
    # ...and, like the chat form, other free times to choose from.
    assert any((m.get("payload") or {}).get("type") == "interactive" for m in answer), texts_seen


def test_a_russian_patient_gets_the_flow_and_its_screens_in_russian(stack):
    wa_id = "15550109003"
    flow, _ = ask_to_book(stack, wa_id, "Здравствуйте, хочу записаться к врачу")
    assert flow["payload"]["interactive"]["action"]["parameters"]["flow_cta"] == texts("ru")["cta"]
    assert flow["payload"]["interactive"]["body"]["text"] == texts("ru")["message_body"]
    opened = stack.sim(f"/_sim/users/{wa_id}/flows/open", {"message_id": flow["wamid"]})
    assert opened["data"]["title"] == texts("ru")["title"]
    assert opened["data"]["heading"] == texts("ru")["service_heading"]


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="no /usr/bin/chromium")
def test_a_patient_books_through_the_flow_in_the_chat_page(stack, tmp_path):
    playwright_api = pytest.importorskip("playwright.async_api")
    wa_id = "15550109004"
    simulator = stack.url("simulator")

    async def in_the_browser() -> list:
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                               args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            try:
                page = await browser.new_page()
                await page.goto(f"{simulator}/?user={wa_id}&name=Sam%20Demo")
                await page.wait_for_selector("body[data-ready='1']")
                await page.fill("#input", "I'd like to book an appointment")
                await page.click("#send")
                await page.click("button.flow-open", timeout=90000)
                await page.wait_for_selector(".flow-sheet[data-screen='SERVICE']")
                await page.click(".flow-option[data-id='gp_consultation']")
                await page.click("button.flow-footer")
                await page.wait_for_selector(".flow-sheet[data-screen='PRACTITIONER']")
                await page.select_option("select[name='practitioner']", "any")
                await page.click("button.flow-footer")
                await page.wait_for_selector(".flow-sheet[data-screen='DATE']")
                offered = await page.eval_on_selector_all(
                    ".flow-day", "days => days.map(d => [d.dataset.date, d.disabled])")
                await page.click(".flow-day:not([disabled])")
                await page.click("button.flow-footer")
                await page.wait_for_selector(".flow-sheet[data-screen='TIME']")
                await page.select_option("select[name='slot']", index=1)
                await page.click("button.flow-footer")
                await page.wait_for_selector(".flow-sheet[data-screen='DETAILS']")
                await page.fill("input[name='name']", "Sam Demo")
                await page.fill("input[name='birth_date']", "1990-02-01")
                await page.click("button.flow-footer")
                await page.wait_for_selector(".flow-sheet[data-screen='CONFIRM']")
                await page.screenshot(path=str(tmp_path / "flow-confirm.png"))
                await page.click("button.flow-footer")
                await page.wait_for_selector("#flow-sheet", state="hidden")
                await page.wait_for_selector("text=You're booked", timeout=90000)
                await page.screenshot(path=str(tmp_path / "flow-booked.png"))
                return offered
            finally:
                await browser.close()

    offered = asyncio.run(in_the_browser())
    clinic = backend(stack)
    [appointment] = clinic.upcoming(patient_key(stack, wa_id))
    assert clinic.find_patient(patient_key(stack, wa_id)).name == "Sam Demo"
    # The date picker showed the demo calendar: Sundays (no slots) could not be picked.
    sundays = [day for day, disabled in offered if dt.date.fromisoformat(day).weekday() == 6]
    assert sundays and all(disabled for day, disabled in offered if day in sundays)
    assert appointment.service.id == "gp_consultation"
