"""Analytics: exact figures from seeded rows in a real SQLite database, the command with
its plots, and the staff inbox page (supervisors and admins only, audited)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from clinic.analytics.__main__ import main as analytics_main
from clinic.analytics.report import build_report, summary_lines
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequest
from clinic.inbox.tables import HandoffRatingRow, TicketRow
from clinic.messaging.store import InboxRow, OutboundRow, StatusRow
from clinic.privacy import contact_key
from clinic.reports.appointments import appointment_report
from clinic.surveys import tables as st

KEY = b"analytics-test-key"
T0 = dt.datetime(2030, 3, 4, 9, 0, tzinfo=dt.timezone.utc)
SINCE, UNTIL = T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=7)


def conv(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    factory = make_session_factory(engine)
    yield factory
    engine.dispose()


def seed(sessions) -> None:
    with sessions() as s, s.begin():
        # 10 conversations on two days (+1 outside the period, ignored).
        for n in range(10):
            at = T0 + dt.timedelta(days=n // 6, minutes=n)
            s.add(InboxRow(wamid=f"wamid.in{n}", conversation_id=conv(n), kind="text", state="done",
                           attempts=1, received_at=at))
            s.add(InboxRow(wamid=f"wamid.in{n}b", conversation_id=conv(n), kind="text", state="done",
                           attempts=1, received_at=at + dt.timedelta(minutes=1)))
        s.add(InboxRow(wamid="wamid.old", conversation_id=conv(99), kind="text", state="done", attempts=1,
                       received_at=SINCE - dt.timedelta(days=2)))
        # Handoffs: tickets for conversations 0, 1, 2 (answered after 4, 10, 30 minutes; 2 never),
        # a handoff request for conversation 3's contact (the REST-less path), none for the rest.
        for n, minutes in ((0, 4), (1, 10), (2, None)):
            s.add(TicketRow(conversation_id=conv(n), team="nurse", priority="normal", state="resolved",
                            reason="patient_request", created_at=T0, opened_at=T0,
                            first_response_at=T0 + dt.timedelta(minutes=minutes) if minutes else None,
                            reopen_count=0, bot_paused=False, version=1))
        s.add(TicketRow(conversation_id=conv(5), team="nurse", priority="normal", state="resolved",
                        reason="patient_request", created_at=T0, opened_at=T0,
                        first_response_at=T0 + dt.timedelta(minutes=30), reopen_count=0, bot_paused=False,
                        version=1))
        s.add(HandoffRequest(contact_key=contact_key(conv(3), "whatsapp", KEY), team="reception",
                             reason="patient_request", priority="normal", status="open", created_at=T0))
        s.flush()
        ticket_id = s.scalars(select(TicketRow.id)).first()
        # Ratings: surveys 5, 4, 2 (+ one unanswered) and one inbox handoff rating 1.
        for i, rating in enumerate((5, 4, 2, None)):
            s.add(st.SurveyRow(id=f"srv_00000000000{i}", kind=st.VISIT, subject_id=f"apt_{i}",
                               contact_key="k", conversation_id=conv(i), channel="whatsapp", status=st.SENT,
                               due_at=T0, rating=rating, rated_at=T0 if rating else None, offered_human=False,
                               created_at=T0, updated_at=T0))
        s.add(HandoffRatingRow(ticket_id=ticket_id, conversation_id=conv(0), team="nurse", rating=1, created_at=T0))
        # Outbound: 4 broadcast (delivered, read, failed, no status), 2 other (read, delivered),
        # 1 dead letter (not "sent": not counted).
        for i, (kind, status) in enumerate([("bcast:1", "delivered"), ("bcast:2", "read"), ("bcast:3", "failed"),
                                            ("bcast:4", None), ("text", "read"), ("text", "delivered")]):
            s.add(OutboundRow(conversation_id=conv(i), wamid=f"wamid.out{i}", kind=kind, state="sent",
                              attempts=1, created_at=T0, updated_at=T0))
            if status:
                s.add(StatusRow(wamid=f"wamid.out{i}", status=status, status_at=T0, updated_at=T0))
        s.add(OutboundRow(conversation_id=conv(9), kind="text", state="dead", attempts=3, created_at=T0,
                          updated_at=T0))


def test_figures_from_seeded_rows_are_exact(sessions):
    seed(sessions)
    report = build_report(sessions, SINCE, UNTIL, KEY)
    assert (report.conversations, report.handed_off) == (10, 5)  # tickets 0,1,2,5 + request 3
    assert (report.containment_rate, report.handoff_rate) == (0.5, 0.5)
    assert report.tickets_answered == 3
    assert (report.first_response_median_minutes, report.first_response_p90_minutes) == (10.0, 30.0)
    assert report.ratings == 4
    assert report.csat == 0.5 and report.average_rating == 3.0  # (5+4+2+1)/4; 2 of 4 are 4-5
    assert report.ratings_by_source == {"survey_visit": {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1},
                                        "inbox_handoff": {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0}}
    everything, broadcast, other = report.delivery["all"], report.delivery["broadcast"], report.delivery["other"]
    assert (everything.sent, everything.delivered, everything.read, everything.failed) == (6, 4, 2, 1)
    assert (everything.delivery_rate, everything.read_rate) == (round(4 / 6, 4), round(2 / 6, 4))
    assert (broadcast.sent, broadcast.delivery_rate, broadcast.read_rate) == (4, 0.5, 0.25)
    assert (other.sent, other.delivery_rate, other.read_rate) == (2, 1.0, 0.5)
    assert report.daily == [{"day": "2030-03-04", "conversations": 6, "handed_off": 5},
                            {"day": "2030-03-05", "conversations": 4, "handed_off": 0}]
    # Reminder confirmation and no-show rates are the appointment report's (one definition).
    appointments = appointment_report(sessions, SINCE, UNTIL)
    assert (report.no_show_rate, report.reminder_confirmation_rate) == (
        appointments.no_show_rate, appointments.reminder_confirmation_rate)
    text = "\n".join(summary_lines(report))
    assert "Containment rate: 50.0%" in text and "CSAT (ratings 4–5): 50.0%" in text


def test_without_the_pseudonym_key_only_tickets_count_as_handoffs(sessions):
    seed(sessions)
    assert build_report(sessions, SINCE, UNTIL, None).handed_off == 4


def test_empty_period_and_bad_period(sessions):
    report = build_report(sessions, SINCE, UNTIL, KEY)
    assert report.conversations == 0 and report.containment_rate is None and report.csat is None
    with pytest.raises(ValueError):
        build_report(sessions, UNTIL, SINCE, KEY)


def test_command_prints_figures_and_writes_plots(sessions, tmp_path, capsys, monkeypatch):
    seed(sessions)
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", KEY.decode())
    url = str(sessions.kw["bind"].url)
    out = tmp_path / "out"
    assert analytics_main(["report", "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(),
                           "--out", str(out), "--database-url", url]) == 0
    printed = capsys.readouterr().out
    assert "Containment rate: 50.0%" in printed and "Handoff rate: 50.0%" in printed
    data = json.loads((out / "report.json").read_text())
    assert data["conversations"] == 10 and data["csat"] == 0.5
    for name in ("rates", "first_response", "ratings", "daily"):
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert analytics_main(["report", "--since", UNTIL.isoformat(), "--until", SINCE.isoformat(),
                           "--database-url", url]) == 1


def test_inbox_page_is_for_supervisors_and_admins_and_audited(tmp_path, monkeypatch):
    import requests

    from clinic.inbox.testing import FakeRasa
    from tests.inbox_support import LiveClock, build_world, login, running_inbox

    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", KEY.decode())
    rasa = FakeRasa()
    rasa.start()
    try:
        world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
        with running_inbox(world) as server:
            url = f"{server.url}/inbox/analytics"
            anonymous = requests.Session()
            anonymous.trust_env = False
            assert anonymous.get(url, allow_redirects=False).status_code == 303
            assert login(server, "nina").get(url, allow_redirects=False).status_code == 403
            for name in ("sara", "adam"):
                client = login(server, name)
                page = client.get(url + "?days=30", allow_redirects=False)
                assert page.status_code == 200 and "Containment rate" in page.text, name
                png = client.get(f"{url}/rates.png?days=30")
                assert png.status_code == 200 and png.headers["content-type"] == "image/png"
                assert client.get(f"{url}/nope.png").status_code == 404
            entries = world.audit.entries(action="analytics_viewed")
            assert {e.actor for e in entries} == {"sara", "adam"}
    finally:
        rasa.stop()
