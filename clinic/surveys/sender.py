"""Sends due survey requests as templates, exactly once (the broadcast runner's design,
clinic/broadcasts/runner.py: claim by conditional update, the ``wa_outbound`` record under
``kind = "survey:<id>"``, queued for the outbox with ``PRIORITY_SURVEY`` (after reminders,
before broadcasts: clinic/messaging/outbox_queue.py), crash recovery by that record, at most
once when the outbox's process died during the Graph call).

Templates (approved, utility): ``visit_survey`` (clinic name, visit date) and
``service_survey`` (clinic name); five quick replies ``/rate{"rating": N, "survey_id": …}``.
No clinical content: not the service, not the reason of the handoff.

Language: the patient's (remembered per conversation, ``clinic.language``), the visit date
written in it, when ``content/templates.yml`` lists the template as approved in it; else the
clinic's default language, and the survey row's ``reason`` records the fallback
(``language_fallback: zh_CN -> en_US (...)``; ``python -m clinic.surveys status`` counts them).
A version Meta refuses with 132001 anyway is resent once in the default language by the
WhatsApp sender, recorded the same way (``clinic/broadcasts/languages.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from typing import Callable, Dict, Optional, Union

from clinic.broadcasts.languages import (
    ContactLanguages,
    LanguageChoice,
    catalogue_language,
    choose,
    fallback_note,
    with_note,
)
from clinic.clock import utcnow
from clinic.consent import ConsentStore
from clinic.language.catalogue import default_catalogue
from clinic.messaging.outbox_queue import WITHDRAWN, OutboxQueue
from clinic.messaging.store import LANGUAGE_FALLBACK
from clinic.scheduling.formatting import on_day
from clinic.surveys import tables as t
from clinic.surveys.store import Survey, SurveyStore
from clinic.surveys.templates import ApprovedTemplates, default_approved
from whatsapp.limits import RateLimiter
from whatsapp.outbound import Template

logger = logging.getLogger(__name__)

PACING = dt.timedelta(seconds=6)


def rating_payload(survey_id: str, rating: int) -> str:
    return "/rate" + json.dumps({"rating": rating, "survey_id": survey_id}, separators=(", ", ": "))


# {{2}} of visit_survey when the visit's date is not known ("Thank you for visiting X on …").
UNKNOWN_DAY = {"en": "your visit", "ru": "недавно", "zh": "近日"}
SURVEY_TEMPLATES = ("visit_survey", "service_survey")


def template_name(survey: Survey) -> str:
    return "visit_survey" if survey.kind == t.VISIT else "service_survey"


def visit_day_text(day: Union[dt.date, str, None], language: str) -> str:
    """The visit's date for {{2}} in ``language`` (a catalogue code: en, ru, zh): "Sunday 29
    March" · "в воскресенье, 29 марта" · "3月29日星期日". A text is taken as it is."""
    if isinstance(day, str) and day:
        return day
    if isinstance(day, dt.date):
        return on_day(day, language=language)
    return UNKNOWN_DAY.get(language, UNKNOWN_DAY["en"])


def survey_template(survey: Survey, clinic_name: str, visit_day: Union[dt.date, str, None],
                    whatsapp_language: str = "en_US", language: Optional[str] = None) -> Template:
    """The survey's template in ``whatsapp_language`` (the WhatsApp code of an approved
    version), its date written in ``language`` (the catalogue code; by default the one of
    ``whatsapp_language``)."""
    language = language or catalogue_language(default_catalogue(), whatsapp_language)
    payloads = tuple(rating_payload(survey.id, n) for n in range(1, 6))
    if survey.kind == t.VISIT:
        return Template("visit_survey", whatsapp_language, (clinic_name, visit_day_text(visit_day, language)), payloads)
    return Template("service_survey", whatsapp_language, (clinic_name,), payloads)


