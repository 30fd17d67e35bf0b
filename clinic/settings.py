"""Clinic settings: one YAML file (``content/clinic.yml``) overridable by environment variables.

Why both: the file documents every setting next to a demo value, while a deployment sets
per-site values (or secrets) through the environment without editing a tracked file.
Errors name the offending key and the file, so a clinic admin can fix them without reading code.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = PROJECT_ROOT / "content" / "clinic.yml"
SETTINGS_FILE_ENV = "CLINIC_SETTINGS_FILE"

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LOOPBACK_URL = re.compile(r"^http://(localhost|127\.0\.0\.1)(:\d+)?(/|$)")
_HOURS_PART = re.compile(
    r"^(?P<d1>[a-z]{3})(?:-(?P<d2>[a-z]{3}))?\s+(?P<t1>\d{1,2}:\d{2})-(?P<t2>\d{1,2}:\d{2})$"
)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class OpeningHours:
    """Weekly hours such as ``mon-fri 08:00-18:00; sat 09:00-12:00``."""

    text: str
    # weekday (0 = Monday) -> list of (start, end) local times
    windows: Mapping[int, tuple[tuple[dt.time, dt.time], ...]]

    @classmethod
    def parse(cls, text: str, key: str = "hours") -> "OpeningHours":
        windows: dict[int, list[tuple[dt.time, dt.time]]] = {}
        for part in (p.strip().lower() for p in text.split(";")):
            if not part:
                continue
            match = _HOURS_PART.match(part)
            if not match:
                raise SettingsError(
                    f"{key}: cannot read {part!r}; write e.g. 'mon-fri 08:00-18:00; sat 09:00-12:00'"
                )
            first, last = match["d1"], match["d2"] or match["d1"]
            if first not in _DAYS or last not in _DAYS:
                raise SettingsError(f"{key}: days must be one of {', '.join(_DAYS)} (got {part!r})")
            start, end = _parse_time(match["t1"], key), _parse_time(match["t2"], key)
            if end <= start:
                raise SettingsError(f"{key}: closing time must be after opening time in {part!r}")
            lo, hi = _DAYS.index(first), _DAYS.index(last)
            if hi < lo:
                raise SettingsError(f"{key}: day range {first}-{last} runs backwards")
            for day in range(lo, hi + 1):
                windows.setdefault(day, []).append((start, end))
        if not windows:
            raise SettingsError(f"{key}: no opening hours given")
        return cls(text=text, windows={d: tuple(w) for d, w in windows.items()})

    def describe(self) -> str:
        """Patient-facing form: ``Mon–Fri 08:00–18:00, Sat 09:00–12:00``."""
        parts = []
        for part in (p.strip() for p in self.text.split(";") if p.strip()):
            days, times = part.split(None, 1)
            days = "–".join(d.capitalize() for d in days.lower().split("-"))
            parts.append(f"{days} {times.replace('-', '–')}")
        return ", ".join(parts)

    def is_open(self, moment: dt.datetime) -> bool:
        """Whether ``moment`` (already in the clinic's time zone) falls inside the hours."""
        now = moment.time()
        return any(start <= now < end for start, end in self.windows.get(moment.weekday(), ()))


def _parse_time(value: str, key: str) -> dt.time:
    hours, minutes = (int(x) for x in value.split(":"))
    if hours > 23 or minutes > 59:
        raise SettingsError(f"{key}: {value!r} is not a valid time")
    return dt.time(hours, minutes)


@dataclasses.dataclass(frozen=True)
class ClinicSettings:
    clinic_name: str
    assistant_name: str
    emergency_number: str
    crisis_line: str
    reception_phone: str
    reception_hours: OpeningHours
    nurse_line_hours: OpeningHours
    timezone: ZoneInfo
    portal_url: str
    pharmacy_hint: str
    # Proactive messages (clinic.reminders): hours before an appointment, and the local
    # hours in which nothing is sent.
    reminder_offsets_hours: tuple[float, ...] = (24.0, 2.0)
    quiet_hours: tuple[dt.time, dt.time] = (dt.time(21, 0), dt.time(8, 0))
    followup_delay_hours: float = 3.0  # after a visit is fulfilled; 0 = no follow-up
    portal_token_hours: float = 24.0  # how long a portal link works (clinic.portal)
    # WhatsApp voice calls (issue 19): whether staff may call patients and patients the clinic
    # (``calling``: on/off), and whether WhatsApp shows the call button in the chat
    # (``call_icon_visibility``: DEFAULT / DISABLE_ALL). Calling hours are each team's hours.
    calling: bool = True
    call_icon_visibility: str = "DEFAULT"
    # How long each kind of data is kept (``retention:``; clinic/retention.py purges).
    retention: "RetentionSettings" = dataclasses.field(default_factory=lambda: RetentionSettings())

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.timezone)

    def nurse_line_open(self, moment: Optional[dt.datetime] = None) -> bool:
        moment = (moment or self.now()).astimezone(self.timezone)
        return self.nurse_line_hours.is_open(moment)

    def as_slots(self) -> dict[str, str]:
        """The values responses may quote (``{clinic_name}`` etc. in the domain)."""
        return {
            "clinic_name": self.clinic_name,
            "assistant_name": self.assistant_name,
            "emergency_number": self.emergency_number,
            "crisis_line": self.crisis_line or self.emergency_number,
            "reception_phone": self.reception_phone,
            "reception_hours": self.reception_hours.describe(),
            "nurse_line_hours": self.nurse_line_hours.describe(),
            "portal_url": self.portal_url,
            "pharmacy_hint": self.pharmacy_hint,
        }


