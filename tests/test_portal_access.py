"""The portal's access pages (clinic_api/routes/portal.py, clinic/privacy_access.py): an
access link asks for the date of birth, then shows what the product holds about the patient
once, in the patient's language, with a single-use JSON download; expired, used, forged and
wrong-purpose tokens open nothing; views and downloads are audited with counts only."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import threading

import pytest
import requests
import uvicorn
from sqlalchemy import select

from clinic.api_keys import ApiKeys
from clinic.inbox.tables import AuditRow
from clinic.portal import texts
from clinic.portal import tokens as tk
from clinic.privacy_access import SECTIONS, counts, issue_access_link
from clinic.settings import load_settings
from clinic_api.app import create_app
from tests.access_support import BIRTH_DATES, build_world, ids, secrets_of
from tests.scheduling_support import NOW
from tests.test_clinic_api import _free_port


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("portal-access"))
    app = create_app(world.backend, ApiKeys(world.sessions), world.sessions, settings=load_settings(),
                     portal_tokens=world.tokens)
    app.state.access = world.access  # its ciphers and tracker: the world's keys
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    world.url = f"http://127.0.0.1:{port}"
    yield world
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _clock(api):
    api.clock.now = NOW
    yield


def link(api, name: str = "a") -> str:
    url, _issued = issue_access_link(api.tokens, api.url + "/portal", api.patients[name], ids(name)[0])
    return url


def open_with(url: str, birth_date: str) -> requests.Response:
    return requests.post(url, data={"birth_date": birth_date}, timeout=20)


def download_token(page: requests.Response) -> str:
    return re.search(r'name="token" value="([^"]+)"', page.text).group(1)


def download(api, token: str) -> requests.Response:
    return requests.post(api.url + "/portal/access/download", data={"token": token}, timeout=20)


def audit(api) -> list:
    with api.sessions() as session:
        return [row.detail for row in session.execute(
            select(AuditRow).where(AuditRow.action == "privacy_access").order_by(AuditRow.id)).scalars()]


def refusal(response: requests.Response) -> str:
    match = re.search(r'id="refusal" data-reason="([^"]*)"', response.text)
    return match.group(1) if match else ""


def test_the_link_asks_for_the_date_of_birth_then_shows_the_data_once_in_russian(api):
    url = link(api, "a")  # a's conversation is in Russian
    page = requests.get(url, timeout=20)
    assert page.status_code == 200 and 'name="birth_date"' in page.text
    assert texts.text("access.confirm_intro", "ru") in page.text and 'lang="ru"' in page.text
    assert secrets_of("a")["chat"] not in page.text  # nothing before the second factor
    assert texts.text("demo_note", "ru") not in page.text  # real data, not a demo document

    wrong = open_with(url, "1999-09-09")
    assert wrong.status_code == 200 and texts.text("wrong_birth_date", "ru") in wrong.text
    assert secrets_of("a")["chat"] not in wrong.text
    missing = open_with(url, "")  # no second factor at all
    assert secrets_of("a")["chat"] not in missing.text and 'name="birth_date"' in missing.text

    shown = open_with(url, BIRTH_DATES["a"].isoformat())
    assert shown.status_code == 200
    body = html.unescape(shown.text)
    assert f"<h1>{texts.text('access.title', 'ru')}</h1>" in body
    for secret in secrets_of("a").values():
        assert secret in body, secret
    for secret in secrets_of("b").values():
        assert secret not in body, secret
    assert texts.text("access.section.conversation", "ru") in body and texts.text("access.sender.patient", "ru") in body
    assert shown.headers["cache-control"] == "no-store" and shown.headers["referrer-policy"] == "no-referrer"
    # Single use: the link is spent once the page was shown.
    again = requests.get(url, timeout=20)
    assert again.status_code == 410 and refusal(again) == tk.USED
    assert open_with(url, BIRTH_DATES["a"].isoformat()).status_code == 410
    assert audit(api)[-1].startswith("viewed ")


def test_the_download_is_the_same_data_as_json_once(api):
    shown = open_with(link(api, "a"), BIRTH_DATES["a"].isoformat())
    token = download_token(shown)
    response = download(api, token)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert re.fullmatch(r'attachment; filename="my-data-\d{4}-\d{2}-\d{2}\.json"',
                        response.headers["content-disposition"])
    assert response.headers["cache-control"] == "no-store"
    data = json.loads(response.content.decode("utf-8"))
    assert data == api.access.collect(*ids("a"))
    assert [m["text"] for m in data["conversation"]] == [secrets_of("a")["chat"], secrets_of("a")["bot"]]
    assert secrets_of("b")["reply"] not in response.text
    # Audited with counts only.
    detail = audit(api)[-1]
    assert detail.startswith("downloaded ") and json.loads(detail.split(" ", 1)[1]) == counts(data)
    assert not any(secret in detail for secret in secrets_of("a").values())
    # Once.
    second = download(api, token)
    assert second.status_code == 410 and refusal(second) == tk.USED
    assert "json" not in second.headers["content-type"]


def test_the_download_token_expires_within_minutes(api):
    token = download_token(open_with(link(api, "a"), BIRTH_DATES["a"].isoformat()))
    api.clock.now = NOW + dt.timedelta(minutes=16)
    late = download(api, token)
    assert late.status_code == 410 and refusal(late) == tk.EXPIRED


def test_an_expired_link_opens_nothing(api):
    url = link(api, "a")
    api.clock.now = NOW + dt.timedelta(hours=24)  # the results links' lifetime
    page = requests.get(url, timeout=20)
    assert page.status_code == 410 and refusal(page) == tk.EXPIRED
    late = open_with(url, BIRTH_DATES["a"].isoformat())
    assert late.status_code == 410 and secrets_of("a")["chat"] not in late.text


def test_wrong_dates_of_birth_lock_the_link(api):
    url = link(api, "b")
    for _ in range(tk.MAX_FAILED_CHECKS - 1):
        assert open_with(url, "2000-01-01").status_code == 200
    locked = open_with(url, "2000-01-01")
    assert locked.status_code == 410 and refusal(locked) == tk.LOCKED
    assert open_with(url, BIRTH_DATES["b"].isoformat()).status_code == 410


def test_a_chinese_patient_sees_the_page_in_chinese(api):
    url = link(api, "b")  # b's conversation is in Chinese
    assert texts.text("access.confirm_intro", "zh") in requests.get(url, timeout=20).text
    shown = open_with(url, BIRTH_DATES["b"].isoformat())
    body = html.unescape(shown.text)
    assert shown.status_code == 200 and f"<h1>{texts.text('access.title', 'zh')}</h1>" in body
    assert 'lang="zh-Hans"' in body and texts.text("access.download_button", "zh") in body
    assert secrets_of("b")["comment"] in body and secrets_of("a")["comment"] not in body


def test_tokens_only_open_what_they_are_for(api):
    # The link itself is not a download, and trying does not use it up.
    url = link(api, "a")
    token = url.rsplit("/", 1)[1]
    refused = download(api, token)
    assert refused.status_code == 404 and refusal(refused) == "unknown"
    assert requests.get(url, timeout=20).status_code == 200
    # A download token opens no page, and a forged one nothing.
    file_token = download_token(open_with(url, BIRTH_DATES["a"].isoformat()))
    assert requests.get(api.url + "/portal/t/" + file_token, timeout=20).status_code == 404
    assert download(api, "A" * tk.TOKEN_LENGTH).status_code == 404
    assert download(api, file_token).status_code == 200  # still usable after those attempts
    # A results link posted to the download is refused and stays usable.
    results = api.tokens.issue(api.patients["a"], "lab-1", "results")
    assert download(api, results.token).status_code == 404
    assert api.tokens.check(results.token).used_at is None


def test_every_field_and_section_of_the_export_is_named_in_every_language(api):
    def keys(value):
        if isinstance(value, dict):
            for key, item in value.items():
                yield key
                yield from keys(item)
        elif isinstance(value, list):
            for item in value:
                yield from keys(item)

    export = api.access.collect(*ids("a"))
    fields = {key for name in SECTIONS for key in keys(export[name])}
    portal_texts = texts.texts()
    missing = sorted(f for f in fields if f"access.field.{f}" not in portal_texts)
    assert missing == []
    for name in list(SECTIONS) + [f"access.field.{f}" for f in fields]:
        entry = portal_texts[name if name.startswith("access.") else f"access.section.{name}"]
        assert set(entry) == {"en", "ru", "zh"}, name