class SurveySender:
    """``visit_day(appointment id)``: the visit's date (a ``date``, written in the patient's
    language here; a text is sent as it is), None when unknown. ``languages``: conversation
    id → WhatsApp code of the contact's language (None: not known), by default the language
    memory; ``approved``: the templates' approved languages (``content/templates.yml``)."""

    def __init__(self, store: SurveyStore, consent: ConsentStore, sender, worker: str, clinic_name: str,
                 visit_day: Callable[[str], Union[dt.date, str, None]],
                 last_outbound_at: Callable[[str], Optional[dt.datetime]],
                 rate: float = 20.0, clock: Callable[[], dt.datetime] = utcnow,
                 languages: Optional[ContactLanguages] = None,
                 approved: Optional[ApprovedTemplates] = None) -> None:
        self.store, self.consent, self.sender, self.worker = store, consent, sender, worker
        self.clinic_name, self.visit_day, self.last_outbound_at = clinic_name, visit_day, last_outbound_at
        self.limiter = RateLimiter(rate)
        self.clock = clock
        self.languages = languages or ContactLanguages(store.sessions)
        self.approved = approved or default_approved()
        self.approved.require(SURVEY_TEMPLATES, self.languages.default)

    def choose_language(self, survey: Survey) -> LanguageChoice:
        """The patient's language if the survey's template is approved in it, else the
        clinic's default (a fallback, recorded)."""
        return choose(self.languages(survey.conversation_id), self.approved.approved_in(template_name(survey)),
                      self.languages.default)

    def template(self, survey: Survey, language: str, day) -> Template:
        return survey_template(survey, self.clinic_name, day, language, self.languages.language(language))

    def recover(self, outbound_for) -> Dict[str, int]:
        """Settle surveys a dead sender left ``sending`` (``outbound_for(conversation, kind)``)."""
        settled: Dict[str, int] = {}
        for survey in self.store.in_flight():
            kind = t.outbound_kind(survey.id)
            if isinstance(self.sender, OutboxQueue):  # once the outbox is done with them
                records = self.sender.settled(lambda survey=survey, kind=kind: outbound_for(survey.conversation_id, kind))
            else:
                records = outbound_for(survey.conversation_id, kind)
            sent = next((r for r in records if r.state == "sent"), None)
            if sent is not None:
                # The WhatsApp sender's own fallback (132001) is on the record: keep it.
                fell_back = (sent.error_detail or "").startswith(LANGUAGE_FALLBACK)
                status, wamid, reason = t.SENT, sent.wamid, with_note("recovered", fell_back and sent.error_detail)
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
        choice = await asyncio.to_thread(self.choose_language, survey)
        template = self.template(survey, choice.language, day)
        # Should Meta not have the version after all (132001), the sender sends the default
        # language's once instead (its date written in that language too).
        extra = {"fallback": self.template(survey, choice.default, day)} if choice.language != choice.default else {}
        await self.limiter.acquire()
        outcome = await self.sender.send(survey.conversation_id, template, t.outbound_kind(survey.id), **extra)
        note = fallback_note(choice, outcome)
        if note:
            logger.info("Survey %s: %s", survey.id, note)
        if outcome.state == "sent":
            await asyncio.to_thread(self.store.finish, survey.id, t.SENT, outcome.wamid, note, self.worker)
            return t.SENT
        if outcome.state == "refused" and outcome.detail == WITHDRAWN:
            # Nobody sent it (the outbox's process is not running) and it was taken back:
            # due again later, not failed.
            await asyncio.to_thread(self.store.finish, survey.id, t.PENDING, None, "outbox not sending", self.worker,
                                    None, self.clock() + dt.timedelta(minutes=1))
            return "deferred"
        reason = f"{outcome.state}: {outcome.code or ''} {outcome.detail}".strip()
        await asyncio.to_thread(self.store.finish, survey.id, t.FAILED, None, with_note(reason, note), self.worker)
        return t.FAILED
