"""The patient portal's entry page and secure document uploads (clinic/portal/uploads.py,
clinic_api/routes/portal.py), on real SQLite and over real HTTP (uvicorn in a thread):

* upload links: single use (also under concurrency), expiry, bound to a conversation;
* encryption at rest: neither the file nor its name is in the database file in clear; a
  ciphertext moved to another row, changed, or read with another key does not open;
* limits: size, and type sniffed from the bytes (a renamed file is refused); a refused file
  leaves the link usable;
* audit: uploads and refusals in portal_access_log, never the file name;
* every patient-facing answer under /portal is an HTML page in the patient's language
  (landing page, 404, 405, expired/used/forged links, upload errors), never JSON;
* minting links through the clinic API (scope portal:links).
"""

from __future__ import annotations

import datetime as dt
import re
import string
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import uvicorn
from sqlalchemy import text

from clinic.api_keys import ApiKeys
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.language.catalogue import default_catalogue
from clinic.language.memory import LanguageMemory
from clinic.portal import texts
from clinic.portal import tokens as tk
from clinic.portal import uploads as up
from clinic.portal.tokens import PortalTokens, TokenError
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from clinic_api.app import create_app
from tests.test_clinic_api import _free_port

TOKEN_KEY = b"u" * 32
DOCUMENT_KEY = bytes(range(32))
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
CONVERSATION = "c" * 64
# A tiny but well-formed PDF; the marker is what must never be found in clear at rest.
MARKER = b"PLAINTEXT-MARKER-INSURANCE-4711"


def pdf(extra: bytes = b"") -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n% " + MARKER + extra + b"\n"
            b"trailer<</Root 1 0 R>>\n%%EOF\n")


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    clock = Clock()
    tokens = PortalTokens(sessions, TOKEN_KEY, dt.timedelta(hours=24), clock=clock)
    uploads = up.Uploads(sessions, up.DocumentCipher(DOCUMENT_KEY), tokens, clock=clock)
    world = type("World", (), {})()
    world.path, world.engine, world.sessions, world.clock = path, engine, sessions, clock
    world.tokens, world.uploads = tokens, uploads
    yield world
    engine.dispose()


def link(world, kind="insurance_card", conversation=CONVERSATION, patient_id=None) -> str:
    url, _ = up.issue_upload_link(world.tokens, "https://portal.example/portal", conversation, kind,
                                  patient_id=patient_id)
    return url.rsplit("/", 1)[1]


def reason(call) -> str:
    with pytest.raises((TokenError, up.UploadRefused)) as error:
        call()
    return error.value.reason


def outcomes(world) -> list:
    return [entry["outcome"] for entry in world.tokens.access_log(50)]


# ── links: single use, expiry ───────────────────────────────────────────────────────────
def test_an_upload_link_takes_one_file_then_is_used(store):
    token = link(store)
    grant = store.tokens.check(token)
    assert (grant.purpose, grant.document_id, grant.conversation_id, grant.patient_id) == \
        ("upload", "insurance_card", CONVERSATION, None)
    info = store.uploads.receive(token, "card front.pdf", pdf())
    assert (info.kind, info.media_type, info.name, info.size_bytes) == \
        ("insurance_card", "application/pdf", "card front.pdf", len(pdf()))
    assert reason(lambda: store.uploads.receive(token, "again.pdf", pdf())) == tk.USED
    assert reason(lambda: store.tokens.check(token)) == tk.USED
    assert [u.id for u in store.uploads.for_conversation(CONVERSATION)] == [info.id]
    assert store.uploads.for_conversation("another") == []


def test_an_expired_upload_link_takes_nothing(store):
    token = link(store)
    store.clock.now += dt.timedelta(hours=24)
    assert reason(lambda: store.uploads.receive(token, "late.pdf", pdf())) == tk.EXPIRED
    assert store.uploads.for_conversation(CONVERSATION) == []


def test_two_uploads_racing_on_one_link_store_one_file(store):
    token = link(store)

    def attempt(n: int):
        try:
            return store.uploads.receive(token, f"copy {n}.pdf", pdf())
        except TokenError as error:
            return error.reason

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, range(6)))
    stored = [r for r in results if isinstance(r, up.UploadInfo)]
    assert len(stored) == 1 and set(results) - set(stored) == {tk.USED}
    assert len(store.uploads.for_conversation(CONVERSATION)) == 1


