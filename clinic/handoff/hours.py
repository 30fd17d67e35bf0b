"""When each team is staffed, and how long a patient may wait: the facts behind the
"who, how long, when" a patient is told after asking for a person.

Staffed hours come from the clinic settings (content/clinic.yml): the nurse team answers
during the nurse-line hours, billing & insurance and reception during reception hours.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Optional

from clinic.handoff.teams import Team
from clinic.settings import ClinicSettings, OpeningHours

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def team_hours(settings: ClinicSettings, team: Team) -> OpeningHours:
    return settings.nurse_line_hours if team is Team.NURSE else settings.reception_hours


def is_staffed(settings: ClinicSettings, team: Team, moment: Optional[dt.datetime] = None) -> bool:
    local = (moment or settings.now()).astimezone(settings.timezone)
    return team_hours(settings, team).is_open(local)


def next_opening(hours: OpeningHours, moment: dt.datetime) -> Optional[dt.datetime]:
    """The next start of a staffed window after ``moment`` (local, aware), within 8 days."""
    for offset in range(0, 8):
        day = (moment + dt.timedelta(days=offset)).date()
        for start, _end in sorted(hours.windows.get(day.weekday(), ())):
            candidate = dt.datetime.combine(day, start, tzinfo=moment.tzinfo)
            if candidate > moment:
                return candidate
    return None


def describe_opening(opening: dt.datetime, now: dt.datetime) -> str:
    """Patient-facing: ``today at 14:00``, ``tomorrow at 08:00``, ``Monday at 08:00``."""
    days = (opening.date() - now.date()).days
    clock = opening.strftime("%H:%M")
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    return f"{_WEEKDAYS[opening.weekday()]} at {clock}"


def describe_wait(minutes: int) -> str:
    """``about 5 minutes`` … ``about 2 hours``: rounded up, never falsely precise."""
    if minutes <= 60:
        return f"about {max(5, 5 * math.ceil(minutes / 5))} minutes"
    hours = math.ceil(minutes / 60)
    return f"about {hours} hours"
