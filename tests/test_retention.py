"""Retention (issue 18, item 2): the purge deletes what is past its period, per kind, in
batches; records counts (never content) in the audit log; the audit chain still verifies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import types

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, select, text

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.inbox import audit
from clinic.inbox.model import SYSTEM, Actor
from clinic.inbox.tables import AuditRow, MessageRow, StaffRow, TaskRow, TicketRow
from clinic.messaging.quarantine import QuarantineRow
from clinic.messaging.store import InboxRow, OutboundRow, StatusRow
from clinic.portal.tables import PortalTokenRow, PortalUploadRow
from clinic.retention import PURGE_ACTION, PeriodicPurge, Purger, tracker_database_url
from clinic.settings import RetentionSettings
from clinic.surveys.tables import SurveyRow
from tests.pg_support import fresh_database

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
SECRET = "my chest hurts since Tuesday"  # a patient's text: must never reach the audit log
RETENTION = RetentionSettings(batch_size=7)  # small batches: every kind needs several


def old(kind: str) -> dt.datetime:
    return NOW - getattr(RETENTION, kind) - DAY


def young(kind: str) -> dt.datetime:
    return NOW - getattr(RETENTION, kind) + DAY


@pytest.fixture(params=["sqlite", "postgresql"])
def engines(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
        tracker = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
        yield engine, tracker
        engine.dispose()
        tracker.dispose()
        return
    server = request.getfixturevalue("postgres_url")
    with fresh_database(server, "ret") as url, fresh_database(server, "rettr") as tracker_url:
        engine, tracker = make_engine(url), make_engine(tracker_url)
        yield engine, tracker
        engine.dispose()
        tracker.dispose()


EVENTS = Table("events", MetaData(),  # the columns of Rasa's SQLTrackerStore that matter here
               Column("id", Integer, primary_key=True), Column("sender_id", String(255)),
               Column("type_name", String(255)), Column("timestamp", Float), Column("data", Text))


def seed(engine, tracker, n: int = 10) -> None:
    """``n`` rows past their period and 2 within it, for every kind."""
    create_schema(engine)
    EVENTS.metadata.create_all(tracker)
    sessions = make_session_factory(engine)
    with tracker.begin() as connection:
        for i in range(n):
            connection.execute(EVENTS.insert().values(sender_id="c1", type_name="user", data=SECRET,
                                                      timestamp=old("conversation_text").timestamp() + i))
        for i in range(2):
            connection.execute(EVENTS.insert().values(sender_id="c1", type_name="user", data=SECRET,
                                                      timestamp=young("conversation_text").timestamp() + i))
    with sessions.begin() as s:
        s.add(StaffRow(id=1, username="nina", display_name="Nina", password_hash="x", totp_secret_encrypted="x",
                       role="agent", disabled=False, failed_logins=0, session_epoch=0, created_at=NOW))
        for age, tag in [(old, "o"), (young, "y")]:
            count = n if tag == "o" else 2
            for i in range(count):
                s.add(InboxRow(wamid=f"w-{tag}{i}", conversation_id="c1", kind="text", text=None, state="done",
                               attempts=1, received_at=age("inbox_rows")))
                s.add(QuarantineRow(source="webhook", reason="unparsable", state="dismissed", attempts=0,
                                    created_at=age("inbox_rows")))
                s.add(StatusRow(wamid=f"s-{tag}{i}", status="read", updated_at=age("delivery_statuses")))
                s.add(OutboundRow(conversation_id="c1", kind="text", payload_json=None, state="sent",
                                  attempts=1, created_at=age("delivery_statuses"),
                                  updated_at=age("delivery_statuses")))
                s.add(PortalTokenRow(id=f"ptk_{tag}{i}", token_hash=f"h{tag}{i}", document_id="document",
                                     purpose="upload", conversation_id="c1", created_at=age("uploaded_files"),
                                     expires_at=age("uploaded_files") + DAY))
                s.flush()
                s.add(PortalUploadRow(id=f"pup_{tag}{i}", token_id=f"ptk_{tag}{i}", conversation_id="c1",
                                      kind="document", media_type="application/pdf", size_bytes=3,
                                      key_ref="k", name_sealed=b"n", content=b"sealed",
                                      created_at=age("uploaded_files")))
                s.add(SurveyRow(id=f"srv_{tag}{i}", kind="visit", subject_id=f"a{tag}{i}", contact_key="k",
                                conversation_id="c1", channel="whatsapp", status="sent", due_at=NOW - 400 * DAY,
                                rating=4, comment_encrypted="sealed comment", commented_at=age("survey_comments"),
                                created_at=NOW - 400 * DAY, updated_at=NOW - 400 * DAY))
                ticket = TicketRow(conversation_id=f"c-{tag}{i}", team="nurse", priority="normal", state="resolved",
                                   reason="patient_request", created_at=NOW - 400 * DAY, opened_at=NOW - 400 * DAY,
                                   resolved_at=age("staff_inbox"), reopen_count=0, bot_paused=False)
                s.add(ticket)
                s.flush()
                s.add(MessageRow(ticket_id=ticket.id, kind="reply", author_id=1, text_encrypted="sealed",
                                 created_at=age("staff_inbox")))
                s.add(TaskRow(conversation_id="c1", ticket_id=ticket.id, team="nurse", note_encrypted="sealed",
                              state="done", created_by="bot", created_at=NOW - 400 * DAY,
                              done_at=age("staff_inbox")))
        # Queued and processing rows are work in progress, whatever their age.
        s.add(InboxRow(wamid="w-pending", conversation_id="c1", kind="text", text="hi", state="pending",
                       attempts=0, received_at=NOW - 400 * DAY))
        s.add(OutboundRow(conversation_id="c1", kind="text", payload_json="{}", state="queued", attempts=0,
                          created_at=NOW - 400 * DAY, updated_at=NOW - 400 * DAY))
    actor = Actor(1, "nina", "agent")
    for i in range(n):
        with audit.transaction(sessions) as s:
            audit.append(s, actor, "ticket_viewed", at=old("audit_log") + i * dt.timedelta(minutes=1),
                         conversation_id="c1")
    for i in range(2):
        with audit.transaction(sessions) as s:
            audit.append(s, actor, "ticket_viewed", at=young("audit_log") + i * dt.timedelta(minutes=1),
                         conversation_id="c1")


def count(engine, table, *where) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def purger(engine, tracker, journal_roots=(), retention=RETENTION) -> Purger:
    return Purger(engine, retention, tracker_engine=tracker, journal_roots=journal_roots, clock=lambda: NOW)


def test_purge_deletes_what_is_past_its_period_and_keeps_the_rest(engines, tmp_path):
    engine, tracker = engines
    seed(engine, tracker, n=10)  # 10 old rows per table, batches of 7: two batches each
    report = purger(engine, tracker).run()

    assert report.counts == {"conversation_text": 10, "inbox_rows": 20, "journal_segments": 0,
                             "delivery_statuses": 20, "staff_inbox": 20, "uploaded_files": 10,
                             "media": 0, "survey_comments": 10, "audit_log": 10}
    assert count(tracker, EVENTS) == 2
    assert count(tracker, EVENTS, EVENTS.c.timestamp < young("conversation_text").timestamp()) == 0
    assert count(engine, InboxRow.__table__) == 3  # 2 young + the pending one
    assert count(engine, InboxRow.__table__, InboxRow.state == "pending") == 1
    assert count(engine, QuarantineRow.__table__) == 2
    assert count(engine, StatusRow.__table__) == 2
    assert count(engine, OutboundRow.__table__) == 3  # 2 young + the queued one
    assert count(engine, OutboundRow.__table__, OutboundRow.state == "queued") == 1
    assert count(engine, PortalUploadRow.__table__) == 2
    assert count(engine, MessageRow.__table__) == 2 and count(engine, TaskRow.__table__) == 2
    assert count(engine, TicketRow.__table__) == 12  # tickets hold no text: kept for analytics
    # Survey comments are cleared, the ratings stay.
    assert count(engine, SurveyRow.__table__, SurveyRow.comment_encrypted.is_not(None)) == 2
    assert count(engine, SurveyRow.__table__, SurveyRow.rating == 4) == 12

    # Nothing left to do the second time; and no new audit row for an empty purge.
    rows_before = count(engine, AuditRow.__table__)
    assert purger(engine, tracker).run().total == 0
    assert count(engine, AuditRow.__table__) == rows_before


def test_dry_run_counts_and_deletes_nothing(engines):
    engine, tracker = engines
    seed(engine, tracker, n=3)
    audit_rows = count(engine, AuditRow.__table__)
    report = purger(engine, tracker).run(dry_run=True)
    assert report.dry_run and report.counts["inbox_rows"] == 6 and report.counts["audit_log"] == 3
    assert count(engine, InboxRow.__table__) == 6 and count(tracker, EVENTS) == 5
    assert count(engine, AuditRow.__table__) == audit_rows


def test_the_counts_go_to_the_audit_log_without_content(engines):
    engine, tracker = engines
    seed(engine, tracker, n=3)
    report = purger(engine, tracker).run()
    with engine.connect() as connection:
        rows = connection.execute(select(AuditRow).order_by(AuditRow.id)).all()
    purge_rows = [r for r in rows if r.action == PURGE_ACTION]
    assert len(purge_rows) == 1
    assert json.loads(purge_rows[0].detail) == {"deleted": report.counts}
    assert purge_rows[0].actor == "system" and purge_rows[0].conversation_id is None
    assert all(SECRET not in (r.detail or "") and "sealed" not in (r.detail or "") for r in rows)
    assert report.audit_head == rows[-1].entry_hash


def test_a_period_set_to_forever_keeps_that_kind(engines):
    engine, tracker = engines
    seed(engine, tracker, n=3)
    report = purger(engine, tracker, retention=dataclasses.replace(RETENTION, uploaded_files=None)).run()
    assert report.counts["uploaded_files"] == 0 and count(engine, PortalUploadRow.__table__) == 5
    assert report.counts["inbox_rows"] == 6


# ── the audit chain across purges ───────────────────────────────────────────────────────
def audit_log(engine) -> audit.AuditLog:
    return audit.AuditLog(make_session_factory(engine))


def test_the_audit_chain_verifies_after_its_oldest_rows_are_purged(engines):
    engine, tracker = engines
    seed(engine, tracker, n=10)
    log = audit_log(engine)
    assert log.verify().ok
    purger(engine, tracker).run()
    with engine.connect() as connection:
        actions = connection.execute(select(AuditRow.action).order_by(AuditRow.id)).scalars().all()
        first = connection.execute(select(AuditRow).order_by(AuditRow.id).limit(1)).one()
    assert actions == ["ticket_viewed", "ticket_viewed", audit.ANCHOR_ACTION, PURGE_ACTION]
    assert first.prev_hash != audit.GENESIS  # the chain no longer starts at the genesis
    check = log.verify()
    assert check.ok, check
    assert check.rows == 4
    # Appending still works, and a later purge (everything past its period) anchors again.
    with audit.transaction(make_session_factory(engine)) as s:
        audit.append(s, SYSTEM, "settings_changed", at=NOW)
    later = Purger(engine, RETENTION, clock=lambda: NOW + RETENTION.audit_log + 30 * DAY)
    assert later.run().counts["audit_log"] == 5
    assert [a for a in log.entries(limit=10)][-1].action == audit.ANCHOR_ACTION
    assert log.verify().ok


def test_verification_fails_when_a_kept_row_is_changed_after_a_purge(engines):
    engine, tracker = engines
    seed(engine, tracker, n=4)
    purger(engine, tracker).run()
    with engine.connect() as connection:
        target = connection.execute(select(AuditRow.id).order_by(AuditRow.id).limit(1)).scalar_one()
    _without_triggers(engine, "UPDATE inbox_audit SET actor = 'sara' WHERE id = :id", {"id": target})
    check = audit_log(engine).verify()
    assert not check.ok and check.first_bad_id == target and "changed" in check.problem


def test_verification_fails_when_rows_past_the_anchor_are_removed(engines):
    engine, tracker = engines
    seed(engine, tracker, n=4)
    purger(engine, tracker).run()
    with engine.connect() as connection:
        first = connection.execute(select(AuditRow.id).order_by(AuditRow.id).limit(1)).scalar_one()
    # The database refuses it...
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM inbox_audit WHERE id = :id"), {"id": first})
    # ...and with the trigger dropped, the chain shows it.
    _without_triggers(engine, "DELETE FROM inbox_audit WHERE id = :id", {"id": first})
    check = audit_log(engine).verify()
    assert not check.ok and "anchor" in check.problem


def test_verification_fails_when_the_anchor_is_edited(engines):
    engine, tracker = engines
    seed(engine, tracker, n=4)
    purger(engine, tracker).run()
    with engine.connect() as connection:
        second = connection.execute(select(AuditRow).order_by(AuditRow.id).offset(1).limit(1)).one()
    # Point the anchor one row further, drop the first kept row: the anchor's own hash breaks.
    detail = json.dumps({"kept_from": second.prev_hash, "trimmed": 5}, separators=(",", ":"))
    _without_triggers(engine, "UPDATE inbox_audit SET detail = :d WHERE action = :a",
                      {"d": detail, "a": audit.ANCHOR_ACTION})
    check = audit_log(engine).verify()
    assert not check.ok and "changed" in check.problem


def test_rows_before_the_anchor_cannot_be_deleted_without_one(engines):
    engine, tracker = engines
    seed(engine, tracker, n=2)
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM inbox_audit WHERE id = (SELECT MIN(id) FROM inbox_audit)"))
    # With the trigger dropped, deleting the oldest row is detected: no anchor accounts for it.
    _without_triggers(engine, "DELETE FROM inbox_audit WHERE id = (SELECT MIN(id) FROM inbox_audit)", {})
    check = audit_log(engine).verify()
    assert not check.ok and "no retention anchor" in check.problem


def _without_triggers(engine, statement: str, params: dict) -> None:
    """What someone with direct database access could do."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER IF EXISTS inbox_audit_no_update"))
            connection.execute(text("DROP TRIGGER IF EXISTS inbox_audit_no_delete"))
        else:
            connection.execute(text("ALTER TABLE inbox_audit DISABLE TRIGGER USER"))
        connection.execute(text(statement), params)


