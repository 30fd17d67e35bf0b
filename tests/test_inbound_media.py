"""Media patients send in the chat, for staff (issue 19, item 3).

- The protocol: ``GraphClient.fetch_media`` against the Cloud API simulator over real HTTP
  (``GET /{media-id}``, then the short-lived URL with the bearer token): a retry after a
  500 on either call, an expired URL, a sha256 that does not match, a file over the maximum,
  an unknown id.
- The gateway: an image in a signed webhook → the patient answered as today, the bytes
  stored encrypted (the file holds no PNG signature, mode 0600) and linked to the
  conversation's pseudonym and the inbox row; an oversized image and an unsupported message
  recorded as such.
- The inbox: the image in the ticket's transcript for a role that may see it, served
  decrypted with the right headers and one audit row per view; "not shown to your role" and
  403 for the others; nothing for another conversation.
- Retention and erasure delete the row and the file.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import stat
import struct
import zlib
from pathlib import Path

import pytest
import pytest_asyncio
import requests
from sqlalchemy import func, select

import simulator.core
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.inbox.testing import FakeRasa
from clinic.messaging.media import InboundMediaRow, MediaStore, media_directory
from clinic.messaging.store import InboxRow
from clinic.messaging.turn import MediaRef
from clinic.portal.uploads import DocumentCipher
from clinic.privacy_erasure import PrivacyErasure
from clinic.retention import Purger
from clinic.settings import RetentionSettings
from gateway.door import Door
from gateway.server import PATH, Ingress
from gateway.settings import WhatsAppSettings, media_limits
from simulator.testing import (
    TEST_ACCESS_TOKEN,
    TEST_APP_SECRET,
    TEST_VERIFY_TOKEN,
    running_simulator,
)
from tests.connector_support import ENCRYPTION_KEY
from tests.inbox_support import LiveClock, build_world, conversation, login, running_inbox
from tests.test_fault_inbound_gateway import (
    INTERNAL_SECRET,
    envelope_text,
    replies,
    serve,
    serve_assistant,
    until,
)
from whatsapp.client import GraphClient
from whatsapp.errors import GraphError
from whatsapp.media import (
    EXPIRED,
    NOT_FOUND,
    SHA256_MISMATCH,
    TOO_LARGE,
    MediaRefused,
    digest_matches,
)

USER = "15550107001"
DOCUMENT_KEY = bytes(range(32))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(width: int = 2, height: int = 2, rgb: tuple = (200, 30, 30)) -> bytes:
    """A real (tiny) PNG, so a browser draws it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


IMAGE = png()
VOICE = b"OggS\x00\x02" + b"\x00" * 20 + b"voice-note-plaintext"


# ── the protocol: GraphClient.fetch_media against the simulator ─────────────────────────
@pytest_asyncio.fixture
async def sim():
    async with running_simulator() as running:
        yield running


async def patient_sends(sim, kind: str, data: bytes, mime: str) -> str:
    status, body = await sim.post(f"/_sim/users/{USER}/messages", {
        "type": kind, "data_base64": base64.b64encode(data).decode(), "mime_type": mime})
    assert status == 200, body
    return body["message"][kind]["id"]


def client_of(sim, **options) -> GraphClient:
    return GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN, rate_per_second=None,
                       base_delay=0.01, **options)


@pytest.mark.asyncio
async def test_fetch_media_downloads_the_bytes_and_checks_them(sim):
    media_id = await patient_sends(sim, "image", IMAGE, "image/png")
    async with client_of(sim) as client:
        download = await client.fetch_media(media_id, max_bytes=5 * 1024 * 1024)
    assert download.content == IMAGE and download.mime_type == "image/png"
    assert download.sha256 == hashlib.sha256(IMAGE).hexdigest() and download.file_size == len(IMAGE)
    assert "PNG" not in repr(download) and str(IMAGE) not in repr(download)


@pytest.mark.asyncio
async def test_a_500_on_either_call_is_retried_then_the_media_comes(sim):
    media_id = await patient_sends(sim, "audio", VOICE, "audio/ogg")
    lookup = sim.simulator.state.add_fault(code=131000, endpoint="media", count=1)
    download_fault = sim.simulator.state.add_fault(code=131000, endpoint="media_download", count=2)
    async with client_of(sim) as client:
        download = await client.fetch_media(media_id, max_bytes=16 * 1024 * 1024)
    assert download.content == VOICE and download.attempts == 3
    assert (lookup.hits, download_fault.hits) == (1, 2)


