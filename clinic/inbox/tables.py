"""Rows of the staff inbox (``inbox_*`` tables).

Message and note texts and task notes are stored sealed with the clinic's keyring
(clinic/at_rest.py: AES-256-GCM, ``enc:v1:<key id>:…``, rotated by ``python -m
clinic.at_rest_rotation rotate``); rows written before it hold Fernet tokens (the clinic's
``CLINIC_ENCRYPTION_KEY``), which still read and which a rotation re-seals. TOTP secrets
stay Fernet. They may hold health information, and a copied database file or backup should
not reveal them. Ticket rows hold only the conversation's pseudonym.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    text,
)

from clinic.db import Base


class StaffRow(Base):
    __tablename__ = "inbox_staff"

    id = Column(Integer, primary_key=True)
    username = Column(String(64), nullable=False, unique=True)
    display_name = Column(String(100), nullable=False)
    password_hash = Column(String(255), nullable=False)        # argon2id, with its parameters
    totp_secret_encrypted = Column(Text, nullable=False)
    totp_confirmed_at = Column(DateTime(timezone=True), nullable=True)  # first good code
    totp_last_step = Column(Integer, nullable=True)            # a code is accepted once
    role = Column(String(16), nullable=False)
    disabled = Column(Boolean, nullable=False, default=False)
    failed_logins = Column(Integer, nullable=False, default=0)
    locked_until = Column(DateTime(timezone=True), nullable=True)
    session_epoch = Column(Integer, nullable=False, default=0)  # +1 logs out every session
    created_at = Column(DateTime(timezone=True), nullable=False)
    last_login_at = Column(DateTime(timezone=True), nullable=True)


class StaffTeamRow(Base):
    __tablename__ = "inbox_staff_teams"

    staff_id = Column(Integer, ForeignKey("inbox_staff.id", ondelete="CASCADE"), primary_key=True)
    team = Column(String(16), primary_key=True)


class TicketRow(Base):
    __tablename__ = "inbox_tickets"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(64), nullable=False, index=True)  # the channel's pseudonym
    contact_key = Column(String(64), nullable=True)  # links to handoff_requests
    team = Column(String(16), nullable=False)
    priority = Column(String(8), nullable=False)
    state = Column(String(12), nullable=False)
    reason = Column(String(32), nullable=False)      # why it was opened (patient_request, emergency…)
    red_flag_category = Column(String(64), nullable=True)
    assignee_id = Column(Integer, ForeignKey("inbox_staff.id"), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)
    opened_at = Column(DateTime(timezone=True), nullable=False)     # start of this episode (reopen resets)
    waiting_since = Column(DateTime(timezone=True), nullable=True)  # in the queue since (transfer resets)
    claimed_at = Column(DateTime(timezone=True), nullable=True)
    first_response_at = Column(DateTime(timezone=True), nullable=True)
    resolved_at = Column(DateTime(timezone=True), nullable=True)
    resolution_reason = Column(String(300), nullable=True)
    overdue_at = Column(DateTime(timezone=True), nullable=True)     # flagged and re-offered at
    reopen_count = Column(Integer, nullable=False, default=0)
    bot_paused = Column(Boolean, nullable=False, default=False)     # what Rasa last confirmed
    version = Column(Integer, nullable=False)

    # Optimistic locking: two staff claiming at once -> the second gets a Conflict.
    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # At most one active ticket per conversation (a second request reuses it).
        Index("uq_inbox_tickets_active_conversation", "conversation_id", unique=True,
              sqlite_where=text("state != 'resolved'"), postgresql_where=text("state != 'resolved'")),
        Index("ix_inbox_tickets_queue", "state", "team"),
    )


class MessageRow(Base):
    __tablename__ = "inbox_messages"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("inbox_tickets.id"), nullable=False, index=True)
    kind = Column(String(8), nullable=False)          # reply | note
    author_id = Column(Integer, ForeignKey("inbox_staff.id"), nullable=False)
    text_encrypted = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
    delivery = Column(String(12), nullable=True)      # replies only: sent | refused | failed
    delivery_detail = Column(String(300), nullable=True)


class TaskRow(Base):
    """A call-back request: someone must phone (or message) the patient."""

    __tablename__ = "inbox_tasks"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    ticket_id = Column(Integer, ForeignKey("inbox_tickets.id"), nullable=True)
    team = Column(String(16), nullable=False)
    note_encrypted = Column(Text, nullable=True)
    due_at = Column(DateTime(timezone=True), nullable=True)
    state = Column(String(8), nullable=False)         # open | done
    created_by = Column(String(64), nullable=False)   # username, or "bot"
    created_at = Column(DateTime(timezone=True), nullable=False)
    done_by_id = Column(Integer, ForeignKey("inbox_staff.id"), nullable=True)
    done_at = Column(DateTime(timezone=True), nullable=True)


class SettingRow(Base):
    __tablename__ = "inbox_settings"

    key = Column(String(64), primary_key=True)
    value = Column(String(200), nullable=False)


class AuditRow(Base):
    """Append-only: the code has no update or delete for it, and the database refuses them
    (triggers below). ``entry_hash`` chains each row to the one before, so editing or removing
    a row with direct database access is detected by ``AuditLog.verify``."""

    __tablename__ = "inbox_audit"

    id = Column(Integer, primary_key=True)
    at = Column(DateTime(timezone=True), nullable=False)
    actor = Column(String(64), nullable=False)        # username, "system" or "bot"
    actor_id = Column(Integer, nullable=True)
    action = Column(String(40), nullable=False)
    conversation_id = Column(String(64), nullable=True, index=True)
    ticket_id = Column(Integer, nullable=True)
    detail = Column(String(500), nullable=False, default="")  # never message text
    client = Column(String(64), nullable=True)        # IP address of the request
    # Unique: two writers that read the same last row cannot both append after it, so the
    # chain stays a single line even with several processes (the loser retries).
    prev_hash = Column(String(64), nullable=False, unique=True)
    entry_hash = Column(String(64), nullable=False, unique=True)


# The database itself refuses to change or remove audit rows (only a DBA dropping the
# trigger could, and the hash chain would still show it). Used by create_all and by the
# migration (``AUDIT_TRIGGERS``).
AUDIT_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER inbox_audit_no_update BEFORE UPDATE ON inbox_audit "
        "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END",
        # Deleting is refused too, except below the first row kept by the newest retention
        # anchor (clinic/inbox/audit.py, ANCHOR_ACTION): the purge of rows past their period.
        "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
        "WHEN OLD.id >= COALESCE((SELECT k.id FROM inbox_audit k WHERE k.prev_hash = "
        "(SELECT json_extract(a.detail, '$.kept_from') FROM inbox_audit a "
        "WHERE a.action = 'audit_trimmed' ORDER BY a.id DESC LIMIT 1)), 0) "
        "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION inbox_audit_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'inbox_audit is append-only'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER inbox_audit_no_update BEFORE UPDATE ON inbox_audit "
        "FOR EACH ROW EXECUTE FUNCTION inbox_audit_append_only()",
        "CREATE OR REPLACE FUNCTION inbox_audit_delete_guard() RETURNS trigger AS $$ "
        "BEGIN IF OLD.id >= COALESCE((SELECT k.id FROM inbox_audit k WHERE k.prev_hash = "
        "(SELECT a.detail::json ->> 'kept_from' FROM inbox_audit a "
        "WHERE a.action = 'audit_trimmed' ORDER BY a.id DESC LIMIT 1)), 0) "
        "THEN RAISE EXCEPTION 'inbox_audit is append-only'; END IF; RETURN OLD; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
        "FOR EACH ROW EXECUTE FUNCTION inbox_audit_delete_guard()",
    ],
}

for _dialect, _statements in AUDIT_TRIGGERS.items():
    for _statement in _statements:
        event.listen(AuditRow.__table__, "after_create", DDL(_statement).execute_if(dialect=_dialect))


class HandoffRatingRow(Base):
    """The patient's 1-5 answer to "how was your conversation with our team?", asked when a
    ticket is resolved. One per ticket (a second tap replaces the first). No text."""

    __tablename__ = "handoff_ratings"

    id = Column(Integer, primary_key=True)
    ticket_id = Column(Integer, ForeignKey("inbox_tickets.id"), nullable=False, unique=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    team = Column(String(16), nullable=False)
    rating = Column(Integer, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
