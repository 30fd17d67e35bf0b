"""Campaigns and their recipients in the database: every state change is a conditional
UPDATE, so two runners (or a runner and a restarted one) can never both own a row.

Synchronous SQLAlchemy (2.0 style on 1.4): the async runner calls these in worker threads.

A campaign's languages live in ``params_json``: a list (one language, the campaign's
``language``: every campaign before languages were added) or a mapping ``{WhatsApp code:
[params]}`` whose keys are the languages the template is approved in, the default
(``language``) first. A recipient who got the default version for want of theirs has it in
``reason`` (``language_fallback: ru -> en_US (...)``), counted by :meth:`BroadcastStore.progress`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import sessionmaker

from clinic.broadcasts import tables as t
from clinic.clock import utcnow
from clinic.consent import HEALTH_TIPS, ConsentStore
from clinic.messaging.store import LANGUAGE_FALLBACK, QUEUED, SENDING, SENT, OutboundRow


class CampaignError(ValueError):
    """A campaign that cannot be created or run as asked (message says why)."""


@dataclasses.dataclass(frozen=True)
class Campaign:
    id: int
    name: str
    template: str
    language: str
    params: List[str]
    quick_replies: List[str]
    topic: str
    rate: float
    status: str
    # Every language the template is approved in (the default, ``language``, first) and the
    # parameters of each version.
    params_by_language: Mapping[str, List[str]] = dataclasses.field(default_factory=dict)

    @property
    def languages(self) -> Tuple[str, ...]:
        return tuple(self.params_by_language) or (self.language,)

    def params_for(self, language: str) -> List[str]:
        return list(self.params_by_language.get(language, self.params))


@dataclasses.dataclass(frozen=True)
class Recipient:
    id: int
    campaign_id: int
    contact_key: str
    conversation_id: str
    channel: str
    attempts: int


@dataclasses.dataclass(frozen=True)
class Progress:
    campaign: str
    status: str
    counts: Dict[str, int]
    total: int
    fallbacks: int = 0  # rows that got the default language for want of theirs

    @property
    def done(self) -> int:
        return self.total - self.counts.get(t.PENDING, 0) - self.counts.get(t.SENDING, 0)

    def line(self) -> str:
        parts = " ".join(f"{state}={self.counts.get(state, 0)}" for state in t.RECIPIENT_STATES)
        share = 100.0 * self.done / self.total if self.total else 100.0
        return (f"{self.campaign} [{self.status}] {self.done}/{self.total} ({share:.1f}%) {parts} "
                f"language_fallbacks={self.fallbacks}")


def _campaign(row: t.CampaignRow) -> Campaign:
    stored = json.loads(row.params_json)
    by_language = stored if isinstance(stored, dict) else {row.language: stored}
    return Campaign(row.id, row.name, row.template, row.language, list(by_language.get(row.language, [])),
                    json.loads(row.quick_replies_json), row.topic, row.rate, row.status, by_language)


def _params_by_language(language: str, params: Union[Sequence[str], Mapping[str, Sequence[str]]],
                        languages: Sequence[str]) -> Dict[str, List[str]]:
    """Parameters per language, the default first (see the module docstring)."""
    if isinstance(params, Mapping):
        if language not in params:
            raise CampaignError(f"no parameters for the default language {language}")
        if languages and set(languages) != set(params):
            raise CampaignError("the languages and the languages of the parameters differ")
        codes = [language] + [code for code in params if code != language]
        by_language = {code: list(params[code]) for code in codes}
    else:
        codes = [language] + [code for code in languages if code != language]
        by_language = {code: list(params) for code in codes}
    if len({len(values) for values in by_language.values()}) > 1:
        raise CampaignError("every language needs the same number of parameters")
    return by_language


def _recipient(row: t.RecipientRow) -> Recipient:
    return Recipient(row.id, row.campaign_id, row.contact_key, row.conversation_id, row.channel, row.attempts)


class BroadcastStore:
    def __init__(self, sessions: sessionmaker, consent: Optional[ConsentStore] = None):
        self._sessions = sessions
        self.consent = consent or ConsentStore(sessions)

    @property
    def sessions(self) -> sessionmaker:
        return self._sessions

    # ── campaigns ───────────────────────────────────────────────────────────────────────
    def create(self, name: str, template: str, language: str,
               params: Union[Sequence[str], Mapping[str, Sequence[str]]],
               quick_replies: Sequence[str] = (), rate: float = 60.0, description: str = "",
               topic: str = HEALTH_TIPS, now: Optional[dt.datetime] = None,
               languages: Sequence[str] = ()) -> Campaign:
        """``language`` is the default; ``languages`` every approved one (the default added
        when missing); ``params`` one list for every language or a mapping per language."""
        now = now or utcnow()
        by_language = _params_by_language(language, params, languages)
        stored = by_language[language] if len(by_language) == 1 else by_language
        with self._sessions() as session, session.begin():
            if session.scalars(select(t.CampaignRow.id).where(t.CampaignRow.name == name)).first():
                raise CampaignError(f"a campaign named {name!r} already exists")
            row = t.CampaignRow(name=name, description=description or None, template=template,
                                language=language, params_json=json.dumps(stored, ensure_ascii=False),
                                quick_replies_json=json.dumps(list(quick_replies)), topic=topic,
                                rate=rate, status=t.DRAFT, created_at=now)
            session.add(row)
            session.flush()
            return _campaign(row)

    def campaign(self, name: str) -> Campaign:
        with self._sessions() as session:
            row = session.scalars(select(t.CampaignRow).where(t.CampaignRow.name == name)).first()
            if row is None:
                raise CampaignError(f"no campaign named {name!r}")
            return _campaign(row)

    def campaigns(self) -> List[Campaign]:
        with self._sessions() as session:
            return [_campaign(r) for r in session.scalars(select(t.CampaignRow).order_by(t.CampaignRow.id))]

    def enqueue_segment(self, campaign_id: int, now: Optional[dt.datetime] = None) -> int:
        """Queue every contact opted in now (health tips, WhatsApp). Idempotent: contacts
        already queued are not queued again (unique campaign × contact). Returns how many
        were added."""
        now = now or utcnow()
        subscribers = self.consent.tips_segment("whatsapp")
        with self._sessions() as session, session.begin():
            known = set(session.scalars(select(t.RecipientRow.contact_key)
                                        .where(t.RecipientRow.campaign_id == campaign_id)))
            new = [s for s in subscribers if s.contact_key not in known]
            session.bulk_insert_mappings(t.RecipientRow, [
                {"campaign_id": campaign_id, "contact_key": s.contact_key, "conversation_id": s.conversation_id,
                 "channel": s.channel, "status": t.PENDING, "attempts": 0, "updated_at": now} for s in new])
        return len(new)

    def set_status(self, campaign_id: int, status: str, error: Optional[str] = None,
                   now: Optional[dt.datetime] = None) -> None:
        now = now or utcnow()
        values: Dict[str, object] = {"status": status}
        if status == t.RUNNING:
            values["started_at"] = func.coalesce(t.CampaignRow.started_at, now)
        if status in (t.DONE, t.CANCELLED):
            values["finished_at"] = now
        if error is not None:
            values["last_error"] = error[:300]
        with self._sessions() as session, session.begin():
            session.execute(update(t.CampaignRow).where(t.CampaignRow.id == campaign_id).values(**values))

    # ── lease: one runner per campaign (the rate limit is per process) ─────────────────
    def take_lease(self, campaign_id: int, owner: str, ttl: dt.timedelta,
                   now: Optional[dt.datetime] = None) -> bool:
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(t.CampaignRow)
                .where(t.CampaignRow.id == campaign_id,
                       or_(t.CampaignRow.lease_owner.is_(None), t.CampaignRow.lease_owner == owner,
                           t.CampaignRow.lease_until < now))
                .values(lease_owner=owner, lease_until=now + ttl))
            return result.rowcount == 1

    def lease_holder(self, campaign_id: int) -> Optional[str]:
        with self._sessions() as session:
            return session.scalar(select(t.CampaignRow.lease_owner).where(t.CampaignRow.id == campaign_id))

    def take_over_lease(self, campaign_id: int, dead_owner: str, owner: str, ttl: dt.timedelta,
                        now: Optional[dt.datetime] = None) -> bool:
        """Take the lease from an owner known to be dead (conditional on it still holding it)."""
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.CampaignRow)
                .where(t.CampaignRow.id == campaign_id, t.CampaignRow.lease_owner == dead_owner)
                .values(lease_owner=owner, lease_until=now + ttl)).rowcount == 1

    def release_lease(self, campaign_id: int, owner: str) -> None:
        with self._sessions() as session, session.begin():
            session.execute(update(t.CampaignRow).where(t.CampaignRow.id == campaign_id,
                                                        t.CampaignRow.lease_owner == owner)
                            .values(lease_owner=None, lease_until=None))

    # ── recipients ──────────────────────────────────────────────────────────────────────
    def claim(self, campaign_id: int, worker: str, limit: int,
              now: Optional[dt.datetime] = None) -> List[Recipient]:
        """Claim up to ``limit`` due pending rows. Each row is taken with its own conditional
        UPDATE (``… WHERE id=? AND status='pending'``): whoever's update changes the row owns it."""
        now = now or utcnow()
        claimed: List[Recipient] = []
        with self._sessions() as session, session.begin():
            rows = session.scalars(
                select(t.RecipientRow)
                .where(t.RecipientRow.campaign_id == campaign_id, t.RecipientRow.status == t.PENDING,
                       or_(t.RecipientRow.not_before.is_(None), t.RecipientRow.not_before <= now))
                .order_by(t.RecipientRow.id).limit(limit)).all()
            for row in rows:
                result = session.execute(
                    update(t.RecipientRow)
                    .where(t.RecipientRow.id == row.id, t.RecipientRow.status == t.PENDING)
                    .values(status=t.SENDING, claimed_by=worker, claimed_at=now, updated_at=now,
                            attempts=t.RecipientRow.attempts + 1)
                    .execution_options(synchronize_session=False))
                if result.rowcount == 1:
                    claimed.append(dataclasses.replace(_recipient(row), attempts=row.attempts + 1))
        return claimed

    def next_due(self, campaign_id: int) -> Optional[dt.datetime]:
        """When the earliest deferred pending row becomes due (None: none deferred)."""
        with self._sessions() as session:
            return session.scalar(select(func.min(t.RecipientRow.not_before))
                                  .where(t.RecipientRow.campaign_id == campaign_id,
                                         t.RecipientRow.status == t.PENDING))

    def finish(self, recipient_id: int, worker: str, status: str, wamid: Optional[str] = None,
               reason: Optional[str] = None, now: Optional[dt.datetime] = None) -> bool:
        """``sending`` → a final state, only by the worker holding the claim."""
        return self.finish_many([(recipient_id, status, wamid, reason)], worker, now) == 1

    def finish_many(self, items: Iterable[tuple], worker: str, now: Optional[dt.datetime] = None) -> int:
        """Several (id, status, wamid, reason) in one transaction; returns rows changed."""
        now = now or utcnow()
        changed = 0
        with self._sessions() as session, session.begin():
            for recipient_id, status, wamid, reason in items:
                values = {"status": status, "wamid": wamid, "reason": (reason or None) and reason[:200],
                          "updated_at": now}
                if status == t.SENT:
                    values["sent_at"] = now
                changed += session.execute(
                    update(t.RecipientRow)
                    .where(t.RecipientRow.id == recipient_id, t.RecipientRow.status == t.SENDING,
                           t.RecipientRow.claimed_by == worker)
                    .values(**values).execution_options(synchronize_session=False)).rowcount
        return changed

    def defer(self, recipient_id: int, worker: str, until: dt.datetime, reason: str,
              now: Optional[dt.datetime] = None) -> bool:
        """Back to pending, not before ``until`` (pacing, or a campaign-wide error)."""
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.RecipientRow)
                .where(t.RecipientRow.id == recipient_id, t.RecipientRow.status == t.SENDING,
                       t.RecipientRow.claimed_by == worker)
                .values(status=t.PENDING, not_before=until, reason=reason[:200], claimed_by=None,
                        updated_at=now).execution_options(synchronize_session=False)).rowcount == 1

    def skip_opted_out(self, contact_key: str, now: Optional[dt.datetime] = None) -> int:
        """Skip every pending row of a contact (called when they opt out of tips)."""
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.RecipientRow)
                .where(t.RecipientRow.contact_key == contact_key, t.RecipientRow.status == t.PENDING)
                .values(status=t.SKIPPED, reason="opted_out", updated_at=now)
                .execution_options(synchronize_session=False)).rowcount

    def last_outbound_at(self, conversation_id: str) -> Optional[dt.datetime]:
        """When anything (a reply, a reminder, a broadcast) last went to a conversation:
        per-user pacing looks at every message, not only this campaign's. A row's last update
        is the moment that counts: for a sent message, when it was sent (queued at 10:00:00
        and sent at 10:00:09, it paces the next one until 10:00:15, not 10:00:06); for one
        being sent, when the outbox took it; for one still queued, when it was queued. (Not
        "now" for every unsent row: one left ``sending`` by a dead outbox would then hold
        the patient's messages back for good.)"""
        with self._sessions() as session:
            value = session.scalar(select(func.max(OutboundRow.updated_at)).where(
                OutboundRow.conversation_id == conversation_id,
                OutboundRow.state.in_((SENT, QUEUED, SENDING))))
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value

    # ── crash recovery ─────────────────────────────────────────────────────────────────
    def in_flight(self, campaign_id: int) -> List[t.RecipientRow]:
        with self._sessions() as session:
            return list(session.scalars(select(t.RecipientRow).where(
                t.RecipientRow.campaign_id == campaign_id, t.RecipientRow.status == t.SENDING)))

    def outbound_for(self, conversation_id: str, kind: str) -> List[OutboundRow]:
        with self._sessions() as session:
            return list(session.scalars(select(OutboundRow).where(
                and_(OutboundRow.conversation_id == conversation_id, OutboundRow.kind == kind))
                .order_by(OutboundRow.id)))

    def resolve(self, recipient_id: int, status: str, wamid: Optional[str], reason: Optional[str],
                now: Optional[dt.datetime] = None) -> bool:
        """Settle a ``sending`` row left by a dead runner (the caller holds the lease)."""
        now = now or utcnow()
        values = {"status": status, "wamid": wamid, "reason": reason, "updated_at": now, "claimed_by": None}
        if status == t.SENT:
            values["sent_at"] = now
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.RecipientRow)
                .where(t.RecipientRow.id == recipient_id, t.RecipientRow.status == t.SENDING)
                .values(**values).execution_options(synchronize_session=False)).rowcount == 1

    def requeue_unknown(self, campaign_id: int) -> int:
        """Operator's choice: resend rows whose fate is unknown (accepting a possible duplicate)."""
        with self._sessions() as session, session.begin():
            return session.execute(
                update(t.RecipientRow)
                .where(t.RecipientRow.campaign_id == campaign_id, t.RecipientRow.status == t.UNKNOWN)
                .values(status=t.PENDING, reason="requeued_by_operator", updated_at=utcnow())
                .execution_options(synchronize_session=False)).rowcount

    # ── progress ────────────────────────────────────────────────────────────────────────
    def progress(self, campaign_id: int) -> Progress:
        with self._sessions() as session:
            row = session.get(t.CampaignRow, campaign_id)
            counts = dict(session.execute(
                select(t.RecipientRow.status, func.count())
                .where(t.RecipientRow.campaign_id == campaign_id)
                .group_by(t.RecipientRow.status)).all())
            fallbacks = session.scalar(
                select(func.count()).select_from(t.RecipientRow)
                .where(t.RecipientRow.campaign_id == campaign_id,
                       t.RecipientRow.reason.like(f"{LANGUAGE_FALLBACK}%")))
        return Progress(row.name, row.status, counts, sum(counts.values()), fallbacks or 0)

    def recipients(self, campaign_id: int) -> List[t.RecipientRow]:
        with self._sessions() as session:
            return list(session.scalars(select(t.RecipientRow).where(
                t.RecipientRow.campaign_id == campaign_id).order_by(t.RecipientRow.id)))