def test_a_forged_or_results_link_uploads_nothing(store):
    assert reason(lambda: store.uploads.receive("A" * tk.TOKEN_LENGTH, "x.pdf", pdf())) == tk.FORGED
    results = store.tokens.issue("pat_1", "lab-1", "results")
    assert reason(lambda: store.uploads.receive(results.token, "x.pdf", pdf())) == tk.UNKNOWN
    assert store.tokens.check(results.token).used_at is None  # the results link still works


def test_an_upload_link_needs_a_conversation_and_a_known_kind(store):
    with pytest.raises(ValueError):
        store.tokens.issue(None, "insurance_card", "upload")
    with pytest.raises(ValueError):
        up.issue_upload_link(store.tokens, "https://p.example", CONVERSATION, "passport")
    with pytest.raises(ValueError):  # other links still need a patient
        store.tokens.issue(None, "lab-1", "results", conversation_id=CONVERSATION)


# ── limits ──────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("data, expected", [
    (pdf(), "application/pdf"), (JPEG, "image/jpeg"), (PNG, "image/png"),
    (b"MZ\x90\x00 a Windows program", None), (b"<html><script>alert(1)</script>", None),
    (b"GIF89a", None), (b"PK\x03\x04 a zip or docx", None), (b" %PDF-1.4 header not first", None), (b"", None),
])
def test_the_type_comes_from_the_bytes(data, expected):
    assert up.sniff(data) == expected


def test_wrong_type_too_large_and_empty_files_are_refused_and_the_link_still_works(store):
    token = link(store)
    assert reason(lambda: store.uploads.receive(token, "card.pdf", b"MZ\x90\x00 not a pdf")) == up.WRONG_TYPE
    too_big = pdf(b"x" * (up.MAX_BYTES + 1))
    assert reason(lambda: store.uploads.receive(token, "card.pdf", too_big)) == up.TOO_LARGE
    assert reason(lambda: store.uploads.receive(token, "card.pdf", b"")) == up.NO_FILE
    assert reason(lambda: store.uploads.receive(token, "card.pdf", None, too_large=True)) == up.TOO_LARGE
    exactly = pdf()
    exactly += b"%" * (up.MAX_BYTES - len(exactly))
    info = store.uploads.receive(token, "card.pdf", exactly)  # the limit itself is allowed
    assert info.size_bytes == up.MAX_BYTES
    assert store.uploads.for_conversation(CONVERSATION)[0].id == info.id


def test_file_names_are_cleaned_and_get_the_real_extension():
    assert up.clean_name("../../etc/passwd", "application/pdf") == "passwd.pdf"
    assert up.clean_name("C:\\Users\\me\\scan.exe", "image/jpeg") == "scan.jpg"
    assert up.clean_name("card\x00\u202e.png", "image/png") == "card.png"
    assert up.clean_name("", "image/png") == "document.png"
    assert len(up.clean_name("a" * 500 + ".pdf", "application/pdf")) <= up.NAME_MAX


# ── encryption at rest ──────────────────────────────────────────────────────────────────
def test_neither_the_file_nor_its_name_is_stored_in_clear(store):
    token = link(store)
    name = "Ivanova-insurance-card-scan.pdf"
    info = store.uploads.receive(token, name, pdf())
    with store.engine.connect() as connection:
        row = connection.execute(text("SELECT content, name_sealed, media_type, size_bytes, key_ref "
                                      "FROM portal_uploads")).one()
    assert MARKER not in row.content and b"%PDF" not in row.content
    assert name.encode() not in row.name_sealed and b"Ivanova" not in row.name_sealed
    assert (row.media_type, row.size_bytes) == ("application/pdf", info.size_bytes)
    store.engine.dispose()  # checkpoint the WAL: every byte on disk is in the files below
    on_disk = b"".join(p.read_bytes() for p in store.path.parent.glob("clinic.db*") if p.is_file())
    assert MARKER not in on_disk and b"Ivanova" not in on_disk
    # And staff read back exactly what was sent.
    with store.sessions() as session:
        got, content = store.uploads.read(session, info.id, CONVERSATION)
    assert content == pdf() and got.name == name
    with store.sessions() as session:
        assert store.uploads.read(session, info.id, "another-conversation") is None


