"""Logs (issue 14): one JSON object per line on stderr (clinic/logs.py), the same for Rasa and
the action server through logging.yml; phone-number-like digit runs masked as a last line of
defence. The end-to-end scan of real processes' logs is in test_whatsapp_ingress_e2e.py."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest
import structlog

from clinic import logs

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def configured(monkeypatch, process: str = "test-process", **options) -> Iterator[io.StringIO]:
    """configure_logging with stderr captured; the root logger and structlog put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        logs.configure_logging(process, **options)
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> List[str]:
    return [line for line in stream.getvalue().splitlines() if line.strip()]


def test_a_stdlib_record_is_one_json_line_with_the_fields(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    with configured(monkeypatch, "gateway") as stream:
        logging.getLogger("gateway.relay").info("turn %s took %d ms", "abc", 12, extra={"attempt": 2})
    [line] = lines(stream)
    record = json.loads(line)
    assert record["event"] == "turn abc took 12 ms"
    assert record["level"] == "info"
    assert record["logger"] == "gateway.relay"
    assert record["process"] == "gateway"
    assert record["attempt"] == 2
    assert record["ts"].endswith("Z") and record["ts"][:4].isdigit() and "T" in record["ts"]
    assert list(record)[:5] == ["ts", "level", "logger", "process", "event"]


def test_an_exception_is_one_line_with_the_traceback_in_a_field(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    with configured(monkeypatch) as stream:
        try:
            raise ValueError("the kind of failure")
        except ValueError:
            logging.getLogger("clinic.x").exception("send failed")
    [line] = lines(stream)
    record = json.loads(line)
    assert record["level"] == "error" and record["event"] == "send failed"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: the kind of failure" in record["exception"]


def test_phone_numbers_are_masked_in_the_event_and_the_fields(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    with configured(monkeypatch) as stream:
        logging.getLogger("clinic.x").warning(
            "could not reach 15550101234 (or +44 7700 900123) on 2026-12-06 after 0.123456789 s",
            extra={"contact": "15550109876", "nested": {"to": ["+15550104321"]}, "wamid": "wamid.HBgL15550101234"})
    record = json.loads(lines(stream)[0])
    text = json.dumps(record)
    for number in ("15550101234", "7700 900123", "15550109876", "15550104321"):
        assert number not in record["event"] + record["contact"] + json.dumps(record["nested"])
    assert record["event"] == (f"could not reach {logs.NUMBER_PLACEHOLDER} (or {logs.NUMBER_PLACEHOLDER}) "
                               "on 2026-12-06 after 0.123456789 s")
    assert record["contact"] == logs.NUMBER_PLACEHOLDER
    assert record["nested"] == {"to": [logs.NUMBER_PLACEHOLDER]}
    assert record["wamid"] == "wamid.HBgL15550101234"  # part of an id, not a number
    assert record["ts"] in text  # the timestamp's digits are left alone


def test_log_format_text_gives_readable_lines(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "text")
    with configured(monkeypatch, "inbox") as stream:
        logging.getLogger("inbox.app").warning("ticket %d reopened by 15550101234", 7)
        try:
            raise KeyError("k")
        except KeyError:
            logging.getLogger("inbox.app").exception("failed")
    output = stream.getvalue()
    first = output.splitlines()[0]
    with pytest.raises(ValueError):
        json.loads(first)
    assert "ticket 7 reopened by [number removed]" in first and "[inbox.app]" in first
    assert "warning" in first and "process=inbox" in first
    assert "Traceback (most recent call last):" in output  # a readable traceback, on its own lines


def test_log_level_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    with configured(monkeypatch) as stream:
        logging.getLogger("clinic.x").info("not shown")
        logging.getLogger("clinic.x").warning("shown")
    assert [json.loads(line)["event"] for line in lines(stream)] == ["shown"]
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    with configured(monkeypatch) as stream:
        logging.getLogger("clinic.x").debug("debug shown")
    assert [json.loads(line)["event"] for line in lines(stream)] == ["debug shown"]


def test_warnings_and_structlog_loggers_end_in_the_same_lines(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    with configured(monkeypatch, "reminders") as stream:
        with shown_warnings():
            warnings.warn("something odd", UserWarning, stacklevel=1)
        structlog.get_logger("clinic.reminders").info("tick", due=3)
    records = [json.loads(line) for line in lines(stream)]
    assert records[0]["logger"] == "py.warnings" and "something odd" in records[0]["event"]
    assert {k: records[1][k] for k in ("event", "logger", "process", "due", "level")} == {
        "event": "tick", "logger": "clinic.reminders", "process": "reminders", "due": 3, "level": "info"}


@contextmanager
def shown_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        yield


def test_rasas_own_json_events_become_fields_of_the_line():
    """Rasa renders its structlog events to a JSON string before Python's logging sees them."""
    formatter = logs.formatter("rasa", fmt="json")
    rasa_line = json.dumps({"event": "processor.actions.log", "action_name": "utter_greet", "level": "info"})
    record = logging.LogRecord("rasa.core.processor", logging.INFO, __file__, 1, rasa_line, (), None)
    line = json.loads(formatter.format(record))
    assert line["event"] == "processor.actions.log" and line["action_name"] == "utter_greet"
    assert line["process"] == "rasa" and line["logger"] == "rasa.core.processor"


def test_configure_logging_is_only_called_by_entry_points():
    """Never on import: tests keep pytest's log capture (caplog)."""
    callers = sorted(str(path.relative_to(ROOT)) for package in
                     ("gateway", "inbox", "clinic", "clinic_api", "simulator", "connectors", "actions", "whatsapp")
                     for path in (ROOT / package).rglob("*.py")
                     if "configure_logging(" in path.read_text(encoding="utf-8") and path.name != "logs.py")
    assert callers == sorted(["clinic/broadcasts/__main__.py", "clinic/reminders/scheduler.py",
                              "clinic/retention.py", "clinic/surveys/__main__.py", "clinic_api/__main__.py", "gateway/server.py",
                              "inbox/__main__.py", "simulator/__main__.py"])
    leftovers = [str(path.relative_to(ROOT)) for package in
                 ("gateway", "inbox", "clinic", "clinic_api", "simulator")
                 for path in (ROOT / package).rglob("*.py") if "logging.basicConfig" in path.read_text(encoding="utf-8")]
    assert leftovers == []


# ── Rasa and the action server: logging.yml ───────────────────────────────────────────────
RASA_RUN = """
import rasa.utils.common, rasa.utils.io
from sanic import Sanic
# What `rasa run --logging-config-file logging.yml --enable-api` does, in its order:
rasa.utils.common.configure_logging_and_warnings(None, "logging.yml")  # dictConfig(logging.yml)
rasa.utils.io.configure_colored_logging("INFO")     # coloredlogs.install: replaces a stream handler
Sanic("rasa_server")                                # Sanic's own dictConfig (the API app)
rasa.utils.common.update_sanic_log_level()          # Sanic's loggers stop propagating
"""
ACTION_SERVER = """
import logging, sys
from rasa_sdk import utils
sys.argv[0] = "site-packages/rasa_sdk/__main__.py"  # as `python -m rasa_sdk` has it
# What `python -m rasa_sdk --logging-config_file logging.yml` does, in its order:
utils.configure_colored_logging(logging.INFO)
utils.configure_file_logging(logging.getLogger("rasa_sdk"), None, logging.INFO, "logging.yml")
utils.update_sanic_log_level()
"""
LOG_SOME = """
import logging, warnings
logging.getLogger("rasa.core.run").info("through the root")
logging.getLogger("sanic.error").error("through sanic's logger")
logging.getLogger("rasa.core.run").info({"not": "a string"})
warnings.warn("a late warning", RuntimeWarning)
"""


@pytest.mark.parametrize("setup, process", [(RASA_RUN, "rasa"), (ACTION_SERVER, "actions")],
                         ids=["rasa run", "action server"])
def test_logging_yml_gives_json_lines_once_each(setup, process):
    result = subprocess.run([sys.executable, "-c", setup + LOG_SOME], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={**_env(), "LOG_LEVEL_LIBRARIES": "ERROR"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    events = [(r["logger"], r["event"]) for r in records]
    assert events[:3] == [("rasa.core.run", "through the root"), ("sanic.error", "through sanic's logger"),
                          ("rasa.core.run", "{'not': 'a string'}")]
    assert len(events) == 4 and events[3][0] == "py.warnings" and "a late warning" in events[3][1]
    assert {r["process"] for r in records} == {process}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "LOG_LEVEL")}
    return {**env, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false"}


def test_the_process_of_logging_yml_is_told_from_the_command_line():
    assert logs.process_from_command_line(["rasa", "run", "--model", "m"]) == "rasa"
    assert logs.process_from_command_line(["quiet_rasa.py", "run", "actions", "--port", "5055"]) == "actions"
    assert logs.process_from_command_line(["/x/site-packages/rasa_sdk/__main__.py", "--actions", "actions"]) == "actions"