@pytest.mark.asyncio
async def test_a_graph_that_keeps_failing_raises_the_transient_error_after_the_attempts(sim):
    media_id = await patient_sends(sim, "image", IMAGE, "image/png")
    fault = sim.simulator.state.add_fault(code=131000, endpoint="media_download", count=10)
    async with client_of(sim, max_attempts=3) as client:
        with pytest.raises(GraphError) as caught:
            await client.fetch_media(media_id, max_bytes=5 * 1024 * 1024)
    assert caught.value.retryable and caught.value.http_status == 500 and fault.hits == 3


@pytest.mark.asyncio
async def test_an_expired_url_is_a_terminal_refusal_after_one_fresh_url(sim, monkeypatch):
    media_id = await patient_sends(sim, "image", IMAGE, "image/png")
    monkeypatch.setattr(simulator.core, "MEDIA_URL_TTL", -1)  # every URL is already expired
    async with client_of(sim) as client:
        with pytest.raises(MediaRefused) as caught:
            await client.fetch_media(media_id, max_bytes=5 * 1024 * 1024)
    assert caught.value.reason == EXPIRED and "404" in caught.value.detail


@pytest.mark.asyncio
async def test_a_sha256_that_does_not_match_the_bytes_is_refused(sim):
    media_id = await patient_sends(sim, "image", IMAGE, "image/png")
    media = sim.simulator.state.media[media_id]
    sim.simulator.state.media[media_id] = dataclasses.replace(
        media, sha256=base64.b64encode(hashlib.sha256(b"other bytes").digest()).decode())
    async with client_of(sim) as client:
        with pytest.raises(MediaRefused) as caught:
            await client.fetch_media(media_id, max_bytes=5 * 1024 * 1024)
    assert caught.value.reason == SHA256_MISMATCH


@pytest.mark.asyncio
async def test_too_large_by_its_metadata_is_refused_before_any_download_and_an_unknown_id_too(sim):
    media_id = await patient_sends(sim, "image", IMAGE, "image/png")
    downloads = sim.simulator.state.add_fault(delay_ms=1, endpoint="media_download", count=100)
    async with client_of(sim) as client:
        with pytest.raises(MediaRefused) as caught:
            await client.fetch_media(media_id, max_bytes=len(IMAGE) - 1)
        assert caught.value.reason == TOO_LARGE and downloads.seen == 0
        with pytest.raises(MediaRefused) as caught:
            await client.fetch_media("123456789", max_bytes=100)
        assert caught.value.reason == NOT_FOUND


def test_sha256_in_hex_or_base64():
    digest = hashlib.sha256(IMAGE)
    assert digest_matches(digest.hexdigest(), IMAGE)
    assert digest_matches(base64.b64encode(digest.digest()).decode(), IMAGE)
    assert not digest_matches(hashlib.sha256(b"x").hexdigest(), IMAGE)
    assert not digest_matches("not a digest", IMAGE)


def test_media_limits_default_to_metas_and_can_be_lowered():
    limits = media_limits("image=1000, document=2000")
    assert limits["image"] == 1000 and limits["document"] == 2000 and limits["audio"] == 16 * 1024 * 1024
    with pytest.raises(ValueError):
        media_limits("pictures=10")


# ── the gateway: a webhook with an image → stored encrypted, linked ─────────────────────
@contextlib.asynccontextmanager
async def media_gateway(sim, tmp_path, monkeypatch, **settings_overrides):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    monkeypatch.setenv("CLINIC_DOCUMENT_KEY", base64.urlsafe_b64encode(DOCUMENT_KEY).decode())
    assistant, rasa_runner, rasa_url = await serve_assistant()
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    settings = WhatsAppSettings(
        verify_token=TEST_VERIFY_TOKEN, app_secret=TEST_APP_SECRET, internal_secret=INTERNAL_SECRET,
        access_token=TEST_ACCESS_TOKEN, phone_number_id=sim.config.phone_number_id, api_base_url=sim.url,
        send_rate_per_second=1000.0, inbox_sweep_seconds=0.2, **settings_overrides)
    channel = Door(settings, database_url=database, door="ingress")
    runner, url = await serve(Ingress(channel, rasa_url).app())
    sim.simulator.config.webhook_url = url + PATH
    try:
        yield channel, assistant, database
    finally:
        await runner.cleanup()
        channel.journal.close()
        await rasa_runner.cleanup()


