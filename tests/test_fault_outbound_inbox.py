"""The staff inbox's dead-letters page over real HTTP (uvicorn, real SQLite): supervisors see
what failed (with the text), when, why, attempts and the follow-up ticket; administrators see
the same without the text; agents are refused; retry and dismiss need CSRF, change the row
and are in the audit log (ids and kinds only, never the text)."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.messaging.store import WhatsAppStore
from tests.inbox_support import conversation, inbox_with_live_clock, login

SECRET_TEXT = "Your appointment with Dr Rivera is confirmed for Tuesday"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with inbox_with_live_clock(tmp_path_factory.mktemp("dead-letters")) as running:
        yield running


@pytest.fixture(scope="module")
def clients(server):
    return {name: login(server, name) for name in ("nina", "sara", "adam")}


def dead_letter(server, text: str = SECRET_TEXT) -> int:
    store = WhatsAppStore(server.world.sessions)
    conv = conversation(f"dead-{dt.datetime.now().timestamp()}")
    [row_id] = store.record_turn(conv, f"wamid.IN.{conv[:12]}",
                                 [("text", {"type": "text", "text": {"body": text}}, None)])
    store.claim(row_id)
    store.outbound_failed(row_id, "dead", 131026, "131026: Receiver is incapable of receiving this message", 3)
    return row_id


def test_supervisors_see_dead_letters_with_text_admins_without_agents_not(server, clients):
    row_id = dead_letter(server)
    page = clients["sara"].get(f"{server.url}/inbox/dead-letters")
    assert page.status_code == 200
    assert f'id="dead-letter-{row_id}"' in page.text and SECRET_TEXT in page.text
    assert "131026" in page.text and "Receiver is incapable" in page.text
    admin = clients["adam"].get(f"{server.url}/inbox/dead-letters")
    assert admin.status_code == 200 and f'id="dead-letter-{row_id}"' in admin.text
    assert SECRET_TEXT not in admin.text  # administrators do not see conversations
    assert clients["nina"].get(f"{server.url}/inbox/dead-letters", allow_redirects=False).status_code == 403
    entries = server.world.audit.entries(action="dead_letters_viewed")
    assert {e.actor for e in entries} >= {"sara", "adam"}


def test_retry_and_dismiss_are_audited_and_need_csrf(server, clients):
    store = WhatsAppStore(server.world.sessions)
    to_retry, to_dismiss = dead_letter(server), dead_letter(server)
    sara = clients["sara"]
    refused = sara.post(f"{server.url}/inbox/dead-letters/{to_retry}/retry", data={"csrf_token": "wrong"},
                        allow_redirects=False)
    assert refused.status_code == 403 and store.outbound_item(to_retry).retry_at is None
    nina = clients["nina"]
    assert nina.post(f"{server.url}/inbox/dead-letters/{to_retry}/retry", data={"csrf_token": nina.csrf},
                     allow_redirects=False).status_code == 403
    done = sara.post(f"{server.url}/inbox/dead-letters/{to_retry}/retry", data={"csrf_token": sara.csrf},
                     allow_redirects=False)
    assert done.status_code == 303
    # Due now: the gateway's outbox takes it on its next sweep.
    assert to_retry in store.due_dead_letters(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    assert sara.post(f"{server.url}/inbox/dead-letters/{to_dismiss}/dismiss", data={"csrf_token": sara.csrf},
                     allow_redirects=False).status_code == 303
    dismissed = store.outbound_item(to_dismiss)
    assert dismissed.state == "dismissed" and dismissed.payload is None
    assert f'id="dead-letter-{to_dismiss}"' not in sara.get(f"{server.url}/inbox/dead-letters").text
    assert f'id="dead-letter-{to_dismiss}"' in sara.get(f"{server.url}/inbox/dead-letters?dismissed=1").text
    retried = server.world.audit.entries(action="dead_letter_retried")
    assert any(f"outbound {to_retry} " in e.detail and e.actor == "sara" for e in retried)
    assert any(f"outbound {to_dismiss} " in e.detail for e in server.world.audit.entries(action="dead_letter_dismissed"))
    assert all(SECRET_TEXT not in e.detail for e in server.world.audit.entries(limit=500))
    assert server.world.audit.verify().ok