# setting -> (environment variable, required)
_FIELDS: dict[str, tuple[str, bool]] = {
    "clinic_name": ("CLINIC_NAME", True),
    "assistant_name": ("CLINIC_ASSISTANT_NAME", True),
    "emergency_number": ("CLINIC_EMERGENCY_NUMBER", True),
    "crisis_line": ("CLINIC_CRISIS_LINE", False),
    "reception_phone": ("CLINIC_RECEPTION_PHONE", True),
    "reception_hours": ("CLINIC_RECEPTION_HOURS", True),
    "nurse_line_hours": ("CLINIC_NURSE_LINE_HOURS", True),
    "timezone": ("CLINIC_TIMEZONE", True),
    "portal_url": ("CLINIC_PORTAL_URL", True),
    "pharmacy_hint": ("CLINIC_PHARMACY_HINT", False),
    "reminder_offsets_hours": ("CLINIC_REMINDER_OFFSETS_HOURS", False),
    "quiet_hours": ("CLINIC_QUIET_HOURS", False),
    "followup_delay_hours": ("CLINIC_FOLLOWUP_DELAY_HOURS", False),
    "portal_token_hours": ("CLINIC_PORTAL_TOKEN_HOURS", False),
    "calling": ("CLINIC_CALLING", False),
    "call_icon_visibility": ("CLINIC_CALL_ICON_VISIBILITY", False),
}
CALL_ICON_VISIBILITIES = ("DEFAULT", "DISABLE_ALL")