# ── journal segments ────────────────────────────────────────────────────────────────────
def test_old_journal_segments_are_deleted_but_never_a_live_doors_current_one(tmp_path):
    from whatsapp.journal import InboxJournal

    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    root = tmp_path / "journal"
    dead = root / "old-door"
    dead.mkdir(parents=True)
    stale = NOW.timestamp() - RETENTION.journal_segments.total_seconds() - 3600
    for name, when in [("000000000001.jsonl", stale), ("000000000002.jsonl", stale),
                       ("000000000003.jsonl", NOW.timestamp())]:
        (dead / name).write_text('{"type":"status"}\n')
        os.utime(dead / name, (when, when))
    live = InboxJournal(root / "gateway")  # holds its lock; appends to its newest segment
    try:
        live.append([{"type": "status"}])
        current = sorted((root / "gateway").glob("*.jsonl"))
        for path in current:
            os.utime(path, (stale, stale))
        report = Purger(engine, RETENTION, journal_roots=[root], clock=lambda: NOW).run()
        assert report.counts["journal_segments"] == 2
        assert sorted(p.name for p in dead.glob("*.jsonl")) == ["000000000003.jsonl"]
        assert sorted((root / "gateway").glob("*.jsonl")) == current  # the live door's own
    finally:
        live.close()


