"""Computes the report: aggregates only, no patient data, no conversation text.

Containment is counted from our own tables, not Rasa's tracker store: a conversation is a
WhatsApp conversation id with at least one inbound message in the period (``wa_inbox``
keeps the id and time of every message after its text is cleared); it was *handed off*
when a staff-inbox ticket was opened for it or a handoff request was recorded for its
contact in the period (the contact key is the HMAC of the conversation id, so the two are
joined with the pseudonym key, never with a phone number). Reading the tracker store would
need read access to conversation text and its schema, which is Rasa's and changes between
versions; our tables say the same thing with less exposure. Limits: conversations on
channels other than WhatsApp (REST tests, the shell) are not counted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from typing import Dict, List, Optional

from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import sessionmaker

from clinic.privacy import contact_key
from clinic.reports.appointments import appointment_report

DELIVERED = ("delivered", "read", "played")
READ = ("read", "played")


def _rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def _aware(moment: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment


@dataclasses.dataclass
class DeliveryFigures:
    sent: int
    delivered: int
    read: int
    failed: int
    delivery_rate: Optional[float]
    read_rate: Optional[float]


@dataclasses.dataclass
class Report:
    since: dt.datetime
    until: dt.datetime
    conversations: int
    handed_off: int
    containment_rate: Optional[float]
    handoff_rate: Optional[float]
    tickets_answered: int
    first_response_median_minutes: Optional[float]
    first_response_p90_minutes: Optional[float]
    reminder_confirmation_rate: Optional[float]
    no_show_rate: Optional[float]
    no_show_rate_reminded: Optional[float]
    no_show_rate_not_reminded: Optional[float]
    appointments: int
    ratings: int
    csat: Optional[float]  # share of ratings 4–5
    average_rating: Optional[float]
    ratings_by_source: Dict[str, Dict[str, int]]
    delivery: Dict[str, DeliveryFigures]  # all | broadcast | survey | other
    daily: List[Dict[str, object]]
    # Answers from the clinic's documents per document title and language: answered, not
    # found (the closest document, or none came close), handed over right after. Counts only.
    documents: List[Dict[str, object]] = dataclasses.field(default_factory=list)
    first_response_minutes: List[float] = dataclasses.field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("first_response_minutes")
        data["since"], data["until"] = self.since.isoformat(), self.until.isoformat()
        return data


def _tables(session) -> set:
    return set(inspect(session.get_bind()).get_table_names())


def _conversations(session, since, until, tables) -> Dict[str, dt.date]:
    """Conversation id → the first day it wrote in the period."""
    if "wa_inbox" not in tables:
        return {}
    from clinic.messaging.store import InboxRow

    rows = session.execute(select(InboxRow.conversation_id, func.min(InboxRow.received_at))
                           .where(InboxRow.received_at >= since, InboxRow.received_at < until)
                           .group_by(InboxRow.conversation_id)).all()
    return {conversation: _aware(first).date() for conversation, first in rows}


def _handed_off(session, since, until, conversations, pseudonym_key, tables) -> set:
    handed = set()
    if "inbox_tickets" in tables:
        from clinic.inbox.tables import TicketRow

        handed |= set(session.scalars(select(TicketRow.conversation_id)
                                      .where(TicketRow.created_at >= since, TicketRow.created_at < until)))
    if "handoff_requests" in tables and pseudonym_key:
        from clinic.handoff.tables import HandoffRequest

        keys = set(session.scalars(select(HandoffRequest.contact_key)
                                   .where(HandoffRequest.created_at >= since, HandoffRequest.created_at < until)))
        handed |= {c for c in conversations if contact_key(c, "whatsapp", pseudonym_key) in keys}
    return handed & set(conversations)


def _first_responses(session, since, until, tables) -> List[float]:
    if "inbox_tickets" not in tables:
        return []
    from clinic.inbox.tables import TicketRow

    rows = session.execute(select(TicketRow.created_at, TicketRow.first_response_at)
                           .where(TicketRow.created_at >= since, TicketRow.created_at < until,
                                  TicketRow.first_response_at.is_not(None))).all()
    return sorted(round((_aware(b) - _aware(a)).total_seconds() / 60, 2) for a, b in rows)


def _ratings(session, since, until, tables) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    if "survey_requests" in tables:
        from clinic.surveys.tables import SurveyRow

        for kind, rating in session.execute(select(SurveyRow.kind, SurveyRow.rating)
                                            .where(SurveyRow.rated_at >= since, SurveyRow.rated_at < until,
                                                   SurveyRow.rating.is_not(None))):
            out.setdefault(f"survey_{kind}", []).append(rating)
    if "handoff_ratings" in tables:
        # The staff inbox asks for a rating when a ticket is resolved (clinic/inbox).
        rows = session.execute(text("SELECT rating FROM handoff_ratings WHERE created_at >= :s AND created_at < :u"),
                               {"s": since, "u": until}).scalars()
        ratings = [int(r) for r in rows if r is not None]
        if ratings:
            out["inbox_handoff"] = ratings
    return out


def _delivery(session, since, until, tables) -> Dict[str, DeliveryFigures]:
    if "wa_outbound" not in tables:
        return {}
    from clinic.messaging.store import OutboundRow, StatusRow

    rows = session.execute(select(OutboundRow.kind, StatusRow.status)
                           .join(StatusRow, StatusRow.wamid == OutboundRow.wamid, isouter=True)
                           .where(OutboundRow.state == "sent", OutboundRow.created_at >= since,
                                  OutboundRow.created_at < until)).all()
    groups: Dict[str, List[Optional[str]]] = {"all": []}
    for kind, status in rows:
        group = "broadcast" if kind.startswith("bcast:") else "survey" if kind.startswith("survey:") else "other"
        groups["all"].append(status)
        groups.setdefault(group, []).append(status)
    figures = {}
    for group, statuses in groups.items():
        sent = len(statuses)
        delivered = sum(1 for s in statuses if s in DELIVERED)
        read = sum(1 for s in statuses if s in READ)
        failed = sum(1 for s in statuses if s == "failed")
        figures[group] = DeliveryFigures(sent, delivered, read, failed, _rate(delivered, sent), _rate(read, sent))
    return figures


def _documents(session, since, until, tables) -> List[Dict[str, object]]:
    if "knowledge_outcomes" not in tables:
        return []
    from clinic.knowledge.answers import outcome_figures

    return [dataclasses.asdict(figures) for figures in outcome_figures(session, since, until)]


def _percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def build_report(sessions: sessionmaker, since: dt.datetime, until: dt.datetime,
                 pseudonym_key: Optional[bytes] = None) -> Report:
    if since >= until:
        raise ValueError("since must be before until")
    with sessions() as session:
        tables = _tables(session)
        conversations = _conversations(session, since, until, tables)
        handed = _handed_off(session, since, until, conversations, pseudonym_key, tables)
        responses = _first_responses(session, since, until, tables)
        ratings = _ratings(session, since, until, tables)
        delivery = _delivery(session, since, until, tables)
        documents = _documents(session, since, until, tables)
    appointments = appointment_report(sessions, since, until)
    every_rating = [r for values in ratings.values() for r in values]
    days: Dict[dt.date, Dict[str, int]] = {}
    for conversation, day in conversations.items():
        entry = days.setdefault(day, {"conversations": 0, "handed_off": 0})
        entry["conversations"] += 1
        entry["handed_off"] += conversation in handed
    return Report(
        since=since, until=until,
        conversations=len(conversations), handed_off=len(handed),
        containment_rate=_rate(len(conversations) - len(handed), len(conversations)),
        handoff_rate=_rate(len(handed), len(conversations)),
        tickets_answered=len(responses),
        first_response_median_minutes=round(statistics.median(responses), 2) if responses else None,
        first_response_p90_minutes=_percentile(responses, 0.9),
        reminder_confirmation_rate=appointments.reminder_confirmation_rate,
        no_show_rate=appointments.no_show_rate,
        no_show_rate_reminded=appointments.no_show_rate_reminded,
        no_show_rate_not_reminded=appointments.no_show_rate_not_reminded,
        appointments=appointments.appointments,
        ratings=len(every_rating),
        csat=_rate(sum(1 for r in every_rating if r >= 4), len(every_rating)),
        average_rating=round(sum(every_rating) / len(every_rating), 2) if every_rating else None,
        ratings_by_source={source: {str(n): values.count(n) for n in range(1, 6)} for source, values in ratings.items()},
        delivery=delivery,
        daily=[{"day": day.isoformat(), **figures} for day, figures in sorted(days.items())],
        documents=documents,
        first_response_minutes=responses,
    )


def summary_lines(report: Report) -> List[str]:
    def pct(value: Optional[float]) -> str:
        return "—" if value is None else f"{100 * value:.1f}%"

    def minutes(value: Optional[float]) -> str:
        return "—" if value is None else f"{value:.1f} min"

    lines = [
        f"Period: {report.since:%Y-%m-%d %H:%M} – {report.until:%Y-%m-%d %H:%M} UTC",
        f"Conversations: {report.conversations}; handed to a human: {report.handed_off}",
        f"Containment rate: {pct(report.containment_rate)}   Handoff rate: {pct(report.handoff_rate)}",
        f"Time to first human response: median {minutes(report.first_response_median_minutes)}, "
        f"p90 {minutes(report.first_response_p90_minutes)} ({report.tickets_answered} tickets)",
        f"Reminder confirmation rate: {pct(report.reminder_confirmation_rate)}   "
        f"No-show rate: {pct(report.no_show_rate)} (reminded {pct(report.no_show_rate_reminded)}, "
        f"not reminded {pct(report.no_show_rate_not_reminded)}; {report.appointments} appointments)",
        f"CSAT (ratings 4–5): {pct(report.csat)}   average {report.average_rating or '—'} "
        f"({report.ratings} ratings: {', '.join(f'{k} {sum(v.values())}' for k, v in report.ratings_by_source.items()) or 'none'})",
    ]
    for group, figures in report.delivery.items():
        lines.append(f"Delivery ({group}): {figures.sent} sent, delivered {pct(figures.delivery_rate)}, "
                     f"read {pct(figures.read_rate)}, failed {figures.failed}")
    if not report.delivery:
        lines.append("Delivery: no messages sent in the period")
    answered = sum(int(d["answered"]) for d in report.documents)
    not_found = sum(int(d["not_found"]) for d in report.documents)
    handed = sum(int(d["handed_over"]) for d in report.documents)
    lines.append(f"Answers from documents: {answered} answered, {not_found} not found, "
                 f"{handed} handed to a person right after")
    return lines
