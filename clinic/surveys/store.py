"""Survey requests: planned, claimed, sent, rated, commented (conditional updates)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Dict, List, Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.messaging.store import LANGUAGE_FALLBACK
from clinic.surveys import tables as t

COMMENT_MAX = 1000


@dataclasses.dataclass(frozen=True)
class Survey:
    id: str
    kind: str
    subject_id: str
    contact_key: str
    conversation_id: str
    channel: str
    status: str
    rating: Optional[int]


@dataclasses.dataclass(frozen=True)
class RateResult:
    outcome: str  # recorded | not_found | not_yours | invalid
    survey: Optional[Survey] = None

    @property
    def low(self) -> bool:
        return bool(self.survey and self.survey.rating is not None and self.survey.rating <= t.LOW_SCORE)


def _survey(row: t.SurveyRow) -> Survey:
    return Survey(row.id, row.kind, row.subject_id, row.contact_key, row.conversation_id, row.channel,
                  row.status, row.rating)


class SurveyStore:
    def __init__(self, sessions: sessionmaker, cipher=None):
        self._sessions = sessions
        self._cipher = cipher  # clinic.privacy.ContactCipher, for comments

    @property
    def sessions(self) -> sessionmaker:
        return self._sessions

    def add(self, session, kind: str, subject_id: str, contact_key: str, conversation_id: str,
            channel: str, due_at: dt.datetime, now: dt.datetime) -> str:
        """Plan one survey inside the caller's transaction (unique per kind and subject)."""
        survey_id = t.new_survey_id()
        session.add(t.SurveyRow(id=survey_id, kind=kind, subject_id=subject_id, contact_key=contact_key,
                                conversation_id=conversation_id, channel=channel, status=t.PENDING,
                                due_at=due_at, created_at=now, updated_at=now))
        return survey_id

    def get(self, survey_id: str) -> Optional[Survey]:
        with self._sessions() as session:
            row = session.get(t.SurveyRow, survey_id)
            return _survey(row) if row else None

    # ── sending ────────────────────────────────────────────────────────────────────────
    def claim(self, worker: str, limit: int, now: Optional[dt.datetime] = None) -> List[Survey]:
        now = now or utcnow()
        claimed = []
        with self._sessions() as session, session.begin():
            rows = session.scalars(select(t.SurveyRow).where(t.SurveyRow.status == t.PENDING,
                                                             t.SurveyRow.due_at <= now)
                                   .order_by(t.SurveyRow.due_at).limit(limit)).all()
            for row in rows:
                if session.execute(update(t.SurveyRow).where(t.SurveyRow.id == row.id,
                                                            t.SurveyRow.status == t.PENDING)
                                   .values(status=t.SENDING, claimed_by=worker, updated_at=now)
                                   .execution_options(synchronize_session=False)).rowcount == 1:
                    claimed.append(dataclasses.replace(_survey(row), status=t.SENDING))
        return claimed

    def finish(self, survey_id: str, status: str, wamid: Optional[str] = None, reason: Optional[str] = None,
               worker: Optional[str] = None, now: Optional[dt.datetime] = None,
               due_at: Optional[dt.datetime] = None) -> bool:
        now = now or utcnow()
        query = update(t.SurveyRow).where(t.SurveyRow.id == survey_id, t.SurveyRow.status == t.SENDING)
        if worker is not None:
            query = query.where(t.SurveyRow.claimed_by == worker)
        values = {"status": status, "wamid": wamid, "reason": reason and reason[:200], "updated_at": now}
        if status == t.SENT:
            values["sent_at"] = now
        if due_at is not None:
            values["due_at"] = due_at
        with self._sessions() as session, session.begin():
            return session.execute(query.values(**values).execution_options(synchronize_session=False)).rowcount == 1

    def in_flight(self) -> List[Survey]:
        with self._sessions() as session:
            return [_survey(r) for r in session.scalars(select(t.SurveyRow).where(t.SurveyRow.status == t.SENDING))]

    # ── answers (from the conversation) ────────────────────────────────────────────────
    def rate(self, survey_id: str, contact_key: str, rating: int, now: Optional[dt.datetime] = None) -> RateResult:
        """Store a rating; a second tap changes it (the latest counts)."""
        if not isinstance(rating, int) or not 1 <= rating <= 5:
            return RateResult("invalid")
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            row = session.get(t.SurveyRow, survey_id)
            if row is None:
                return RateResult("not_found")
            if row.contact_key != contact_key:
                # A forwarded survey tapped from another phone must not rate someone's visit.
                return RateResult("not_yours")
            row.rating, row.rated_at, row.updated_at = rating, now, now
            if rating <= t.LOW_SCORE:
                row.offered_human = True
            return RateResult("recorded", _survey(row))

    def comment(self, survey_id: str, contact_key: str, text: str, now: Optional[dt.datetime] = None) -> bool:
        if self._cipher is None:
            raise RuntimeError("a cipher is needed to store comments")
        text = (text or "").strip()[:COMMENT_MAX]
        if not text:
            return False
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.SurveyRow).where(t.SurveyRow.id == survey_id, t.SurveyRow.contact_key == contact_key)
                .values(comment_encrypted=self._cipher.encrypt(text), commented_at=now, updated_at=now)
                .execution_options(synchronize_session=False)).rowcount == 1

    def read_comment(self, survey_id: str) -> Optional[str]:
        with self._sessions() as session:
            row = session.get(t.SurveyRow, survey_id)
            if row is None or row.comment_encrypted is None or self._cipher is None:
                return None
            return self._cipher.decrypt(row.comment_encrypted)

    def fallbacks(self) -> int:
        """Surveys sent (or tried) in the clinic's default language because the patient's
        language had no approved version (the ``reason`` records it)."""
        with self._sessions() as session:
            return session.scalar(select(func.count()).select_from(t.SurveyRow)
                                  .where(t.SurveyRow.reason.like(f"{LANGUAGE_FALLBACK}%")))

    def counts(self) -> Dict[str, int]:
        with self._sessions() as session:
            return dict(session.execute(select(t.SurveyRow.status, func.count()).group_by(t.SurveyRow.status)).all())
