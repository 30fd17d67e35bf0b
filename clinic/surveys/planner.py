"""Plans survey requests from what happened: fulfilled visits and resolved handoff tickets.

Run on each tick of ``python -m clinic.surveys send`` (or ``plan``). Idempotent: a visit or a
ticket episode is surveyed at most once (unique kind × subject). Not surveyed: contacts who
turned reminders/follow-ups off (STOP), visits or tickets older than ``lookback``, and, when
the staff inbox already asks for a rating on resolve (its ``handoff_ratings`` table), tickets
(the patient is asked once, by the inbox).
"""

from __future__ import annotations

import datetime as dt
from typing import Tuple

from sqlalchemy import inspect, select
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.consent import ConsentStore
from clinic.surveys import tables as t
from clinic.surveys.store import SurveyStore

VISIT_DELAY = dt.timedelta(hours=2)  # after the visit's end: the patient is home
LOOKBACK = dt.timedelta(days=3)


def inbox_rates_handoffs(sessions: sessionmaker) -> bool:
    with sessions() as session:
        return "handoff_ratings" in inspect(session.get_bind()).get_table_names()


def plan(sessions: sessionmaker, store: SurveyStore, consent: ConsentStore,
         now: dt.datetime = None, lookback: dt.timedelta = LOOKBACK,
         visit_delay: dt.timedelta = VISIT_DELAY) -> Tuple[int, int]:
    """Returns (visits planned, tickets planned)."""
    from clinic.scheduling.tables import AppointmentRow, PatientRow

    now = now or utcnow()
    visits = tickets = 0
    with sessions() as session, session.begin():
        done = set(session.execute(select(t.SurveyRow.kind, t.SurveyRow.subject_id)).all())
        rows = session.execute(
            select(AppointmentRow.id, AppointmentRow.end, PatientRow.contact_key,
                   PatientRow.conversation_id, PatientRow.channel)
            .join(PatientRow, PatientRow.id == AppointmentRow.patient_id)
            .where(AppointmentRow.status == "fulfilled", AppointmentRow.end >= now - lookback,
                   AppointmentRow.end <= now)).all()
        for row in rows:
            if (t.VISIT, row.id) in done or not consent.reminders_allowed(row.contact_key):
                continue
            store.add(session, t.VISIT, row.id, row.contact_key, row.conversation_id, row.channel,
                      max(row.end + visit_delay, now), now)
            visits += 1
        if not inbox_rates_handoffs(sessions):
            tickets = _plan_tickets(session, store, consent, done, now, lookback)
    return visits, tickets


def _plan_tickets(session, store: SurveyStore, consent: ConsentStore, done: set,
                  now: dt.datetime, lookback: dt.timedelta) -> int:
    try:
        from clinic.inbox.tables import TicketRow
    except ImportError:  # pragma: no cover - the inbox is optional
        return 0
    planned = 0
    rows = session.execute(
        select(TicketRow.id, TicketRow.reopen_count, TicketRow.contact_key, TicketRow.conversation_id)
        .where(TicketRow.state == "resolved", TicketRow.resolved_at >= now - lookback,
               TicketRow.first_response_at.is_not(None))).all()
    for row in rows:
        subject = f"{row.id}:{row.reopen_count}"
        if (t.HANDOFF, subject) in done or not row.contact_key or not consent.reminders_allowed(row.contact_key):
            continue
        store.add(session, t.HANDOFF, subject, row.contact_key, row.conversation_id, "whatsapp", now, now)
        planned += 1
    return planned