def media_rows(sessions) -> list:
    with sessions() as session:
        return list(session.scalars(select(InboundMediaRow).order_by(InboundMediaRow.created_at)))


@pytest.mark.servers
@pytest.mark.asyncio
async def test_an_image_webhook_is_stored_encrypted_and_linked_to_the_conversation(sim, tmp_path, monkeypatch):
    async with media_gateway(sim, tmp_path, monkeypatch, media_max_bytes=media_limits("video=100")) as (
            channel, assistant, database):
        await patient_sends(sim, "image", IMAGE, "image/png")
        [answer] = await replies(sim, USER, 1)  # the patient's reply stays as today
        assert answer["payload"]["text"]["body"].startswith("Answer")
        await until(lambda: [r.state for r in media_rows(channel.sessions)] == ["stored"])
        [row] = media_rows(channel.sessions)
        with channel.sessions() as session:
            [inbox_row] = session.scalars(select(InboxRow)).all()
        assert (row.conversation_id, row.wamid, row.inbox_id) == (
            inbox_row.conversation_id, inbox_row.wamid, inbox_row.id)
        assert row.conversation_id == channel.conversation_id(USER) and USER not in row.conversation_id
        assert (row.kind, row.mime_type, row.size_bytes) == ("image", "image/png", len(IMAGE))
        assert assistant.turns[row.wamid] == 1 and not any("media" in k for k in assistant.turns)

        path = media_directory(database) / f"{row.id}.sealed"
        raw = path.read_bytes()
        assert PNG_SIGNATURE not in raw and IMAGE[16:40] not in raw and len(raw) > len(IMAGE)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert row.key_ref == DocumentCipher(DOCUMENT_KEY).key_ref
        store = MediaStore.for_database(channel.sessions, database, DocumentCipher(DOCUMENT_KEY))
        with channel.sessions() as session:
            info, content = store.read(session, row.id, row.conversation_id)
        assert content == IMAGE and info.shows_as == "image"
        with channel.sessions() as session:  # another conversation's id reads nothing
            assert store.read(session, row.id, "someone-else") is None

        # Over the maximum for its type (100 bytes for videos here), and a type WhatsApp
        # does not support: recorded with the reason, and answered as today.
        await patient_sends(sim, "video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "video/mp4")
        body = envelope_text(sim, USER, [json.dumps({
            "from": USER, "id": "wamid.UNSUPPORTED1", "timestamp": "1763800000", "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown", "message": "Message type unknown",
                        "error_data": {"details": "Message type is currently not supported."}}]})])
        await sim.post("/_sim/webhooks/raw", {"body": body})
        await until(lambda: len(media_rows(channel.sessions)) == 3
                    and "pending" not in [r.state for r in media_rows(channel.sessions)])
        states = {r.kind: (r.state, r.reason) for r in media_rows(channel.sessions)}
        assert states["video"][0] == "too_large" and "at most 100" in states["video"][1]
        assert states["unsupported"][0] == "unsupported"
        assert len(await replies(sim, USER, 3)) == 3
        assert sorted(p.name for p in media_directory(database).iterdir()) == [f"{row.id}.sealed"]
        counters = channel.metrics.snapshot()
        assert counters.get("media_stored") == 1 and counters.get("media_too_large") == 1


