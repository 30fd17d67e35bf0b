"""Clinic settings: file + environment, with clear errors."""

import datetime as dt
from pathlib import Path

import pytest

from clinic.settings import OpeningHours, SettingsError, load_settings


def write(tmp_path, text):
    path = tmp_path / "clinic.yml"
    path.write_text(text)
    return path


VALID = """
clinic_name: Test Clinic
assistant_name: Tess
emergency_number: "911"
crisis_line: "988"
reception_phone: "+00 555 0199"
reception_hours: "mon-fri 08:00-18:00; sat 09:00-12:00"
nurse_line_hours: "mon-fri 09:00-17:00"
timezone: America/New_York
portal_url: https://portal.test.example/
"""


def test_project_settings_file_loads():
    settings = load_settings(environ={})
    assert settings.clinic_name
    assert settings.emergency_number
    assert settings.portal_url.startswith("https://")


def test_file_values_and_environment_overrides(tmp_path):
    path = write(tmp_path, VALID)
    settings = load_settings(path, environ={"CLINIC_EMERGENCY_NUMBER": "999"})
    assert settings.clinic_name == "Test Clinic"
    assert settings.emergency_number == "999"  # environment wins over the file
    assert settings.portal_url == "https://portal.test.example"  # trailing slash dropped
    slots = settings.as_slots()
    assert slots["reception_hours"] == "Mon–Fri 08:00–18:00, Sat 09:00–12:00"
    assert slots["crisis_line"] == "988"


def test_settings_file_chosen_by_environment(tmp_path):
    path = write(tmp_path, VALID)
    assert load_settings(environ={"CLINIC_SETTINGS_FILE": str(path)}).assistant_name == "Tess"


def test_empty_crisis_line_falls_back_to_emergency_number(tmp_path):
    path = write(tmp_path, VALID.replace('crisis_line: "988"', 'crisis_line: ""'))
    assert load_settings(path, environ={}).as_slots()["crisis_line"] == "911"


@pytest.mark.parametrize(
    "change, message",
    [
        (("emergency_number: \"911\"", ""), "'emergency_number' is required"),
        (("portal_url: https://", "portal_url: http://"), "must start with https://"),
        (("America/New_York", "Mars/Olympus"), "unknown time zone"),
        (("mon-fri 09:00-17:00", "weekdays 9 to 5"), "nurse_line_hours: cannot read"),
        (("mon-fri 09:00-17:00", "mon-fri 17:00-09:00"), "closing time must be after"),
        (("mon-fri 09:00-17:00", "fri-mon 09:00-17:00"), "runs backwards"),
        (("clinic_name:", "clinic_nmae:"), "unknown setting(s) clinic_nmae"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path, change, message):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(path, environ={})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.yml", environ={})
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(write(tmp_path, "clinic_name: [unclosed"), environ={})
    with pytest.raises(SettingsError, match="key: value pairs"):
        load_settings(write(tmp_path, "- a list"), environ={})


def test_opening_hours():
    hours = OpeningHours.parse("mon-fri 08:00-18:00; sat 09:00-12:00")
    monday_9 = dt.datetime(2026, 11, 23, 9, 0)
    assert hours.is_open(monday_9)
    assert not hours.is_open(monday_9.replace(hour=18))  # closing time is exclusive
    assert hours.is_open(dt.datetime(2026, 11, 28, 11, 59))  # Saturday morning
    assert not hours.is_open(dt.datetime(2026, 11, 28, 12, 0))
    assert not hours.is_open(dt.datetime(2026, 11, 29, 10, 0))  # Sunday


def test_nurse_line_open_uses_clinic_time_zone(tmp_path):
    settings = load_settings(write(tmp_path, VALID), environ={})
    # 14:00 UTC on a Monday is 09:00 in New York (EST): the line has just opened.
    assert settings.nurse_line_open(dt.datetime(2026, 11, 23, 14, 0, tzinfo=dt.timezone.utc))
    assert not settings.nurse_line_open(dt.datetime(2026, 11, 23, 13, 59, tzinfo=dt.timezone.utc))


# ── retention (issue 18) ────────────────────────────────────────────────────────────────
def test_retention_periods_have_documented_defaults_and_parse(tmp_path):
    project = load_settings(environ={}).retention
    assert project.audit_log == dt.timedelta(days=6 * 365)
    assert project.conversation_text == dt.timedelta(days=90)
    assert project.purge_every == dt.timedelta(hours=1) and project.batch_size == 500
    # Every kind in the project's file carries a reason comment just above it.
    lines = (Path(__file__).resolve().parent.parent / "content" / "clinic.yml").read_text().splitlines()
    for kind in project.periods():
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{kind}:"))
        assert lines[at - 1].strip().startswith("#"), kind
    path = write(tmp_path, VALID + "retention:\n  inbox_rows: 8d\n  uploaded_files: forever\n  survey_comments: 2w\n")
    retention = load_settings(path, environ={"CLINIC_RETENTION_CONVERSATION_TEXT": "30d"}).retention
    assert retention.inbox_rows == dt.timedelta(days=8)
    assert retention.uploaded_files is None
    assert retention.survey_comments == dt.timedelta(days=14)
    assert retention.conversation_text == dt.timedelta(days=30)  # environment wins
    assert retention.journal_segments == dt.timedelta(days=14)  # default


@pytest.mark.parametrize("section, message", [
    ("retention:\n  inbox_rows: 30 days\n", "retention.inbox_rows"),
    ("retention:\n  inbox_rows: 0d\n", "retention.inbox_rows"),
    ("retention:\n  inbox_rows: 3d\n", "retention.inbox_rows' must be at least 7d"),
    ("retention:\n  audit_log: 30d\n", "retention.audit_log"),
    ("retention:\n  chat_logs: 30d\n", "retention.chat_logs"),
    ("retention:\n  batch_size: lots\n", "retention.batch_size"),
    ("retention:\n  purge_every: never\n", "retention.purge_every"),
    ("retention: 30d\n", "'retention' must be a mapping"),
])
def test_bad_retention_settings_name_the_key(tmp_path, section, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(write(tmp_path, VALID + section), environ={})
