"""Patient record states: written by the notification API (and the demo seeding), read by
the status answers. One row per item; an item is found again by its document id or
reference, so a second "ready" for the same document updates it instead of adding one."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from typing import Callable, List, Optional

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.records import tables as t

# Statuses per kind (what the clinic's systems report).
RESULT_STATUSES = ("pending", "ready")
DOCUMENT_STATUSES = ("pending", "ready", "ready_to_collect", "collected")
BILLING_STATUSES = ("issued", "paid", "overdue", "submitted", "approved", "rejected", "refunded")
QUEUE_STATUSES = ("waiting", "called", "done")
STATUSES = {t.RESULT: RESULT_STATUSES, t.DOCUMENT: DOCUMENT_STATUSES, t.BILLING: BILLING_STATUSES,
            t.QUEUE: QUEUE_STATUSES}


@dataclasses.dataclass(frozen=True)
class Record:
    id: str
    patient_id: str
    kind: str
    subtype: Optional[str]
    status: str
    document_id: Optional[str]
    reference: Optional[str]
    room: Optional[str]
    position: Optional[int]
    expected_at: Optional[dt.datetime]
    updated_at: dt.datetime


def _record(row: t.PatientRecordRow) -> Record:
    return Record(row.id, row.patient_id, row.kind, row.subtype, row.status, row.document_id, row.reference,
                  row.room, row.position, row.expected_at, row.updated_at)


class RecordStore:
    def __init__(self, session_factory: sessionmaker, clock: Callable[[], dt.datetime] = utcnow):
        self._sessions = session_factory
        self._clock = clock

    def records(self, patient_id: str, kind: Optional[str] = None) -> List[Record]:
        """Newest first."""
        query = select(t.PatientRecordRow).where(t.PatientRecordRow.patient_id == patient_id)
        if kind:
            query = query.where(t.PatientRecordRow.kind == kind)
        with self._sessions() as session:
            rows = session.scalars(query.order_by(t.PatientRecordRow.updated_at.desc(), t.PatientRecordRow.id))
            return [_record(r) for r in rows]

    def find_document(self, patient_id: str, document_id: str) -> Optional[Record]:
        with self._sessions() as session:
            row = session.scalars(select(t.PatientRecordRow).where(
                t.PatientRecordRow.patient_id == patient_id,
                t.PatientRecordRow.document_id == document_id)).first()
            return _record(row) if row else None

    def upsert(self, session, patient_id: str, kind: str, status: str, *, subtype: Optional[str] = None,
               document_id: Optional[str] = None, reference: Optional[str] = None, room: Optional[str] = None,
               position: Optional[int] = None, expected_at: Optional[dt.datetime] = None) -> str:
        """Insert or update one item inside the caller's transaction (``session``). An item
        is the same when it has the same document id (results, documents), reference
        (billing) or is today's queue place."""
        if kind not in STATUSES or status not in STATUSES[kind]:
            raise ValueError(f"unknown {kind} status {status!r}")
        now = self._clock()
        query = select(t.PatientRecordRow).where(t.PatientRecordRow.patient_id == patient_id,
                                                 t.PatientRecordRow.kind == kind)
        if document_id:
            query = query.where(t.PatientRecordRow.document_id == document_id)
        elif reference and kind == t.BILLING:
            query = query.where(t.PatientRecordRow.reference == reference,
                                t.PatientRecordRow.subtype == subtype)
        elif kind == t.QUEUE:
            query = query.where(t.PatientRecordRow.status != "done",
                                t.PatientRecordRow.updated_at >= now - dt.timedelta(hours=12))
        else:
            query = None
        row = session.scalars(query).first() if query is not None else None
        if row is None:
            row = t.PatientRecordRow(id="rec_" + secrets.token_hex(6), patient_id=patient_id, kind=kind,
                                     created_at=now)
            session.add(row)
        row.status = status
        row.updated_at = now
        for name, value in (("subtype", subtype), ("document_id", document_id), ("reference", reference),
                            ("room", room), ("position", position), ("expected_at", expected_at)):
            if value is not None:
                setattr(row, name, value)
        session.flush()
        return row.id

    def put(self, patient_id: str, kind: str, status: str, **fields) -> str:
        """:meth:`upsert` in its own transaction."""
        with self._sessions() as session, session.begin():
            return self.upsert(session, patient_id, kind, status, **fields)