@pytest.mark.servers
@pytest.mark.asyncio
async def test_a_graph_outage_leaves_the_media_pending_and_the_sweep_fetches_it(sim, tmp_path, monkeypatch):
    async with media_gateway(sim, tmp_path, monkeypatch, media_sweep_seconds=1.0) as (channel, _assistant, _db):
        # Every request of the first try answers 500 (the client's own retries included).
        fault = sim.simulator.state.add_fault(code=131000, endpoint="media_download", count=channel.delivery.attempts)
        await patient_sends(sim, "image", IMAGE, "image/png")
        await replies(sim, USER, 1)
        # The client's retries back off up to 0.5 s × 2^n with jitter: seconds on a busy machine.
        await until(lambda: channel.metrics.snapshot().get("media_retry_later") == 1, timeout=45)
        assert fault.hits == channel.delivery.attempts
        # Given back (not failed), then taken by the sweep: stored at the second attempt.
        await until(lambda: [(r.state, r.attempts) for r in media_rows(channel.sessions)] == [("stored", 2)],
                    timeout=30)


# ── the inbox: the transcript, the route, the audit ─────────────────────────────────────
@contextlib.contextmanager
def inbox_with_media(tmp_path):
    rasa = FakeRasa()
    rasa.start()
    database = tmp_path / "clinic.db"
    world = build_world(database, rasa, LiveClock())
    store = MediaStore(world.sessions, media_directory(f"sqlite:///{database}"), DocumentCipher(DOCUMENT_KEY))
    try:
        with running_inbox(world) as server:
            server.server.config.app.state.media = store  # what python -m inbox does with wiring.build()
            yield server, world, store
    finally:
        rasa.stop()


def patient_photo(world, store, name: str, team: str, data: bytes = IMAGE, mime: str = "image/png",
                  kind: str = "image"):
    patient = conversation(name)
    wamid = f"wamid.{name}"
    world.rasa.say(patient, f'/media_message{{"media_kind":"{kind}"}}', message_id=wamid)
    media_id, _state = store.record(patient, wamid, MediaRef(kind=kind, media_id="1234"), dt.datetime.now(dt.timezone.utc))
    store.store(media_id, data, mime)
    return patient, world.inbox.open_for_handoff(patient, team).ticket, media_id


def test_staff_who_may_see_it_get_the_image_in_the_transcript_and_each_view_is_audited(tmp_path):
    with inbox_with_media(tmp_path) as (server, world, store):
        patient, ticket, media_id = patient_photo(world, store, "media-nurse", "nurse")
        _other, other_ticket, other_media = patient_photo(world, store, "media-other", "nurse")
        voice_patient, voice_ticket, voice_id = patient_photo(world, store, "media-voice", "nurse", VOICE,
                                                              "audio/ogg", "voice")
        nina, sara, adam = (login(server, name) for name in ("nina", "sara", "adam"))

        page = nina.get(f"{server.url}/inbox/tickets/{ticket.id}")
        url = f"/inbox/tickets/{ticket.id}/media/{media_id}"
        assert page.status_code == 200 and f'<img src="{url}"' in page.text and other_media not in page.text
        assert "media-src 'self'" in page.headers["content-security-policy"]
        viewed = nina.get(server.url + url)
        assert viewed.status_code == 200 and viewed.content == IMAGE
        assert viewed.headers["content-type"] == "image/png"
        assert viewed.headers["content-disposition"].startswith("inline;")
        assert viewed.headers["cache-control"] == "no-store" and viewed.headers["x-content-type-options"] == "nosniff"
        assert sara.get(server.url + url).status_code == 200

        voice_page = nina.get(f"{server.url}/inbox/tickets/{voice_ticket.id}")
        assert f'<audio controls preload="none" src="/inbox/tickets/{voice_ticket.id}/media/{voice_id}"' \
            in voice_page.text

        # Another ticket's media, an administrator, no session, a malformed id.
        assert nina.get(f"{server.url}/inbox/tickets/{other_ticket.id}/media/{media_id}").status_code == 404
        assert nina.get(f"{server.url}/inbox/tickets/{ticket.id}/media/med_nothex").status_code == 404
        assert adam.get(server.url + url).status_code == 403

        anonymous = requests.get(server.url + url, allow_redirects=False, timeout=10)
        assert anonymous.status_code == 303

        entries = world.audit.entries(action="media_viewed")
        assert [(e.actor, e.detail, e.conversation_id, e.ticket_id) for e in entries] == \
            [("sara", media_id, patient, ticket.id), ("nina", media_id, patient, ticket.id)]
        assert world.audit.verify().ok
        assert voice_patient != patient