def test_a_changed_moved_or_wrongly_keyed_ciphertext_does_not_open(store):
    first = store.uploads.receive(link(store), "a.pdf", pdf())
    second = store.uploads.receive(link(store), "b.png", PNG)
    with store.engine.begin() as connection:  # move b's ciphertext into a's row
        sealed = connection.execute(text("SELECT content FROM portal_uploads WHERE id=:id"),
                                    {"id": second.id}).scalar_one()
        connection.execute(text("UPDATE portal_uploads SET content=:c WHERE id=:id"), {"c": sealed, "id": first.id})
    with store.sessions() as session, pytest.raises(up.DocumentKeyError):
        store.uploads.read(session, first.id, CONVERSATION)
    with store.engine.begin() as connection:  # flip one bit of b's ciphertext
        tampered = bytearray(sealed)
        tampered[-1] ^= 1
        connection.execute(text("UPDATE portal_uploads SET content=:c WHERE id=:id"),
                           {"c": bytes(tampered), "id": second.id})
    with store.sessions() as session, pytest.raises(up.DocumentKeyError, match="changed"):
        store.uploads.read(session, second.id, CONVERSATION)
    other_key = up.Uploads(store.sessions, up.DocumentCipher(b"\x01" * 32))
    with pytest.raises(up.DocumentKeyError, match="another key"):
        other_key.for_conversation(CONVERSATION)


def test_the_document_key_comes_from_the_environment_or_a_generated_file(tmp_path):
    import base64

    encoded = base64.urlsafe_b64encode(DOCUMENT_KEY).decode()
    assert up.load_document_key({up.DOCUMENT_KEY_ENV: encoded}, tmp_path / "unused.key") == DOCUMENT_KEY
    with pytest.raises(ValueError, match="32 bytes"):
        up.load_document_key({up.DOCUMENT_KEY_ENV: "too-short"}, tmp_path / "unused.key")
    key_file = tmp_path / "document.key"
    generated = up.load_document_key({}, key_file)
    assert len(generated) == 32 and up.load_document_key({}, key_file) == generated
    assert key_file.stat().st_mode & 0o777 == 0o600


# ── audit ───────────────────────────────────────────────────────────────────────────────
def test_uploads_and_refusals_are_in_the_access_log_without_the_file_name(store):
    token = link(store)
    with pytest.raises(up.UploadRefused):
        store.uploads.receive(token, "secret-name.pdf", b"not a pdf at all")
    with pytest.raises(up.UploadRefused):
        store.uploads.receive(token, "secret-name.pdf", None, too_large=True)
    store.uploads.receive(token, "secret-name.pdf", pdf())
    with pytest.raises(TokenError):
        store.uploads.receive(token, "secret-name.pdf", pdf())
    log = store.tokens.access_log(50)
    token_id = log[0]["token_ref"]
    assert token_id.startswith("ptk_") and all(entry["token_ref"] == token_id for entry in log)
    assert {"upload_wrong_type", "upload_too_large", "redeemed", "uploaded", "used"} <= set(outcomes(store))
    with store.engine.connect() as connection:
        dumped = " ".join(str(v) for row in connection.execute(text("SELECT * FROM portal_access_log")) for v in row)
    assert "secret-name" not in dumped and token not in dumped


# ── texts ───────────────────────────────────────────────────────────────────────────────
def test_every_portal_text_exists_in_every_language_with_the_same_placeholders():
    codes = set(default_catalogue().codes)
    assert codes >= {"en", "ru", "zh"}
    for key, entry in texts.texts().items():
        assert set(entry) == codes, key
        fields = {code: {f for _, f, _, _ in string.Formatter().parse(value) if f} for code, value in entry.items()}
        assert len({frozenset(f) for f in fields.values()}) == 1, (key, fields)
    for kind in up.KINDS:
        assert f"kind.{kind}" in texts.texts()
    for refusal in up.REFUSALS:
        assert f"upload.{refusal}" in texts.texts()


