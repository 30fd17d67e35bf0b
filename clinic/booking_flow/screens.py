"""The booking Flow's screens, answered from the live calendar (no Rasa, no WhatsApp here).

SERVICE → PRACTITIONER ("anyone" or who does it) → DATE (a date picker whose selectable
days are exactly the days with a free slot) → TIME (that day's free times) → DETAILS (name
and date of birth, first-time patients only) → CONFIRM, whose footer completes the Flow:
WhatsApp then sends the answers to the chat (``nfm_reply``) and the assistant books them
through the chat form's own booking action. Every text comes in the patient's language
(the flow token's), from content/booking_flow.yml.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional
from zoneinfo import ZoneInfo

from clinic.booking_flow.tokens import FlowGrant
from clinic.privacy import contact_key
from clinic.scheduling import formatting
from clinic.scheduling.answers import InvalidBirthDate, InvalidName, clean_name, parse_birth_date
from clinic.scheduling.backend import SchedulingBackend
from clinic.scheduling.model import NotFound, Slot, SlotQuery
from clinic.scheduling.translations import location_name, service_name
from clinic.yaml_files import load_yaml_file

ANYONE = "any"  # the chat form's "anyone" (actions/appointments/common.py)
LANGUAGES = ("en", "ru", "zh")
TEXTS_FILE = Path(__file__).resolve().parents[2] / "content" / "booking_flow.yml"
FLOW_JSON_FILE = Path(__file__).resolve().parent / "flow.json"
# How far ahead the date picker reaches.
HORIZON_DAYS = 28
TIMES_MAX = 100  # one day's free times (a dropdown holds 200)


class BookingFlowError(ValueError):
    """A request the screens cannot answer (unknown screen, missing field): HTTP 400."""


_texts: Optional[Dict[str, Dict[str, str]]] = None


def texts(language: str) -> Dict[str, str]:
    """The Flow's texts in ``language`` (English for a language we don't write in)."""
    global _texts
    if _texts is None:
        loaded = load_yaml_file(TEXTS_FILE, BookingFlowError, "booking Flow texts")
        _texts = {lang: {k: str(v) for k, v in (loaded.get(lang) or {}).items()} for lang in LANGUAGES}
    return _texts[language if language in LANGUAGES else "en"]


@dataclasses.dataclass
class BookingFlowScreens:
    backend: SchedulingBackend
    timezone: ZoneInfo
    pseudonym_key: bytes
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)

    # The entry points -----------------------------------------------------------------------

    def answer(self, action: str, screen: Optional[str], data: Mapping[str, Any],
               grant: FlowGrant) -> Dict[str, Any]:
        """``(screen, data)`` of the next screen for a request (INIT, BACK, data_exchange)."""
        language = grant.language
        if action == "INIT" or (action == "BACK" and screen in (None, "SERVICE", "PRACTITIONER")):
            return self.service_screen(language)
        if action == "BACK":  # WhatsApp asks again for the screen it is going back to
            return self._after(screen, data, grant)
        if action == "data_exchange":
            return self._after(screen, data, grant)
        raise BookingFlowError(f"unexpected action {action}")

    def _after(self, screen: Optional[str], data: Mapping[str, Any], grant: FlowGrant) -> Dict[str, Any]:
        language = grant.language
        if screen == "SERVICE":
            return self.practitioner_screen(language, _field(data, "service"))
        if screen == "PRACTITIONER":
            return self.date_screen(language, _field(data, "service"), _field(data, "practitioner"))
        if screen == "DATE":
            return self.time_screen(language, _field(data, "service"), _field(data, "practitioner"),
                                    _day(data))
        if screen == "TIME":
            return self.after_time(language, data, grant)
        if screen == "DETAILS":
            return self.after_details(language, data)
        raise BookingFlowError("unknown screen")

    # Screens --------------------------------------------------------------------------------

    def _base(self, language: str, heading: str, button: str = "continue") -> Dict[str, Any]:
        words = texts(language)
        return {"title": words["title"], "heading": heading, "button": words[button]}

    def service_screen(self, language: str) -> Dict[str, Any]:
        words = texts(language)
        services = [{"id": s.id, "title": service_name(s, language)[:30]} for s in self.backend.services()]
        return _screen("SERVICE", {**self._base(language, words["service_heading"]),
                                   "label": words["service_label"], "services": services})

    def practitioner_screen(self, language: str, service_id: str, error: str = "") -> Dict[str, Any]:
        words = texts(language)
        try:
            performers = self.backend.practitioners(service_id)
        except NotFound as exc:
            raise BookingFlowError("unknown service") from exc
        options = [{"id": ANYONE, "title": words["anyone"]}]
        options += [{"id": p.id, "title": p.name[:30]} for p in performers]
        data = {**self._base(language, words["practitioner_heading"]), "label": words["practitioner_label"],
                "service": service_id, "practitioners": options}
        if error:
            data["error_message"] = error
        return _screen("PRACTITIONER", data)

    def free_days(self, service_id: str, practitioner: str) -> List[dt.date]:
        """The days, in the clinic's time zone, that have at least one free slot."""
        today = self.clock().astimezone(self.timezone).date()
        days = []
        for offset in range(HORIZON_DAYS + 1):
            day = today + dt.timedelta(days=offset)
            if self._slots(service_id, practitioner, day, limit=1):
                days.append(day)
        return days

    def date_screen(self, language: str, service_id: str, practitioner: str,
                    error: str = "") -> Dict[str, Any]:
        words = texts(language)
        days = self.free_days(service_id, practitioner)
        if not days:
            return self.practitioner_screen(language, service_id, error=words["no_days"])
        free = set(days)
        unavailable = [str(days[0] + dt.timedelta(days=i)) for i in range((days[-1] - days[0]).days + 1)
                       if days[0] + dt.timedelta(days=i) not in free]
        data = {**self._base(language, words["date_heading"]), "label": words["date_label"],
                "service": service_id, "practitioner": practitioner,
                "min_date": str(days[0]), "max_date": str(days[-1]), "unavailable_dates": unavailable}
        if error:
            data["error_message"] = error
        return _screen("DATE", data)

    def time_screen(self, language: str, service_id: str, practitioner: str, day: dt.date,
                    error: str = "") -> Dict[str, Any]:
        words = texts(language)
        slots = self._slots(service_id, practitioner, day, limit=TIMES_MAX)
        if not slots:
            return self.date_screen(language, service_id, practitioner, error=words["day_full"])
        times = [{"id": slot.id, "title": self._time_title(slot, language)} for slot in slots]
        data = {**self._base(language, words["time_heading"].format(
                    day=formatting.long_day(day, language=language))),
                "label": words["time_label"], "service": service_id, "practitioner": practitioner,
                "day": str(day), "times": times}
        if error:
            data["error_message"] = error
        return _screen("TIME", data)

    def after_time(self, language: str, data: Mapping[str, Any], grant: FlowGrant) -> Dict[str, Any]:
        service_id, practitioner, day = _field(data, "service"), _field(data, "practitioner"), _day(data)
        slot = self._free_slot(service_id, practitioner, day, _field(data, "slot"))
        if slot is None:
            return self.time_screen(language, service_id, practitioner, day,
                                    error=texts(language)["time_taken"])
        known = self.backend.find_patient(
            contact_key(grant.conversation_id, grant.channel, self.pseudonym_key)) is not None
        if known:
            return self.confirm_screen(language, service_id, practitioner, slot)
        words = texts(language)
        today = self.clock().astimezone(self.timezone).date()
        return _screen("DETAILS", {**self._base(language, words["details_heading"]),
                                   "name_label": words["name_label"], "birth_label": words["birth_label"],
                                   "max_birth_date": str(today), "service": service_id,
                                   "practitioner": practitioner, "day": str(day), "slot": slot.id})

    def after_details(self, language: str, data: Mapping[str, Any]) -> Dict[str, Any]:
        words = texts(language)
        service_id, practitioner, day = _field(data, "service"), _field(data, "practitioner"), _day(data)
        slot = self._free_slot(service_id, practitioner, day, _field(data, "slot"))
        if slot is None:
            return self.time_screen(language, service_id, practitioner, day, error=words["time_taken"])
        error = ""
        try:
            name = clean_name(str(data.get("name") or ""))
        except InvalidName:
            error = words["name_invalid"]
        try:
            born = parse_birth_date(str(data.get("birth_date") or ""),
                                    self.clock().astimezone(self.timezone).date())
        except InvalidBirthDate:
            error = error or words["birth_invalid"]
        if error:
            today = self.clock().astimezone(self.timezone).date()
            return _screen("DETAILS", {**self._base(language, words["details_heading"]),
                                       "name_label": words["name_label"], "birth_label": words["birth_label"],
                                       "max_birth_date": str(today), "service": service_id,
                                       "practitioner": practitioner, "day": str(day), "slot": slot.id,
                                       "error_message": error})
        return self.confirm_screen(language, service_id, practitioner, slot, name, born.isoformat())

    def confirm_screen(self, language: str, service_id: str, practitioner: str, slot: Slot,
                       name: str = "", birth_date: str = "") -> Dict[str, Any]:
        words = texts(language)
        service = self.backend.service(service_id)
        summary = words["confirm_summary"].format(
            service=service_name(service, language), practitioner=slot.practitioner.name,
            when=formatting.long_when(slot.start, self.timezone, language=language),
            location=location_name(slot.location, language))
        day = slot.start.astimezone(self.timezone).date()
        return _screen("CONFIRM", {**self._base(language, words["confirm_heading"], button="book"),
                                   "summary": summary, "service": service_id, "practitioner": practitioner,
                                   "day": str(day), "slot": slot.id, "name": name, "birth_date": birth_date})

    # The calendar ---------------------------------------------------------------------------

    def _slots(self, service_id: str, practitioner: str, day: dt.date, limit: int) -> List[Slot]:
        start = dt.datetime.combine(day, dt.time(0), self.timezone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.timezone)
        query = SlotQuery(service_id=service_id, earliest=start,
                          latest=end - dt.timedelta(microseconds=1),
                          practitioner_id=None if practitioner == ANYONE else practitioner, limit=limit)
        try:
            return self.backend.search_slots(query)
        except NotFound as exc:
            raise BookingFlowError("unknown service or practitioner") from exc

    def _free_slot(self, service_id: str, practitioner: str, day: dt.date, slot_id: str) -> Optional[Slot]:
        return next((s for s in self._slots(service_id, practitioner, day, TIMES_MAX) if s.id == slot_id), None)

    def _time_title(self, slot: Slot, language: str) -> str:
        return f"{formatting.clock(slot.start, self.timezone, language=language)} · {slot.practitioner.name}"[:30]


def _screen(screen: str, data: Dict[str, Any]) -> Dict[str, Any]:
    return {"screen": screen, "data": data}


def _field(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > 200:
        raise BookingFlowError(f"{name} is missing")
    return value


def _day(data: Mapping[str, Any]) -> dt.date:
    value = _field(data, "day")
    try:
        # Flows ≥ 5.0 send "YYYY-MM-DD"; older ones a timestamp in milliseconds.
        if value.isdigit():
            return dt.datetime.fromtimestamp(int(value) / 1000, dt.timezone.utc).date()
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise BookingFlowError("day is not a date") from exc