def test_a_role_that_may_not_see_media_reads_not_shown_and_gets_403(tmp_path):
    with inbox_with_media(tmp_path) as (server, world, store):
        _patient, ticket, media_id = patient_photo(world, store, "media-billing", "billing")
        bill, sara = login(server, "bill"), login(server, "sara")
        page = bill.get(f"{server.url}/inbox/tickets/{ticket.id}")
        assert page.status_code == 200 and "photo (not shown to your role)" in page.text
        assert f"/media/{media_id}" not in page.text
        assert bill.get(f"{server.url}/inbox/tickets/{ticket.id}/media/{media_id}").status_code == 403
        assert world.audit.entries(action="media_viewed") == []
        assert f"/media/{media_id}" in sara.get(f"{server.url}/inbox/tickets/{ticket.id}").text


def test_media_not_kept_is_shown_with_its_reason(tmp_path):
    with inbox_with_media(tmp_path) as (server, world, store):
        patient = conversation("media-large")
        world.rasa.say(patient, '/media_message{"media_kind":"image"}', message_id="wamid.large")
        media_id, _ = store.record(patient, "wamid.large", MediaRef(kind="image", media_id="99"),
                                   dt.datetime.now(dt.timezone.utc))
        store.mark(media_id, "too_large", "too_large: 9000000 bytes, at most 5242880")
        ticket = world.inbox.open_for_handoff(patient, "nurse").ticket
        page = login(server, "nina").get(f"{server.url}/inbox/tickets/{ticket.id}")
        assert "photo not kept: too large" in page.text and f"/media/{media_id}" not in page.text


# ── retention and erasure ──────────────────────────────────────────────────────────────
def stored_media(tmp_path, received_at: dt.datetime, name: str):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    store = MediaStore.for_database(sessions, url, DocumentCipher(DOCUMENT_KEY))
    media_id, _ = store.record(conversation(name), f"wamid.{name}", MediaRef(kind="image", media_id="1"), received_at)
    store.store(media_id, IMAGE, "image/png")
    return engine, sessions, store, media_id


def count_media(sessions) -> int:
    with sessions() as session:
        return session.execute(select(func.count()).select_from(InboundMediaRow)).scalar_one()


def test_the_retention_purge_deletes_old_media_rows_and_their_files(tmp_path):
    now = dt.datetime(2026, 12, 6, 12, tzinfo=dt.timezone.utc)
    engine, sessions, store, old = stored_media(tmp_path, now - dt.timedelta(days=31), "old-photo")
    _e, _s, _st, recent = stored_media(tmp_path, now - dt.timedelta(days=2), "recent-photo")
    assert store.path_of(old).exists() and store.path_of(recent).exists()
    retention = RetentionSettings(media=dt.timedelta(days=30))
    assert Purger(engine, retention, clock=lambda: now).run(dry_run=True).counts["media"] == 1
    assert store.path_of(old).exists()
    report = Purger(engine, retention, clock=lambda: now).run()
    assert report.counts["media"] == 1 and count_media(sessions) == 1
    assert not store.path_of(old).exists() and store.path_of(recent).exists()
    kept = Purger(engine, dataclasses.replace(retention, media=None), clock=lambda: now + dt.timedelta(days=90)).run()
    assert kept.counts["media"] == 0 and store.path_of(recent).exists()


def test_erasure_on_request_deletes_the_conversations_media_and_files(tmp_path):
    _engine, sessions, store, media_id = stored_media(tmp_path, dt.datetime.now(dt.timezone.utc), "erase-me")
    _e, _s, _st, other = stored_media(tmp_path, dt.datetime.now(dt.timezone.utc), "keep-me")
    report = PrivacyErasure(sessions).erase(conversation("erase-me"), "contact-key-erase-me")
    assert report.counts["inbound_media"] == 1 and count_media(sessions) == 1
    assert not store.path_of(media_id).exists() and store.path_of(other).exists()
    assert Path(store.directory).is_dir()