@pytest.mark.parametrize("header, expected", [
    ("ru-RU,ru;q=0.9,en;q=0.8", "ru"), ("de-DE,zh-CN;q=0.7,en;q=0.5", "zh"), ("fr, de", None),
    ("en;q=0, ru;q=0.1", "ru"), ("zh_Hans", "zh"), ("", None), ("*", None), ("ru;q=abc", None),
])
def test_accept_language(header, expected):
    assert texts.from_accept_language(header) == expected


# ── over HTTP ───────────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def api(tmp_path_factory):
    path = tmp_path_factory.mktemp("portal-uploads") / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    backend = SqlSchedulingBackend(sessions)
    keys = ApiKeys(sessions)
    tokens = PortalTokens(sessions, TOKEN_KEY)
    app = create_app(backend, keys, sessions, settings=load_settings(), portal_tokens=tokens)
    app.state.uploads = up.Uploads(sessions, up.DocumentCipher(DOCUMENT_KEY), tokens)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    world = type("Api", (), {})()
    world.url, world.sessions, world.tokens, world.backend = f"http://127.0.0.1:{port}", sessions, tokens, backend
    world.uploads = app.state.uploads
    world.links = keys.create("front-desk", ["portal:links"])
    world.verify = keys.create("portal-verify", ["portal:verify"])
    yield world
    server.should_exit = True
    thread.join(timeout=5)


def is_page(response: requests.Response) -> bool:
    return (response.headers["content-type"].startswith("text/html")
            and response.text.lstrip().lower().startswith("<!doctype html>")
            and response.headers["cache-control"] == "no-store")


def h1(response: requests.Response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.text, re.S).group(1)


def test_the_landing_page_says_what_the_portal_is_and_asks_for_no_password(api):
    page = requests.get(api.url + "/portal", timeout=10)
    assert page.status_code == 200 and is_page(page)
    assert h1(page) == "Patient portal"
    assert "no password" in page.text and "secure upload link" in page.text and "PDF, JPEG or PNG" in page.text
    assert 'type="password"' not in page.text and "<form" not in page.text
    assert requests.get(api.url + "/", timeout=10).url == api.url + "/portal"
    assert requests.head(api.url + "/portal", timeout=10).status_code == 200  # link checkers, previews
    # In the browser's language, or the one the patient picks.
    russian = requests.get(api.url + "/portal", headers={"Accept-Language": "ru-RU,ru;q=0.9"}, timeout=10)
    assert h1(russian) == "Портал пациента" and 'lang="ru"' in russian.text
    chinese = requests.get(api.url + "/portal?lang=zh", headers={"Accept-Language": "ru"}, timeout=10)
    assert h1(chinese) == "患者门户" and 'lang="zh-Hans"' in chinese.text


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/portal/nothing-here", 404), ("GET", "/portal/t/", 404), ("GET", "/portal/t/x/y", 404),
    ("POST", "/portal", 405), ("DELETE", "/portal/t/abc", 405), ("GET", "/portal/t/" + "A" * 54, 404),
    ("POST", "/portal/t/" + "A" * 54, 404),
])
def test_every_answer_under_portal_is_a_page_never_json(api, method, path, status):
    response = requests.request(method, api.url + path, timeout=10)
    assert response.status_code == status and is_page(response), response.text[:200]
    assert not response.text.lstrip().startswith("{")
    chinese = requests.request(method, api.url + path, headers={"Accept-Language": "zh-CN"}, timeout=10)
    assert chinese.status_code == status and re.search(r"[\u4e00-\u9fff]", h1(chinese))


