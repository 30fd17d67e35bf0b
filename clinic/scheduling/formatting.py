"""Patient-facing dates and times, always in the clinic's time zone.

Written out by hand rather than with ``strftime("%a")`` so the text does not depend on the
server's locale, and short where WhatsApp limits length: a list row title holds 24
characters, a reply button 20.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from clinic.scheduling.model import Appointment, Practitioner, Slot

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
ROW_TITLE_MAX = 24  # WhatsApp interactive list row title


def short_when(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``Tue 3 Mar 09:20`` (at most 16 characters)."""
    local = moment.astimezone(tz)
    return f"{DAYS[local.weekday()][:3]} {local.day} {MONTHS[local.month - 1][:3]} {local:%H:%M}"


def long_when(moment: dt.datetime, tz: ZoneInfo) -> str:
    """``Tuesday 3 March 2026 at 09:20``."""
    local = moment.astimezone(tz)
    return (f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]} {local.year} "
            f"at {local:%H:%M}")


def long_day(day: dt.date) -> str:
    """``Sunday 29 March``."""
    return f"{DAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"


def surname(practitioner: Practitioner) -> str:
    return practitioner.name.split()[-1] if practitioner.name.split() else practitioner.name


def slot_title(slot: Slot, tz: ZoneInfo, with_practitioner: bool) -> str:
    """A list row title: ``Tue 3 Mar 09:20`` or, when anyone may see the patient,
    ``Tue 3 Mar 09:20 Okafor`` (cut to fit 24 characters)."""
    title = short_when(slot.start, tz)
    if with_practitioner:
        title = f"{title} {surname(slot.practitioner)}"
    return title[:ROW_TITLE_MAX].rstrip()


def appointment_variables(appointment: Appointment, tz: ZoneInfo) -> dict:
    """The values the appointment responses quote (``{appointment_when}``...)."""
    return {
        "appointment_id": appointment.id,
        "appointment_when": long_when(appointment.start, tz),
        "appointment_service": appointment.service.name,
        "appointment_practitioner": appointment.practitioner.name,
        "appointment_location": appointment.location.name,
        "appointment_address": appointment.location.address,
        "appointment_preparation": appointment.service.preparation,
    }


def slot_variables(slot: Slot, service_name: str, tz: ZoneInfo) -> dict:
    """The same values for a slot the patient is about to confirm."""
    return {
        "appointment_when": long_when(slot.start, tz),
        "appointment_service": service_name,
        "appointment_practitioner": slot.practitioner.name,
        "appointment_location": slot.location.name,
        "appointment_address": slot.location.address,
    }