def test_a_turns_media_reference_crosses_the_journal_and_inbox_but_never_reaches_rasa():
    from clinic.messaging.turn import InboundTurn, TurnRequest

    turn = InboundTurn(wamid="wamid.M1", conversation_id="c" * 64, kind="image", text='/media_message{"media_kind":"image"}',
                       received_at=dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc),
                       media=MediaRef(kind="image", media_id="777", mime_type="image/png", sha256="abc"))
    assert InboundTurn.from_json(json.loads(json.dumps(turn.to_json()))) == turn
    assert "media" not in TurnRequest(turn, False).to_json()
    assert InboundTurn.from_json({**turn.to_json(), "media": None}).media is None


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)")
def test_in_a_browser_the_ticket_shows_the_image_preview_and_the_audio_player(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    import pyotp

    from tests.inbox_support import PASSWORD

    with inbox_with_media(tmp_path) as (server, world, store), sync_api.sync_playwright() as pw:
        patient, ticket, image_id = patient_photo(world, store, "browser-media", "nurse", png(24, 16))
        world.rasa.say(patient, '/media_message{"media_kind":"voice"}', message_id="wamid.browser-voice")
        voice_id, _ = store.record(patient, "wamid.browser-voice", MediaRef(kind="voice", media_id="5"),
                                   dt.datetime.now(dt.timezone.utc))
        store.store(voice_id, VOICE, "audio/ogg")
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            violations: list = []
            page.on("console", lambda message: violations.append(message.text)
                    if "Content Security Policy" in message.text else None)
            page.goto(f"{server.url}/inbox/login")
            page.fill("#username", "nina")
            page.fill("#password", PASSWORD)
            page.click("#login")
            page.wait_for_url("**/inbox/login/totp")
            page.fill("#code", pyotp.TOTP(world.secrets["nina"]).now())
            page.click("#verify")
            page.wait_for_url("**/inbox/queues")
            page.goto(f"{server.url}/inbox/tickets/{ticket.id}")
            image = page.locator(f"#media-image-{image_id}")
            image.scroll_into_view_if_needed()
            page.wait_for_function(f"document.getElementById('media-image-{image_id}').complete")
            assert page.evaluate(f"document.getElementById('media-image-{image_id}').naturalWidth") == 24
            assert image.is_visible()
            audio = page.locator(f"#media-audio-{voice_id}")
            assert audio.is_visible() and page.evaluate(f"document.getElementById('media-audio-{voice_id}').controls")
            assert (audio.bounding_box() or {}).get("height", 0) > 0
            assert not violations, violations
        finally:
            browser.close()
    assert ("nina", image_id) in [(e.actor, e.detail) for e in world.audit.entries(action="media_viewed")]


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                    reason="Debian's Chromium (/usr/bin/chromium) is not installed (`apt-get install chromium`)")
@pytest.mark.asyncio
async def test_the_simulators_chat_sends_a_real_file_as_the_patients_photo(sim):
    playwright_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    photo = png(8, 8, (1, 2, 3))
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{sim.url}/?user={USER}&name=Alex%20Demo")
            await page.wait_for_selector("body[data-ready='1']")
            await page.click("#attach")
            await page.set_input_files("#attach-file", files=[{"name": "rash.png", "mimeType": "image/png",
                                                               "buffer": photo}])
            await page.locator(".row[data-from='user']").first.wait_for()
        finally:
            await browser.close()
    [media] = [m for m in sim.simulator.state.media.values() if m.data == photo]
    assert media.mime_type == "image/png"
    async with client_of(sim) as client:  # and the clinic's side downloads exactly those bytes
        assert (await client.fetch_media(media.id, 5 * 1024 * 1024)).content == photo


@pytest.mark.servers
@pytest.mark.asyncio
async def test_a_slow_download_holds_up_neither_the_reply_nor_the_patients_next_message(sim, tmp_path, monkeypatch):
    async with media_gateway(sim, tmp_path, monkeypatch) as (channel, _assistant, _database):
        sim.simulator.state.add_fault(delay_ms=6000, endpoint="media_download", count=1)
        await patient_sends(sim, "image", IMAGE, "image/png")
        await sim.user_says(USER, "and one more question")
        assert len(await replies(sim, USER, 2, timeout=5)) == 2  # both answered during the download
        assert [r.state for r in media_rows(channel.sessions)] == ["pending"]
        await until(lambda: [r.state for r in media_rows(channel.sessions)] == ["stored"], timeout=30)
