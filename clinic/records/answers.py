"""The answer to "are my results / is my document / my bill / my turn…?": a state and the
few facts the reply may quote (a date, a document label, a ticket), never content.

``answer(question, records)`` decides; the Rasa action turns a "ready" answer into a fresh
single-use portal link (clinic.portal) and the domain's reply for the state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import List, Optional

from clinic.notifications.model import BILLING_ITEMS, DOCUMENT_KINDS
from clinic.records import tables as t
from clinic.records.store import Record

QUESTIONS = {"results_status": t.RESULT, "document_status": t.DOCUMENT, "billing_status": t.BILLING,
             "queue_status": t.QUEUE}


@dataclasses.dataclass(frozen=True)
class StatusAnswer:
    state: str  # the slot value the rules branch on, e.g. "results_ready"
    document_id: Optional[str] = None  # what a portal link opens
    purpose: Optional[str] = None  # the portal token's purpose
    expected: Optional[dt.datetime] = None
    label: Optional[str] = None  # e.g. "sick note", "invoice"
    reference: Optional[str] = None
    room: Optional[str] = None
    position: Optional[int] = None


def answer(question: str, records: List[Record], now: Optional[dt.datetime] = None) -> StatusAnswer:
    """``records``: the patient's records of the question's kind, newest first."""
    kind = QUESTIONS[question]
    if kind == t.RESULT:
        return _results(records)
    if kind == t.DOCUMENT:
        return _documents(records)
    if kind == t.BILLING:
        return _billing(records)
    # A queue place is today's only: yesterday's ticket means nothing now.
    now = now or dt.datetime.now(dt.timezone.utc)
    return _queue([r for r in records if r.updated_at >= now - dt.timedelta(hours=12)])


def _results(records: List[Record]) -> StatusAnswer:
    ready = [r for r in records if r.status == "ready" and r.document_id]
    if ready:
        return StatusAnswer("results_ready", document_id=ready[0].document_id, purpose="results")
    pending = [r for r in records if r.status == "pending"]
    if pending:
        return StatusAnswer("results_pending", expected=_soonest(pending))
    return StatusAnswer("results_none")


def _documents(records: List[Record]) -> StatusAnswer:
    label = lambda r: DOCUMENT_KINDS.get(r.subtype or "", "document")  # noqa: E731
    for record in records:
        if record.status == "ready" and record.document_id:
            return StatusAnswer("document_ready", document_id=record.document_id, purpose="document",
                                label=label(record))
    for record in records:
        if record.status == "ready_to_collect":
            return StatusAnswer("document_collect", label=label(record))
    pending = [r for r in records if r.status == "pending"]
    if pending:
        return StatusAnswer("document_pending", expected=_soonest(pending), label=label(pending[0]))
    return StatusAnswer("document_none")


_BILLING_STATES = {"issued": "billing_open", "overdue": "billing_overdue", "paid": "billing_paid",
                   "submitted": "billing_claim_pending", "approved": "billing_claim_approved",
                   "rejected": "billing_claim_rejected", "refunded": "billing_paid"}
# Most pressing first: what the patient must act on.
_BILLING_ORDER = ("overdue", "rejected", "issued", "submitted", "approved", "refunded", "paid")


def _billing(records: List[Record]) -> StatusAnswer:
    if not records:
        return StatusAnswer("billing_none")
    record = min(records, key=lambda r: _BILLING_ORDER.index(r.status) if r.status in _BILLING_ORDER else 99)
    return StatusAnswer(_BILLING_STATES.get(record.status, "billing_none"),
                        label=BILLING_ITEMS.get(record.subtype or "", "invoice"),
                        reference=record.reference, expected=record.expected_at)


def _queue(records: List[Record]) -> StatusAnswer:
    active = [r for r in records if r.status in ("waiting", "called")]
    if not active:
        return StatusAnswer("queue_none")
    record = active[0]
    if record.status == "called":
        return StatusAnswer("queue_called", reference=record.reference, room=record.room)
    return StatusAnswer("queue_waiting", reference=record.reference, position=record.position,
                        expected=record.expected_at)


def _soonest(records: List[Record]) -> Optional[dt.datetime]:
    dates = [r.expected_at for r in records if r.expected_at is not None]
    return min(dates) if dates else None