def load_settings(
    path: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None
) -> ClinicSettings:
    """Read the settings file, apply environment overrides and validate every value."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get(SETTINGS_FILE_ENV) or DEFAULT_SETTINGS_FILE)
    raw = _read_yaml(path)
    unknown = sorted(set(raw) - set(_FIELDS) - {"retention"})
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)}")

    values: dict[str, str] = {}
    for name, (env_name, required) in _FIELDS.items():
        value = environ.get(env_name, raw.get(name))
        value = "" if value is None else str(value).strip()
        if required and not value:
            raise SettingsError(f"{path}: '{name}' is required (or set {env_name})")
        values[name] = value

    if not (values["portal_url"].startswith("https://") or _LOOPBACK_URL.match(values["portal_url"])):
        # Portal links carry access tokens: never over plain HTTP (except to this machine,
        # for the embedded demo portal).
        raise SettingsError(f"{path}: 'portal_url' must start with https:// "
                            "(http:// only for localhost / 127.0.0.1)")
    try:
        timezone = ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"{path}: unknown time zone {values['timezone']!r}") from exc

    return ClinicSettings(
        clinic_name=values["clinic_name"],
        assistant_name=values["assistant_name"],
        emergency_number=values["emergency_number"],
        crisis_line=values["crisis_line"],
        reception_phone=values["reception_phone"],
        reception_hours=OpeningHours.parse(values["reception_hours"], "reception_hours"),
        nurse_line_hours=OpeningHours.parse(values["nurse_line_hours"], "nurse_line_hours"),
        timezone=timezone,
        portal_url=values["portal_url"].rstrip("/"),
        pharmacy_hint=values["pharmacy_hint"],
        reminder_offsets_hours=_parse_offsets(values["reminder_offsets_hours"] or "24,2", path),
        quiet_hours=_parse_quiet_hours(values["quiet_hours"] or "21:00-08:00", path),
        followup_delay_hours=_parse_hours(values["followup_delay_hours"] or "3",
                                          "followup_delay_hours", path),
        portal_token_hours=_portal_token_hours(values["portal_token_hours"] or "24", path),
        retention=RetentionSettings.parse(raw.get("retention"), environ, path),
        calling=_on_off(values["calling"] or "on", "calling", path),
        call_icon_visibility=_call_icon(values["call_icon_visibility"] or "DEFAULT", path),
    )


def _on_off(value: str, name: str, path: Path) -> bool:
    word = value.lower()
    if word in ("on", "true", "yes", "1"):
        return True
    if word in ("off", "false", "no", "0"):
        return False
    raise SettingsError(f"{path}: '{name}' must be on or off")


def _call_icon(value: str, path: Path) -> str:
    if value.upper() not in CALL_ICON_VISIBILITIES:
        raise SettingsError(f"{path}: 'call_icon_visibility' must be one of {', '.join(CALL_ICON_VISIBILITIES)}")
    return value.upper()


# ── retention (issue 18) ─────────────────────────────────────────────────────────────────
_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[hdwy])$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7, "y": 24 * 365}
FOREVER = "forever"

# kind -> default period. The reasons are in content/clinic.yml and docs/data-retention.md.
RETENTION_DEFAULTS: dict[str, str] = {
    "conversation_text": "90d",
    "inbox_rows": "30d",
    "journal_segments": "14d",
    "delivery_statuses": "30d",
    "staff_inbox": "90d",
    "audit_log": "6y",
    "uploaded_files": "30d",
    "media": "30d",
    "survey_comments": "180d",
}


def parse_duration(value: Any, key: str, path: Path) -> Optional[dt.timedelta]:
    """``90d``, ``36h``, ``2w``, ``6y`` (365 days) -> a timedelta; ``forever`` -> None."""
    text = str(value).strip().lower()
    if text == FOREVER:
        return None
    match = _DURATION.match(text)
    if not match:
        raise SettingsError(f"{path}: '{key}' must be a period such as 90d, 36h, 2w, 6y "
                            f"or 'forever' (got {value!r})")
    hours = float(match["n"]) * _UNIT_HOURS[match["unit"]]
    if hours <= 0:
        raise SettingsError(f"{path}: '{key}' must be longer than 0 (got {value!r})")
    return dt.timedelta(hours=hours)


@dataclasses.dataclass(frozen=True)
class RetentionSettings:
    """How long each kind of data is kept before the purge (clinic/retention.py) deletes it;
    None keeps it for ever. Environment: ``CLINIC_RETENTION_<KIND>`` (e.g.
    ``CLINIC_RETENTION_CONVERSATION_TEXT=30d``), ``CLINIC_RETENTION_PURGE_EVERY``,
    ``CLINIC_RETENTION_BATCH_SIZE``."""

    conversation_text: Optional[dt.timedelta] = dt.timedelta(days=90)
    inbox_rows: Optional[dt.timedelta] = dt.timedelta(days=30)
    journal_segments: Optional[dt.timedelta] = dt.timedelta(days=14)
    delivery_statuses: Optional[dt.timedelta] = dt.timedelta(days=30)
    staff_inbox: Optional[dt.timedelta] = dt.timedelta(days=90)
    audit_log: Optional[dt.timedelta] = dt.timedelta(days=6 * 365)
    uploaded_files: Optional[dt.timedelta] = dt.timedelta(days=30)
    media: Optional[dt.timedelta] = dt.timedelta(days=30)
    survey_comments: Optional[dt.timedelta] = dt.timedelta(days=180)
    purge_every: dt.timedelta = dt.timedelta(hours=1)  # how often the scheduler purges
    batch_size: int = 500  # rows per transaction: the assistant keeps running meanwhile

    def periods(self) -> dict[str, Optional[dt.timedelta]]:
        return {kind: getattr(self, kind) for kind in RETENTION_DEFAULTS}

    @classmethod
    def parse(cls, raw: Any, environ: Mapping[str, str], path: Path) -> "RetentionSettings":
        raw = {} if raw is None else raw
        if not isinstance(raw, dict):
            raise SettingsError(f"{path}: 'retention' must be a mapping of kind: period")
        known = set(RETENTION_DEFAULTS) | {"purge_every", "batch_size"}
        unknown = sorted(str(k) for k in set(raw) - known)
        if unknown:
            raise SettingsError(f"{path}: unknown setting(s) retention.{', retention.'.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")

        def value(name: str, default: str) -> str:
            found = environ.get(f"CLINIC_RETENTION_{name.upper()}", raw.get(name))
            return default if found is None or str(found).strip() == "" else str(found)

        periods = {kind: parse_duration(value(kind, default), f"retention.{kind}", path)
                   for kind, default in RETENTION_DEFAULTS.items()}
        audit = periods["audit_log"]
        if audit is not None and audit < dt.timedelta(days=365):
            # The audit log is the evidence of who saw what: never a short-lived store.
            raise SettingsError(f"{path}: 'retention.audit_log' must be at least 1y "
                                f"(HIPAA asks 6y; got {value('audit_log', '')!r})")
        inbox = periods["inbox_rows"]
        if inbox is not None and inbox < dt.timedelta(days=7):
            # A message id is what stops a redelivered webhook being answered twice, and Meta
            # retries an unacknowledged webhook for up to 7 days.
            raise SettingsError(f"{path}: 'retention.inbox_rows' must be at least 7d "
                                f"(Meta redelivers webhooks for up to 7 days; got {value('inbox_rows', '')!r})")
        every = parse_duration(value("purge_every", "1h"), "retention.purge_every", path)
        if every is None or every < dt.timedelta(minutes=1):
            raise SettingsError(f"{path}: 'retention.purge_every' must be a period of at least 1 minute, e.g. 1h")
        batch_text = value("batch_size", "500")
        try:
            batch = int(batch_text)
        except ValueError:
            raise SettingsError(f"{path}: 'retention.batch_size' must be a whole number (got {batch_text!r})") from None
        if not 1 <= batch <= 100_000:
            raise SettingsError(f"{path}: 'retention.batch_size' must be between 1 and 100000 (got {batch})")
        return cls(**periods, purge_every=every, batch_size=batch)


def _parse_hours(value: str, key: str, path: Path) -> float:
    try:
        hours = float(value)
    except ValueError:
        raise SettingsError(f"{path}: '{key}' must be a number of hours (got {value!r})") from None
    if not 0 <= hours <= 24 * 60:
        raise SettingsError(f"{path}: '{key}' must be between 0 and 1440 hours (got {value!r})")
    return hours


def _portal_token_hours(value: str, path: Path) -> float:
    hours = _parse_hours(value, "portal_token_hours", path)
    if not 0 < hours <= 24 * 14:
        raise SettingsError(f"{path}: 'portal_token_hours' must be more than 0 and at most 336 (got {value!r})")
    return hours


def _parse_offsets(value: str, path: Path) -> tuple[float, ...]:
    """``"24,2"`` -> (24.0, 2.0): hours before an appointment, largest first, no repeats."""
    offsets = {_parse_hours(p.strip(), "reminder_offsets_hours", path)
               for p in value.split(",") if p.strip()}
    if not offsets or 0 in offsets:
        raise SettingsError(
            f"{path}: 'reminder_offsets_hours' needs hours before the appointment, e.g. '24,2'"
        )
    return tuple(sorted(offsets, reverse=True))


def _parse_quiet_hours(value: str, path: Path) -> tuple[dt.time, dt.time]:
    """``"21:00-08:00"``: no proactive message from 21:00 to 08:00 (may cross midnight)."""
    parts = value.replace(" ", "").split("-")
    if len(parts) != 2 or not all(re.fullmatch(r"\d{1,2}:\d{2}", p) for p in parts):
        raise SettingsError(f"{path}: 'quiet_hours' must look like '21:00-08:00' (got {value!r})")
    start, end = (_parse_time(p, "quiet_hours") for p in parts)
    if start == end:
        raise SettingsError(f"{path}: 'quiet_hours' start and end must differ")
    return start, end


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SettingsError(f"settings file not found: {path}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected key: value pairs at the top level")
    return data