# ── settings, the scheduler, the command ────────────────────────────────────────────────
def test_the_periodic_purge_runs_when_due_and_survives_a_failure():
    now = [0.0]
    runs = []

    class FakePurger:
        def run(self):
            runs.append(now[0])
            if len(runs) == 2:
                raise RuntimeError("database away")
            from clinic.retention import PurgeReport
            return PurgeReport({"inbox_rows": 1}, dry_run=False)

    periodic = PeriodicPurge(FakePurger, every=3600, first_after=300, clock=lambda: now[0])
    assert periodic.tick() is None and runs == []  # not yet: 5 minutes after start
    now[0] = 300
    assert periodic.tick().counts == {"inbox_rows": 1}
    now[0] = 1000
    assert periodic.tick() is None and len(runs) == 1
    now[0] = 3900
    assert periodic.tick() is None and len(runs) == 2  # failed: logged, not raised
    now[0] = 7500
    assert periodic.tick() is not None and periodic.runs == 2


def test_the_scheduler_runs_the_purge_of_this_deployment(tmp_path, monkeypatch):
    from clinic.reminders import scheduler

    monkeypatch.setenv("RASA_TRACKER_STORE_URL", f"sqlite:///{tmp_path / 'tracker.db'}")
    monkeypatch.setenv("CLINIC_RETENTION_PURGE_EVERY", "2h")
    args = types.SimpleNamespace(once=False, no_purge=False, database_url=f"sqlite:///{tmp_path / 'clinic.db'}")
    task = scheduler.retention_task(args)
    assert isinstance(task, PeriodicPurge) and task.every == 7200
    task.next_at = 0  # due now
    report = task.tick()
    assert report is not None and set(report.counts) >= {"conversation_text", "audit_log"}
    assert task._purger.tracker_engine is None  # no tracker database there: none created
    assert not (tmp_path / "tracker.db").exists()
    assert scheduler.retention_task(types.SimpleNamespace(once=True, no_purge=False, database_url=None)) is None
    assert scheduler.retention_task(types.SimpleNamespace(once=False, no_purge=True, database_url=None)) is None


