"""Sends due survey requests as templates, exactly once (the broadcast runner's design,
clinic/broadcasts/runner.py: claim by conditional update, the sender's ``wa_outbound``
record under ``kind = "survey:<id>"``, crash recovery by that record, at most once when
the process died during the Graph call).

Templates (approved, utility): ``visit_survey`` (clinic name, visit date) and
``service_survey`` (clinic name); five quick replies ``/rate{"rating": N, "survey_id": …}``.
No clinical content: not the service, not the reason of the handoff.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Callable, Dict, Optional

from clinic.broadcasts.runner import RateLimiter
from clinic.consent import ConsentStore
from clinic.surveys import tables as t
from clinic.surveys.store import Survey, SurveyStore, utcnow
from whatsapp.outbound import Template

logger = logging.getLogger(__name__)

PACING = dt.timedelta(seconds=6)


def rating_payload(survey_id: str, rating: int) -> str:
    return "/rate" + json.dumps({"rating": rating, "survey_id": survey_id}, separators=(", ", ": "))


def survey_template(survey: Survey, clinic_name: str, visit_day: Optional[str]) -> Template:
    payloads = tuple(rating_payload(survey.id, n) for n in range(1, 6))
    if survey.kind == t.VISIT:
        return Template("visit_survey", "en_US", (clinic_name, visit_day or "your visit"), payloads)
    return Template("service_survey", "en_US", (clinic_name,), payloads)


class SurveySender:
    def __init__(self, store: SurveyStore, consent: ConsentStore, sender, worker: str, clinic_name: str,
                 visit_day: Callable[[str], Optional[str]], last_outbound_at: Callable[[str], Optional[dt.datetime]],
                 rate: float = 20.0, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store, self.consent, self.sender, self.worker = store, consent, sender, worker
        self.clinic_name, self.visit_day, self.last_outbound_at = clinic_name, visit_day, last_outbound_at
        self.limiter = RateLimiter(rate)
        self.clock = clock

    def recover(self, outbound_for) -> Dict[str, int]:
        """Settle surveys a dead sender left ``sending`` (``outbound_for(conversation, kind)``)."""
        settled: Dict[str, int] = {}
        for survey in self.store.in_flight():
            records = outbound_for(survey.conversation_id, t.outbound_kind(survey.id))
            sent = next((r for r in records if r.state == "sent"), None)
            if sent is not None:
                status, wamid, reason = t.SENT, sent.wamid, "recovered"
            elif any(r.state == "sending" for r in records):
                status, wamid, reason = t.UNKNOWN, None, "crashed during the Graph call: not resent"
            elif records:
                status, wamid, reason = t.FAILED, None, records[-1].error_detail
            else:
                status, wamid, reason = t.PENDING, None, "recovered: never sent"
            if self.store.finish(survey.id, status, wamid, reason, now=self.clock()):
                settled[status] = settled.get(status, 0) + 1
        return settled

    async def send_due(self, limit: int = 50) -> Dict[str, int]:
        surveys = await asyncio.to_thread(self.store.claim, self.worker, limit, self.clock())
        figures: Dict[str, int] = {}
        for survey in surveys:
            state = await self._one(survey)
            figures[state] = figures.get(state, 0) + 1
        return figures

    async def _one(self, survey: Survey) -> str:
        if survey.channel != "whatsapp":
            await asyncio.to_thread(self.store.finish, survey.id, t.SKIPPED, None, "not whatsapp", self.worker)
            return t.SKIPPED
        if not await asyncio.to_thread(self.consent.reminders_allowed, survey.contact_key):
            await asyncio.to_thread(self.store.finish, survey.id, t.SKIPPED, None, "opted_out", self.worker)
            return t.SKIPPED
        last = await asyncio.to_thread(self.last_outbound_at, survey.conversation_id)
        if last is not None and last + PACING > self.clock():
            await asyncio.to_thread(self.store.finish, survey.id, t.PENDING, None, "pacing", self.worker,
                                    None, last + PACING)
            return "deferred"
        day = await asyncio.to_thread(self.visit_day, survey.subject_id) if survey.kind == t.VISIT else None
        await self.limiter.acquire()
        outcome = await self.sender.send(survey.conversation_id, survey_template(survey, self.clinic_name, day),
                                         t.outbound_kind(survey.id))
        if outcome.state == "sent":
            await asyncio.to_thread(self.store.finish, survey.id, t.SENT, outcome.wamid, None, self.worker)
            return t.SENT
        await asyncio.to_thread(self.store.finish, survey.id, t.FAILED, None,
                                f"{outcome.state}: {outcome.code or ''} {outcome.detail}".strip(), self.worker)
        return t.FAILED
