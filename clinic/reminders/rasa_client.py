"""Pushes a reminder job into its conversation through Rasa's HTTP API.

``POST {RASA_URL}/conversations/{id}/trigger_intent?output_channel={channel}&token=…``
with ``{"name": "EXTERNAL_appointment_reminder", "entities": {"reminder_job": "rem_…"}}``.
Rasa must run with ``--enable-api --auth-token $RASA_AUTH_TOKEN``.

Rasa 3.6 starts an expired (or brand-new) conversation session inside ``trigger_intent``
without an output channel, and our ``action_session_start`` sends the welcome, so the
call fails with a 500 (RasaHQ/rasa#7248) and the reminder would never get through. So
before triggering we look at the tracker; if its session has expired (or it has none) we
start the new session ourselves by appending what ``action_session_start`` would have
logged: the session start, the slots carried over, the clinic settings refreshed, and no
welcome (a free-form welcome could not be delivered outside WhatsApp's 24-hour window
anyway, and the template is the message the patient needs). A patient message arriving
in the instant between the two calls would get a second session start: harmless.

The reply's values (``visit_date``, ``visit_time``...) are written by the Rasa action in
the conversation's ``language`` slot. A conversation that has never told Rasa its language
(or a new session whose slots were not carried over) can be given the contact's language
here: ``RasaPusher(..., language_for=lambda job: …)`` sends it as the ``language`` entity
of the triggered intent, which fills the slot (domain/language.yml maps it from that
entity) before the action runs. Without ``language_for`` nothing is sent and the slot keeps
whatever it was (English when unset).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import quote

import aiohttp

from clinic.i18n import language_code
from clinic.notifications.model import is_notification_kind
from clinic.reminders import tables as t
from clinic.reminders.dispatcher import PushResult
from clinic.reminders.store import Job

logger = logging.getLogger(__name__)

INTENT_FOR_KIND = {
    t.KIND_FOLLOWUP: "EXTERNAL_visit_followup",
    t.KIND_RECALL: "EXTERNAL_recall_reminder",
}
APPOINTMENT_INTENT = "EXTERNAL_appointment_reminder"
JOB_ENTITY = "reminder_job"
LANGUAGE_ENTITY = "language"  # fills the `language` slot (domain/language.yml)
NOT_CARRIED = {"requested_slot", "session_started_metadata"}


NOTIFICATION_INTENT = "EXTERNAL_notification"  # clinic.notifications' jobs (kind notify_<type>)


def intent_for(kind: str) -> str:
    if is_notification_kind(kind):
        return NOTIFICATION_INTENT
    return INTENT_FOR_KIND.get(kind) or APPOINTMENT_INTENT


class RasaPusher:
    def __init__(self, base_url: str, token: Optional[str], timeout_seconds: float = 30.0,
                 settings_slots: Optional[Dict[str, str]] = None,
                 language_for: Optional[Callable[[Job], Optional[str]]] = None) -> None:
        self.base_url = base_url.rstrip("/")
        # The contact's language (en / ru / zh) for a job, or None: see the module's doc.
        # Called in a worker thread, so it may read the database.
        self._language_for = language_for
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._settings_slots = settings_slots or {}
        self._session: Optional[aiohttp.ClientSession] = None
        self._expiry_minutes: Optional[float] = None
        self._carry_over = True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    def _params(self, **extra: str) -> Dict[str, str]:
        return {**extra, **({"token": self._token} if self._token else {})}

    async def __call__(self, job: Job) -> PushResult:
        conversation = quote(job.conversation_id, safe="")
        try:
            entities = await asyncio.to_thread(self.entities, job) if self._language_for \
                else self.entities(job)
            await self._ensure_session(conversation)
            async with self._http().post(
                f"{self.base_url}/conversations/{conversation}/trigger_intent",
                params=self._params(output_channel=job.channel),
                json={"name": intent_for(job.kind), "entities": entities},
            ) as response:
                if response.status == 200:
                    await response.read()
                    return PushResult(True)
                return PushResult(False, f"rasa http {response.status}")
        except (aiohttp.ClientConnectionError, ConnectionError) as error:
            return PushResult(False, f"rasa unreachable ({type(error).__name__})", unreachable=True)
        except (aiohttp.ClientError, TimeoutError) as error:
            # asyncio.TimeoutError is TimeoutError on 3.10+: Rasa slow; the conditional
            # "mark sent" keeps a late first push and a retry from both sending.
            return PushResult(False, f"rasa error ({type(error).__name__})")
        except _RasaAnswer as error:
            return PushResult(False, str(error))

    def entities(self, job: Job) -> Dict[str, str]:
        """The triggered intent's entities: the job, and the contact's language if known."""
        entities = {JOB_ENTITY: job.id}
        language = None
        if self._language_for is not None:
            try:
                language = self._language_for(job)
            except Exception:  # noqa: BLE001 - the reminder matters more than its language
                logger.warning("No language for job %s; sent in the conversation's", job.id,
                               exc_info=True)
        if language:  # normalised: "ru-RU" → ru; a language we don't speak → en
            entities[LANGUAGE_ENTITY] = language_code(language)
        return entities

    # ── session start without Rasa's output-channel-less session start ──────────────────
    async def _session_config(self) -> None:
        if self._expiry_minutes is not None:
            return
        async with self._http().get(f"{self.base_url}/domain", params=self._params(),
                                    headers={"Accept": "application/json"}) as response:
            if response.status != 200:
                raise _RasaAnswer(f"rasa http {response.status} on /domain")
            config = (await response.json()).get("session_config") or {}
        self._expiry_minutes = float(config.get("session_expiration_time") or 0)
        self._carry_over = bool(config.get("carry_over_slots_to_new_session", True))

    async def _ensure_session(self, conversation: str) -> None:
        await self._session_config()
        if not self._expiry_minutes:
            return  # sessions disabled: Rasa never starts one mid-conversation
        url = f"{self.base_url}/conversations/{conversation}/tracker"
        async with self._http().get(url, params=self._params(include_events="APPLIED")) as response:
            if response.status != 200:
                raise _RasaAnswer(f"rasa http {response.status} on tracker")
            state = await response.json()
        if not self._needs_new_session(state.get("events") or []):
            return
        events = self.session_start_events(state.get("slots") or {})
        async with self._http().post(f"{url}/events", params=self._params(), json=events) as response:
            if response.status != 200:
                raise _RasaAnswer(f"rasa http {response.status} on session start")
            await response.read()

    def _needs_new_session(self, events: List[Dict[str, Any]]) -> bool:
        users = [e for e in events if e.get("event") == "user"]
        if not users:
            return True  # a new conversation (the GET did not persist its session start)
        age_minutes = (time.time() - float(users[-1].get("timestamp") or 0)) / 60
        return age_minutes > self._expiry_minutes

    def session_start_events(self, slots: Dict[str, Any]) -> List[Dict[str, Any]]:
        carried = {name: value for name, value in slots.items()
                   if self._carry_over and value is not None and name not in NOT_CARRIED}
        carried.update(self._settings_slots)
        return [
            {"event": "action", "name": "action_session_start"},
            {"event": "session_started"},
            *({"event": "slot", "name": name, "value": value} for name, value in carried.items()),
            {"event": "action", "name": "action_listen"},
        ]


class _RasaAnswer(Exception):
    """Rasa answered, but not with success (already phrased for the job's record)."""
