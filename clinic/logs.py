"""Logs: one JSON object per line on stderr, for every long-running process (issue 14).

Every entry point calls ``configure_logging("gateway")`` (or "inbox", "clinic_api",
"reminders", "surveys", "broadcasts", "simulator") once, first thing in ``main``; never on
import, so tests keep pytest's own log capture. Python's logging, ours and the libraries'
(aiohttp, uvicorn, sqlalchemy, alembic…), is formatted by structlog's
``ProcessorFormatter``; a line looks like::

    {"event": "turn failed", "level": "warning", "logger": "gateway.relay",
     "process": "gateway", "ts": "2026-12-06T14:00:06.123456Z", "exception": "Traceback…"}

- ``ts``: ISO 8601, UTC; ``level``; ``logger``: the logger's name; ``process``; ``event``:
  the message; an exception's traceback is the ``exception`` field (one line: JSON escapes
  its newlines); a record's ``extra={…}`` fields are fields of the line.
- ``LOG_FORMAT=text``: one readable line per record instead, for a developer's terminal.
- ``LOG_LEVEL``: the root level (default INFO). These two variables are read here only.

Rasa and the action server configure logging themselves; ``logging.yml`` (the project's
root, passed as ``--logging-config-file`` / ``--logging-config_file``) gives them the same
formatter through ``dictConfig`` (see ``rasa_handler`` for what Rasa does after it).

What is never logged: a patient's message text, a reply's text, a phone number (wa_id),
names, the app secret, access tokens, API keys. The code logs ids, counts, states and
error kinds instead (see ``where_it_failed`` in gateway/ and connectors/). ``redact_numbers``
below is a last line of defence only, not the policy: it masks phone-number-like digit runs
in every string field of every line, so a number that slipped into a message or an
exception still does not reach the log. It cannot recognise free text and is no excuse to
log it. Rasa at DEBUG logs message text in its own lines: keep it at INFO in production.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any, Dict, List, Mapping, MutableMapping, Optional, Union

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["configure_logging", "formatter", "redact_numbers", "rasa_handler", "process_from_command_line",
           "StderrHandler", "DropEverything", "NUMBER_PLACEHOLDER"]

NUMBER_PLACEHOLDER = "[number removed]"
# A phone number as it may show up: 8 or more digits in a row, or an international number
# written with spaces or dashes ("+1 555-010-1234"). Not part of a longer word or number
# (ids like "wamid.HBgL…", hex digests, decimals: "0.123456789").
PHONE_LIKE = re.compile(r"(?<![\w.+])(?:\+\d(?:[ \-]?\d){7,}|\+?\d{8,})(?![\w])")
# Fields our own processors set: never redacted (the timestamp has 8+ digits).
_OWN_FIELDS = frozenset({"ts", "level", "logger", "process"})
_FIRST_FIELDS = ("ts", "level", "logger", "process", "event")
# Extras that only repeat the message with terminal colours (uvicorn).
_DROPPED_EXTRAS = frozenset({"color_message"})


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return PHONE_LIKE.sub(NUMBER_PLACEHOLDER, value)
    if isinstance(value, Mapping):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask(item) for item in value]
    return value


def redact_numbers(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Masks phone-number-like digit runs in the event and every string field (recursively in
    dicts and lists). The last line of defence: see the module's docstring."""
    return {key: value if key in _OWN_FIELDS else _mask(value) for key, value in event_dict.items()}


