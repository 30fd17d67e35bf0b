"""When proactive messages may go out: offsets, quiet hours, lifetimes.

Quiet hours (default 21:00-08:00 clinic time, ``quiet_hours`` in content/clinic.yml):
nothing is sent inside them. A due time that falls inside moves:

* appointment reminders move **earlier**, to one hour before quiet hours begin (20:00 the
  evening before, or the same evening): a reminder that arrives after the patient has left
  home is useless. If that earlier time has already passed (booked late at night), or
  lands within an hour of the previous reminder for the same visit, the reminder is
  skipped with a recorded reason instead;
* follow-ups and recalls move **later**, to the end of quiet hours (08:00): they are not
  time-critical.

The scheduler also sends nothing while it is inside quiet hours (e.g. Rasa was down all
evening): the job waits, and is skipped as ``expired`` if its moment has passed by then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional, Tuple
from zoneinfo import ZoneInfo

from clinic.settings import ClinicSettings

EARLY_MARGIN = dt.timedelta(hours=1)  # a reminder moved earlier goes this long before quiet hours
MIN_GAP = dt.timedelta(hours=1)  # two reminders for one visit closer than this: keep the first
FOLLOWUP_LIFETIME = dt.timedelta(days=3)
RECALL_LIFETIME = dt.timedelta(days=30)
RECALL_SEND_TIME = dt.time(10, 0)  # local time a recall goes out on its due date


@dataclasses.dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time
    timezone: ZoneInfo

    def contains(self, moment: dt.datetime) -> bool:
        local = moment.astimezone(self.timezone).time()
        if self.start < self.end:  # e.g. 13:00-14:00
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight

    def _at(self, day: dt.date, time: dt.time) -> dt.datetime:
        # fold=0 and zoneinfo resolve DST gaps/overlaps; compare in UTC afterwards.
        return dt.datetime.combine(day, time, tzinfo=self.timezone).astimezone(dt.timezone.utc)

    def began(self, moment: dt.datetime) -> dt.datetime:
        """Start of the quiet period containing ``moment`` (which must be inside one)."""
        local = moment.astimezone(self.timezone)
        begin = self._at(local.date(), self.start)
        return begin if begin <= moment else self._at(local.date() - dt.timedelta(days=1), self.start)

    def ends(self, moment: dt.datetime) -> dt.datetime:
        """End of the quiet period containing ``moment`` (which must be inside one)."""
        local = moment.astimezone(self.timezone)
        end = self._at(local.date(), self.end)
        return end if end > moment else self._at(local.date() + dt.timedelta(days=1), self.end)

    def earlier(self, moment: dt.datetime) -> dt.datetime:
        return self.began(moment) - EARLY_MARGIN if self.contains(moment) else moment

    def later(self, moment: dt.datetime) -> dt.datetime:
        return self.ends(moment) if self.contains(moment) else moment


@dataclasses.dataclass(frozen=True)
class ReminderPolicy:
    offsets_hours: Tuple[float, ...]
    quiet: QuietHours
    followup_delay: Optional[dt.timedelta]  # None: no follow-ups

    @classmethod
    def from_settings(cls, settings: ClinicSettings) -> "ReminderPolicy":
        start, end = settings.quiet_hours
        delay = settings.followup_delay_hours
        return cls(
            offsets_hours=tuple(settings.reminder_offsets_hours),
            quiet=QuietHours(start, end, settings.timezone),
            followup_delay=dt.timedelta(hours=delay) if delay > 0 else None,
        )

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.quiet.timezone)