def test_tracker_database_is_found_as_rasa_finds_it(tmp_path):
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text('tracker_store:\n  dialect: "sqlite"\n  db: "var/rasa_tracker.db"\n'
                         '  url: ${RASA_TRACKER_STORE_URL}\n')
    assert tracker_database_url({}, endpoints).endswith("/var/rasa_tracker.db")
    assert tracker_database_url({"RASA_TRACKER_STORE_URL": "postgresql://db/rasa"}, endpoints) == "postgresql://db/rasa"
    assert tracker_database_url({}, tmp_path / "missing.yml") is None


def test_the_command_purges_and_prints_counts_only(tmp_path, monkeypatch, capsys):
    from clinic.retention import main

    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    engine = make_engine(url)
    tracker = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    seed(engine, tracker, n=2)
    monkeypatch.setenv("WHATSAPP_JOURNAL_DIR", str(tmp_path / "journal"))
    assert main(["purge", "--dry-run", "--database-url", url, "--tracker-url", f"sqlite:///{tmp_path / 'tracker.db'}"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # The command uses the real clock, so only the shape is asserted; and nothing was deleted.
    assert printed["dry_run"] is True and set(printed["counts"]) >= {"inbox_rows", "audit_log"}
    assert count(engine, InboxRow.__table__) == 5
    assert SECRET not in json.dumps(printed)


def test_rows_are_deleted_in_batches_of_the_configured_size(tmp_path):
    from sqlalchemy import event

    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    seed(engine, make_engine(f"sqlite:///{tmp_path / 'tracker.db'}"), n=10)
    deletes = []

    @event.listens_for(engine, "after_cursor_execute")
    def _seen(_conn, cursor, statement, _params, _context, _many):
        if statement.startswith("DELETE FROM wa_inbox"):
            deletes.append(cursor.rowcount)

    only_inbox = RetentionSettings(**{**{kind: None for kind in RETENTION.periods()},
                                      "inbox_rows": RETENTION.inbox_rows}, batch_size=3)
    report = Purger(engine, only_inbox, clock=lambda: NOW).run()
    assert report.counts["inbox_rows"] == 20
    assert deletes == [3, 3, 3, 1]  # one transaction per batch


def test_conversation_text_is_purged_from_rasas_own_encrypted_tracker_store(tmp_path, monkeypatch):
    """The real store (addons/encrypted_tracker_store.py): its events table, its timestamps."""
    import asyncio

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from addons.encrypted_tracker_store import EncryptedSQLTrackerStore
    from clinic.at_rest import Keyring, new_key_entry

    monkeypatch.setenv("LEAN_TURNS", "0")  # read from the database, not addons/tracker_cache.py
    store = EncryptedSQLTrackerStore(Domain.from_dict({"intents": ["greet"]}), db=str(tmp_path / "tracker.db"),
                                     keyring=Keyring.parse(new_key_entry("k1"), "test"))
    stale = (NOW - RETENTION.conversation_text - DAY).timestamp()
    fresh = (NOW - DAY).timestamp()

    async def save_and_read():
        tracker = DialogueStateTracker("c1", [])
        for i, when in enumerate([stale, stale + 1, fresh]):
            tracker.update(UserUttered(f"{SECRET} {i}", intent={"name": "greet", "confidence": 1.0}, timestamp=when))
            tracker.update(ActionExecuted("action_listen", timestamp=when))
        await store.save(tracker)

    asyncio.run(save_and_read())
    tracker_engine = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    report = Purger(engine, RETENTION, tracker_engine=tracker_engine, clock=lambda: NOW).run()
    assert report.counts["conversation_text"] == 4
    kept = asyncio.run(store.retrieve("c1"))
    assert [e.text for e in kept.events if e.type_name == "user"] == [f"{SECRET} 2"]


def test_the_scheduler_loop_purges_beside_its_reminder_ticks_and_stops_on_sigterm(tmp_path, monkeypatch):
    import asyncio
    import signal

    from clinic.reminders import scheduler
    from clinic.retention import PurgeReport

    ran = []

    class FakePurger:
        stopping = types.SimpleNamespace(set=lambda: ran.append("stopped"))

        def run(self):
            ran.append("purged")
            os.kill(os.getpid(), signal.SIGTERM)  # the scheduler's own stop signal
            return PurgeReport({"inbox_rows": 0}, dry_run=False)

    monkeypatch.setattr(scheduler, "retention_task",
                        lambda args: PeriodicPurge(FakePurger, every=3600, first_after=0))
    args = types.SimpleNamespace(rasa_url="http://127.0.0.1:9", poll_seconds=0.05, once=False, no_purge=False,
                                 database_url=f"sqlite:///{tmp_path / 'clinic.db'}")
    assert asyncio.run(asyncio.wait_for(scheduler.run(args), timeout=30)) == 0
    assert ran == ["purged", "stopped"]


def test_the_migration_downgrades_to_a_delete_refused_outright_and_back(engines):
    from alembic import command

    from clinic.db import alembic_config

    engine, tracker = engines
    seed(engine, tracker, n=3)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0014_outbox_queue")
    refused = purger(engine, tracker).run()  # 0014: not even below an anchor
    assert refused.failed == ["audit_log"] and refused.counts["inbox_rows"] == 6  # the others went on
    with engine.connect() as connection:
        recorded = connection.execute(select(AuditRow.detail).where(AuditRow.action == PURGE_ACTION)).scalar_one()
    assert json.loads(recorded)["failed"] == ["audit_log"]
    assert count(engine, AuditRow.__table__, AuditRow.action == "ticket_viewed") == 5
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "head")
    assert purger(engine, tracker).run().counts["audit_log"] == 3
    with pytest.raises(Exception, match="append-only"):
        with engine.begin() as connection:
            connection.execute(text("UPDATE inbox_audit SET detail = 'x'"))
    assert audit_log(engine).verify().ok


def test_the_audit_chain_verifies_on_a_postgresql_server_outside_utc(postgres_url):
    """PostgreSQL returns timestamps in the session's time zone: the chain hashes the time as
    UTC text, so a server set to another zone must verify the same rows (it failed on any
    non-UTC server before `aware` converted)."""
    with fresh_database(postgres_url, "audtz") as url:
        name = make_engine(url).url.database
        with make_engine(url).begin() as connection:
            connection.execute(text(f"ALTER DATABASE {name} SET timezone TO 'Asia/Shanghai'"))
        engine = make_engine(url)
        create_schema(engine)
        with engine.connect() as connection:
            assert connection.execute(text("SHOW timezone")).scalar() == "Asia/Shanghai"
        with audit.transaction(make_session_factory(engine)) as s:
            audit.append(s, SYSTEM, "settings_changed", at=NOW)
            audit.append(s, SYSTEM, "settings_changed", at=NOW + DAY)
        check = audit_log(engine).verify()
        engine.dispose()
    assert check.ok, check
    assert check.rows == 2