def test_the_api_still_answers_json(api):
    missing = requests.get(api.url + "/api/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
    invalid = requests.post(api.url + "/api/v1/portal/upload-links", json={}, timeout=10,
                            headers={"Authorization": f"Bearer {api.links}"})
    assert invalid.status_code == 422 and "detail" in invalid.json()


def upload(api, token, name="card.pdf", data=None, content_type="application/pdf", headers=None):
    return requests.post(f"{api.url}/portal/t/{token}", files={"document": (name, pdf() if data is None else data,
                                                                              content_type)},
                         headers=headers, timeout=30)


def test_upload_through_a_link_then_the_link_is_used(api):
    conversation = "d" * 64
    token = link(api, conversation=conversation)
    form = requests.get(f"{api.url}/portal/t/{token}", timeout=10)
    assert form.status_code == 200 and is_page(form) and h1(form) == "Send your insurance card"
    assert 'enctype="multipart/form-data"' in form.text and 'type="password"' not in form.text
    done = upload(api, token, name="my card.pdf")
    assert done.status_code == 200 and is_page(done)
    assert h1(done) == "Thank you, we have received your document" and "my card.pdf" in done.text
    again = upload(api, token)
    assert again.status_code == 410 and is_page(again) and 'data-reason="used"' in again.text
    reopened = requests.get(f"{api.url}/portal/t/{token}", timeout=10)
    assert reopened.status_code == 410 and "already been used" in h1(reopened)
    [stored] = api.uploads.for_conversation(conversation)
    assert (stored.name, stored.kind, stored.media_type) == ("my card.pdf", "insurance_card", "application/pdf")


def test_wrong_type_and_too_large_files_get_a_polite_page_and_can_be_retried(api):
    token = link(api, kind="referral_letter", conversation="e" * 64)
    renamed = upload(api, token, name="letter.pdf", data=b"MZ\x90\x00 a program renamed to .pdf")
    assert renamed.status_code == 415 and is_page(renamed)
    assert 'data-reason="wrong_type"' in renamed.text and "PDF, JPEG or PNG" in renamed.text
    assert h1(renamed) == "Send your referral letter"  # the form again, to choose another file
    big = upload(api, token, name="scan.jpg", data=JPEG + b"\x00" * up.MAX_BYTES, content_type="image/jpeg")
    assert big.status_code == 413 and is_page(big) and 'data-reason="too_large"' in big.text
    empty = requests.post(f"{api.url}/portal/t/{token}", data={"nothing": "here"}, timeout=10)
    assert empty.status_code == 400 and is_page(empty) and 'data-reason="no_file"' in empty.text
    assert upload(api, token, name="letter.png", data=PNG, content_type="image/png").status_code == 200
    assert [u.media_type for u in api.uploads.for_conversation("e" * 64)] == ["image/png"]


def test_an_expired_upload_link_gets_a_page_in_the_conversation_language(api):
    conversation = "f" * 64
    LanguageMemory(api.sessions).remember(conversation, "ru")
    token = link(api, conversation=conversation)
    form = requests.get(f"{api.url}/portal/t/{token}", timeout=10)
    assert h1(form) == "Отправка документа: страховой полис" and 'lang="ru"' in form.text
    with api.sessions.begin() as session:
        session.execute(text("UPDATE portal_tokens SET expires_at=:t WHERE conversation_id=:c"),
                        {"t": NOW, "c": conversation})
    expired = upload(api, token)
    assert expired.status_code == 410 and is_page(expired)
    assert h1(expired) == "Срок действия ссылки истёк" and 'data-reason="expired"' in expired.text
    assert api.uploads.for_conversation(conversation) == []


def test_the_clinic_api_mints_upload_links_for_a_patient(api):
    patient = api.backend.register_patient("contact-up-1", "Kim Example", dt.date(1985, 2, 3), "g" * 64, "whatsapp")
    auth = {"Authorization": f"Bearer {api.links}"}
    response = requests.post(api.url + "/api/v1/portal/upload-links", headers=auth, timeout=10,
                             json={"patient_id": patient.id, "kind": "referral_letter"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "issued" and body["url"].startswith(load_settings().portal_url.rstrip("/") + "/t/")
    token = body["url"].rsplit("/t/", 1)[1]
    grant = api.tokens.check(token)
    assert (grant.purpose, grant.document_id, grant.conversation_id, grant.patient_id) == \
        ("upload", "referral_letter", "g" * 64, patient.id)
    unknown = requests.post(api.url + "/api/v1/portal/upload-links", headers=auth, timeout=10,
                            json={"patient_id": "pat_nobody"})
    assert unknown.json() == {"status": "patient_not_reachable", "url": None, "expires_at": None}
    wrong_scope = requests.post(api.url + "/api/v1/portal/upload-links", timeout=10,
                                headers={"Authorization": f"Bearer {api.verify}"}, json={"patient_id": patient.id})
    assert wrong_scope.status_code == 403
    assert "upload_link_issued" in [e["outcome"] for e in api.tokens.access_log(100)]
