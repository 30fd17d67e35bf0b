"""How the pages show message texts and times.

- ``whatsapp_html``: WhatsApp's own formatting, as the patient's app renders it: *bold*,
  _italic_, ~strikethrough~ and ```monospace```. The clinic's texts use it ("*not for
  emergencies*") and patients may too; shown raw, staff read asterisks, not emphasis. The
  text is HTML-escaped *first* and only then are the markers turned into tags, so nothing a
  patient writes can become markup (the CSP forbids scripts anyway).
- ``local_time``: times are stored in UTC; staff read them in the clinic's time zone
  (``timezone`` in content/clinic.yml), with the zone's abbreviation so it is never ambiguous.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Optional

from markupsafe import Markup, escape

# WhatsApp's rules: a marker opens before a non-space character and closes after one, the
# opening one not right after a letter or digit, the closing one not right before one; no
# line break in between. So snake_case, 2*3*4 and "file_name_v2" stay as they are, and
# markers nest (_*bold italic*_).
_MONOSPACE = re.compile(r"```(?=\S)(.+?)(?<=\S)```", re.S)
_ALNUM = r"[^\W_]"
_SPANS = [(re.compile(rf"(?<!{_ALNUM})(?<!{m}){m}(?=[^\s{m}])([^{m}\n]*?[^\s{m}]){m}(?!{_ALNUM})(?!{m})"), tag)
          for m, tag in (("\\*", "strong"), ("_", "em"), ("~", "s"))]


def whatsapp_html(text: Optional[str]) -> Markup:
    html = str(escape(text or ""))
    parts = []
    position = 0
    for code in _MONOSPACE.finditer(html):  # nothing is formatted inside monospace
        parts += [_spans(html[position:code.start()]), f"<code>{code.group(1)}</code>"]
        position = code.end()
    parts.append(_spans(html[position:]))
    return Markup("".join(parts))


def _spans(html: str) -> str:
    for pattern, tag in _SPANS:
        html = pattern.sub(lambda m, tag=tag: f"<{tag}>{m.group(1)}</{tag}>", html)
    return html


def local_time(moment: Optional[dt.datetime], timezone: dt.tzinfo) -> str:
    """``2026-03-02 10:00 CET`` for 09:00 UTC in Europe/Berlin; "—" for no time."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:  # SQLite gives naive datetimes back; every stored time is UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(timezone).strftime("%Y-%m-%d %H:%M %Z")