def _in_reading_order(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """ts, level, logger, process, event, then the other fields."""
    first = [key for key in _FIRST_FIELDS if key in event_dict]
    return {**{key: event_dict[key] for key in first},
            **{key: value for key, value in event_dict.items() if key not in _FIRST_FIELDS}}


def _add_process(process: str) -> Processor:
    def add_process(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict["process"] = process
        return event_dict
    return add_process


def _drop_extras(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    for key in _DROPPED_EXTRAS:
        event_dict.pop(key, None)
    return event_dict


def _unwrap_json_event(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Rasa 3.6 renders its own structlog events to a JSON string before they reach Python's
    logging (rasa/utils/log_utils.py): their fields become fields of our line."""
    event = event_dict.get("event")
    if event_dict.get("_from_structlog") or not isinstance(event, str) or not event.startswith("{"):
        return event_dict
    try:
        inner = json.loads(event)
    except ValueError:
        return event_dict
    if not isinstance(inner, dict) or "event" not in inner:
        return event_dict
    for key, value in inner.items():
        if key not in _OWN_FIELDS and key != "timestamp":
            event_dict[key] = value
    return event_dict


def _shared_processors() -> List[Processor]:
    """For every record: ours through structlog and the stdlib's ("foreign") alike."""
    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]


def _wants_text(fmt: Optional[str]) -> bool:
    chosen = (fmt or os.environ.get("LOG_FORMAT") or "json").strip().lower()
    return chosen == "text"


def formatter(process: Optional[str] = None, fmt: Optional[str] = None) -> logging.Formatter:
    """The formatter of every handler: ``fmt`` "json" (the default) or "text"; None reads
    ``LOG_FORMAT``. ``process`` None: "rasa" or "actions", told from the command line (for
    ``logging.yml``, shared by both)."""
    renderer: Processor
    if _wants_text(fmt):
        renderer = structlog.dev.ConsoleRenderer(colors=False, timestamp_key="ts",
                                                 exception_formatter=structlog.dev.plain_traceback)
        exceptions: List[Processor] = []
    else:
        renderer = structlog.processors.JSONRenderer()
        exceptions = [structlog.processors.format_exc_info]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_process(process or process_from_command_line()),
            _unwrap_json_event,
            _drop_extras,
            *exceptions,
            redact_numbers,
            _in_reading_order,
            renderer,
        ],
    )


class StderrHandler(logging.Handler):
    """Writes each formatted record as one line to the current ``sys.stderr``.

    Deliberately not a ``logging.StreamHandler``: Rasa calls ``coloredlogs.install`` after
    applying ``logging.yml``, which replaces the first stream handler on stdout/stderr it
    finds with its own coloured one (see ``rasa_handler``)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:  # the stdlib's StreamHandler does the same
            raise
        except Exception:
            self.handleError(record)


class DropEverything(logging.Filter):
    """A filter that lets nothing through (the decoy handler of ``logging.yml``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _level(level: Union[int, str, None], default: int) -> int:
    chosen = level if level is not None else os.environ.get("LOG_LEVEL")
    if chosen is None or chosen == "":
        return default
    if isinstance(chosen, int):
        return chosen
    number = logging.getLevelName(chosen.strip().upper())
    return number if isinstance(number, int) else default


def configure_logging(process: str, level: Union[int, str, None] = None,
                      fmt: Optional[str] = None, default_level: int = logging.INFO) -> None:
    """Route every log record of this process to stderr, one JSON object per line (or text:
    ``fmt``/``LOG_FORMAT``). ``level`` None: ``LOG_LEVEL``, else ``default_level`` (a command
    line tool passes WARNING). Call once, in an entry point's ``main``; replaces the root
    logger's handlers."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = StderrHandler()
    handler.setFormatter(formatter(process, fmt))
    root.addHandler(handler)
    root.setLevel(_level(level, default_level))
    logging.captureWarnings(True)  # warnings.warn goes through the same handler
    # structlog's own loggers (structlog.get_logger()) end in the same handler.
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# ── Rasa and the action server (logging.yml) ──────────────────────────────────────────────
def process_from_command_line(argv: Optional[List[str]] = None) -> str:
    """"actions" for ``python -m rasa_sdk`` and ``rasa run actions``, else "rasa"."""
    args = sys.argv if argv is None else argv
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if "rasa_sdk" in (getattr(spec, "name", None) or "") or "rasa_sdk" in (args[0] if args else ""):
        return "actions"
    words = [arg for arg in args[1:] if not arg.startswith("-")]
    return "actions" if words[:2] == ["run", "actions"] else "rasa"


def _sanic_defaults_through(handler_config: Dict[str, Any]) -> None:
    """Sanic applies its own logging config (stdout/stderr, its text format) whenever Rasa
    creates its API app (``rasa run --enable-api``), after ``logging.yml``: point those
    handlers at ours too. A no-op where Sanic is not installed."""
    try:
        from sanic.log import LOGGING_CONFIG_DEFAULTS
    except ImportError:  # pragma: no cover - Rasa always has Sanic
        return
    handlers: MutableMapping[str, Any] = LOGGING_CONFIG_DEFAULTS.setdefault("handlers", {})
    for name in list(handlers):
        handlers[name] = dict(handler_config)


def rasa_handler(process: Optional[str] = None) -> logging.Handler:
    """The handler of ``logging.yml`` (``()`` factory): a ``StderrHandler`` with our formatter,
    and Sanic's later logging config sent to the same handler.

    Rasa, after ``dictConfig``, calls ``coloredlogs.install``: it removes the first stream
    handler writing to stdout/stderr and puts a coloured one, which keeps the removed
    handler's filters, in its place. ``logging.yml`` gives it a decoy to remove (a stream
    handler with ``DropEverything``), so coloredlogs' handler prints nothing, and this
    handler (not a stream handler) is left alone."""
    handler = StderrHandler()
    handler.setFormatter(formatter(process))
    logging.captureWarnings(True)  # warnings after this point are log lines too
    _sanic_defaults_through({"()": f"{__name__}.rasa_handler", "process": process})
    return handler
