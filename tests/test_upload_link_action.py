"""action_offer_upload_link (actions/uploads.py): a Tracker in, the exact events out, against
a real SQLite clinic database (patients, portal tokens); and the reply that quotes the link,
in every language, wired to run after the action (domain/channel.yml, data/rules/channel.yml).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.notifications import NotificationServices, use_notification_services
from actions.services import build_services, use_services
from actions.uploads import ActionOfferUploadLink
from clinic.notifications.service import NotificationService
from clinic.portal.tables import PortalTokenRow
from clinic.portal.tokens import UPLOAD, PortalTokens, TokenError
from clinic.privacy import contact_key
from clinic.records.store import RecordStore
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker
from tests.reminder_support import Clock

ROOT = Path(__file__).resolve().parent.parent
CONVERSATION = "9a1c0ffee0000000000000000000000000000000000000000000000000000007"
KEY = b"u" * 32


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    clock = Clock()
    services = build_services(f"sqlite:///{tmp_path / 'clinic.db'}", clock=clock)
    sessions = services.reminders._sessions
    tokens = PortalTokens(sessions, KEY, dt.timedelta(hours=services.settings.portal_token_hours), clock=clock)
    use_services(services)
    use_notification_services(NotificationServices(NotificationService(sessions, clock=clock),
                                                   RecordStore(sessions, clock), tokens))
    yield services, tokens, clock
    use_services(None)
    use_notification_services(None)


def sends(kind):
    payload = f'/media_message{{"media_kind":"{kind}"}}' if kind else "/media_message"
    entities = [{"entity": "media_kind", "value": kind}] if kind else []
    return {"event": "user", "text": payload, "input_channel": "whatsapp",
            "parse_data": {"intent": {"name": "media_message", "confidence": 1.0}, "entities": entities}}


async def offer(kind, slots=None):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([SESSION_START, sends(kind)], slots={"media_kind": kind, **(slots or {})},
                           sender_id=CONVERSATION)
    events = await ActionOfferUploadLink().run(dispatcher, tracker, {})
    assert dispatcher.messages == []  # the rule's reply quotes the slot
    return events


def token_of(events, services) -> str:
    [event] = events
    assert event["event"] == "slot" and event["name"] == "upload_link"
    prefix = services.settings.portal_url + "/t/"
    assert event["value"].startswith(prefix)
    return event["value"][len(prefix):]


def rows(services):
    with services.reminders._sessions() as session:
        return session.query(PortalTokenRow).all()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["image", "document"])
async def test_a_photo_or_a_file_gets_a_single_use_link_for_this_conversation(env, kind):
    services, tokens, clock = env
    events = await offer(kind)
    token = token_of(events, services)
    assert events == [SlotSet("upload_link", f"{services.settings.portal_url}/t/{token}")]
    grant = tokens.check(token)
    assert (grant.purpose, grant.document_id, grant.conversation_id, grant.patient_id) == (
        UPLOAD, "document", CONVERSATION, None)  # a first-time patient may send a referral letter
    assert grant.expires_at == clock.now + dt.timedelta(hours=24)  # what the reply promises
    tokens.redeem(token)
    with pytest.raises(TokenError):
        tokens.redeem(token)


@pytest.mark.asyncio
async def test_a_known_patients_link_is_bound_to_them_and_each_photo_gets_a_new_one(env):
    services, tokens, _ = env
    key = contact_key(CONVERSATION, "whatsapp", TEST_PSEUDONYM_KEY.encode())
    patient = services.scheduling.register_patient(key, "Sam Example", dt.date(1990, 5, 1), CONVERSATION, "whatsapp")
    first = token_of(await offer("image"), services)
    second = token_of(await offer("image", slots={"upload_link": "an earlier link"}), services)
    assert first != second
    assert tokens.check(first).patient_id == patient.id
    assert patient.id not in first and CONVERSATION not in first


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["voice", "audio", "video", "sticker", "contacts", "other", None])
async def test_other_messages_get_no_link_and_an_earlier_one_is_cleared(env, kind):
    services, _, _ = env
    assert await offer(kind, slots={"upload_link": "https://portal.example/t/old"}) == [SlotSet("upload_link", None)]
    assert rows(services) == []


@pytest.mark.asyncio
async def test_a_failing_database_still_lets_the_reply_go_out_without_a_link(env, monkeypatch):
    _, tokens, _ = env

    def broken(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(tokens, "issue", broken)
    assert await offer("image", slots={"upload_link": "https://portal.example/t/old"}) == [
        SlotSet("upload_link", None)]


# ── the reply and its wiring ────────────────────────────────────────────────────────────────
def _yaml(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def test_the_rule_runs_the_action_before_the_reply_and_the_domain_declares_them():
    channel = _yaml("domain/channel.yml")
    assert "action_offer_upload_link" in channel["actions"]
    assert channel["slots"]["upload_link"] == {"type": "text", "influence_conversation": False,
                                               "mappings": [{"type": "custom"}]}
    steps = [rule["steps"] for rule in _yaml("data/rules/channel.yml")["rules"]
             if rule["steps"][0] == {"intent": "media_message"}]
    assert steps == [[{"intent": "media_message"}, {"action": "action_offer_upload_link"},
                      {"action": "utter_media_not_supported"}]]


LINK = "https://portal.example/t/AbC123"


@pytest.mark.parametrize("language, expected", [
    ("en", "please don't send photos of documents here. Send them securely with this link (it "
           f"works once, for 24 hours): {LINK} — or bring them to your appointment."),
    (None, "Send them securely with this link (it works once, for 24 hours): " + LINK),
    ("ru", "пожалуйста, не присылайте сюда фотографии документов. Отправьте их защищённо по этой "
           f"ссылке (она работает один раз, 24 часа): {LINK} — или принесите на приём."),
    ("zh", f"请不要在这里发送证件照片。请通过此安全链接发送（仅可使用一次，24小时内有效）：{LINK}，或在就诊时带来。"),
])
def test_the_reply_quotes_the_link_in_the_patients_language_and_falls_back_without_one(language, expected):
    from rasa.core.nlg.generator import ResponseVariationFilter
    from rasa.shared.core.domain import Domain

    import addons  # noqa: F401 - the most specific variation wins (addons/rasa_patches.py), as in Rasa

    domain = Domain.load(str(ROOT / "domain"))
    variations = ResponseVariationFilter(domain.responses)

    def reply(kind, link):
        slots = {"language": language, "media_kind": kind, "upload_link": link, "portal_url": "https://p.example"}
        [chosen] = variations.responses_for_utter_action("utter_media_not_supported", None, slots)
        return chosen["text"].replace("{upload_link}", str(link)).replace("{portal_url}", "https://p.example")

    for kind in ("image", "document"):
        assert expected in reply(kind, LINK)
        assert "{upload_link}" not in reply(kind, None) and "https://p.example" in reply(kind, None)
    # A sticker never gets a link, even with one left in the slot.
    assert LINK not in reply("sticker", LINK)


def test_the_link_lives_as_long_as_the_reply_says_by_default(monkeypatch):
    from clinic.settings import load_settings

    monkeypatch.delenv("CLINIC_PORTAL_TOKEN_HOURS", raising=False)

    # The texts say "24 hours"; a clinic that sets CLINIC_PORTAL_TOKEN_HOURS must change them.
    assert load_settings().portal_token_hours == 24.0
