"""The staff inbox's quarantine page over real HTTP (uvicorn, real SQLite): supervisors see
the quarantined inbound messages (with their redacted text), why, when, attempts and the
follow-up ticket; administrators see the same without the text; agents are refused; retry
and dismiss need CSRF, change the rows and are in the audit log (never the text)."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import Team
from clinic.messaging.quarantine import Quarantine
from clinic.messaging.store import InboxRow, WhatsAppStore
from clinic.messaging.turn import InboundTurn
from tests.inbox_support import conversation, inbox_with_live_clock, login

SECRET_TEXT = "my knee has been swollen since the fall on Sunday"
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with inbox_with_live_clock(tmp_path_factory.mktemp("quarantine")) as running:
        yield running


@pytest.fixture(scope="module")
def clients(server):
    return {name: login(server, name) for name in ("nina", "sara", "adam")}


def dead_letter(server, text: str = SECRET_TEXT) -> tuple[int, int, str]:
    """A message that failed every attempt, as the processor leaves it: ``failed`` in the
    inbox with its text, a quarantine item and a ticket."""
    n = next(_numbers)
    conv = conversation(f"quarantine-{n}")
    store, quarantine = WhatsAppStore(server.world.sessions), Quarantine(server.world.sessions)
    store.accept([InboundTurn(f"wamid.Q{n}", conv, "text", text, dt.datetime.now(dt.timezone.utc))], {})
    message = store.next_pending(conv)
    store.finish(message.id, "TurnFailed")
    item = quarantine.add("inbox", "attempts_exhausted", detail="the assistant failed on every attempt",
                          wamid=message.turn.wamid, conversation_id=conv, kind="text", inbox_id=message.id, attempts=3)
    HandoffRequests(server.world.sessions).record(conv, Team.RECEPTION, Reason.MESSAGE_FAILED, conversation_id=conv)
    return item, message.id, conv


def inbox_row(server, row_id: int) -> InboxRow:
    with server.world.sessions() as session:
        return session.get(InboxRow, row_id)


def test_supervisors_see_quarantined_messages_with_text_admins_without_agents_not(server, clients):
    item, _, conv = dead_letter(server)
    unreadable = Quarantine(server.world.sessions).add("webhook", "unreadable",
                                                       detail="entry[0]...messages[1]: skipped, no sender")
    page = clients["sara"].get(f"{server.url}/inbox/quarantine")
    assert page.status_code == 200
    assert f'id="quarantine-{item}"' in page.text and SECRET_TEXT in page.text
    assert "attempts_exhausted" in page.text and "Failed on every attempt" in page.text
    assert "/inbox/tickets/" in page.text  # the follow-up ticket
    assert f'id="quarantine-{unreadable}"' in page.text and "no sender" in page.text
    assert f'action="/inbox/quarantine/{unreadable}/retry"' not in page.text  # nothing to retry with
    admin = clients["adam"].get(f"{server.url}/inbox/quarantine")
    assert admin.status_code == 200 and f'id="quarantine-{item}"' in admin.text
    assert SECRET_TEXT not in admin.text  # administrators do not see conversations
    assert clients["nina"].get(f"{server.url}/inbox/quarantine", allow_redirects=False).status_code == 403
    assert 'href="/inbox/quarantine"' in clients["sara"].get(f"{server.url}/inbox/queues").text
    assert {e.actor for e in server.world.audit.entries(action="quarantine_viewed")} >= {"sara", "adam"}


def test_retry_and_dismiss_are_audited_and_need_csrf(server, clients):
    to_retry, retry_row, _ = dead_letter(server)
    to_dismiss, dismiss_row, _ = dead_letter(server)
    quarantine = Quarantine(server.world.sessions)
    sara, nina = clients["sara"], clients["nina"]
    refused = sara.post(f"{server.url}/inbox/quarantine/{to_retry}/retry", data={"csrf_token": "wrong"},
                        allow_redirects=False)
    assert refused.status_code == 403 and quarantine.get(to_retry).state == "open"
    assert nina.post(f"{server.url}/inbox/quarantine/{to_retry}/retry", data={"csrf_token": nina.csrf},
                     allow_redirects=False).status_code == 403
    done = sara.post(f"{server.url}/inbox/quarantine/{to_retry}/retry", data={"csrf_token": sara.csrf},
                     allow_redirects=False)
    assert done.status_code == 303
    # Back in the channel's inbox with fresh attempts: the gateway's sweep takes it.
    row = inbox_row(server, retry_row)
    assert (row.state, row.attempts, row.text) == ("pending", 0, SECRET_TEXT)
    assert quarantine.get(to_retry).state == "retried"
    again = sara.post(f"{server.url}/inbox/quarantine/{to_retry}/retry", data={"csrf_token": sara.csrf})
    assert "cannot be retried: already retried" in again.text
    assert sara.post(f"{server.url}/inbox/quarantine/{to_dismiss}/dismiss", data={"csrf_token": sara.csrf},
                     allow_redirects=False).status_code == 303
    assert quarantine.get(to_dismiss).state == "dismissed"
    assert inbox_row(server, dismiss_row).text is None  # the text it kept is deleted
    assert f'id="quarantine-{to_dismiss}"' not in sara.get(f"{server.url}/inbox/quarantine").text
    assert f'id="quarantine-{to_dismiss}"' in sara.get(f"{server.url}/inbox/quarantine?closed=1").text
    retried = server.world.audit.entries(action="quarantine_retried")
    assert any(f"quarantine {to_retry} " in e.detail and e.actor == "sara" for e in retried)
    assert any(f"quarantine {to_dismiss} " in e.detail for e in server.world.audit.entries(action="quarantine_dismissed"))
    assert all(SECRET_TEXT not in e.detail for e in server.world.audit.entries(limit=500))
    assert server.world.audit.verify().ok
