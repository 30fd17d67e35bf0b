"""The approved WhatsApp templates staff may send when a patient's 24-hour window has closed
(free text is then refused by WhatsApp; only a template Meta approved may start a
conversation again).

The list is the clinic's configuration, not something staff type: by default the demo
templates the local WhatsApp simulator has approved (simulator/templates.py), suited to
re-contacting a patient; a clinic with its own approved templates lists them in a YAML file
named by ``INBOX_TEMPLATES_FILE``:

    templates:
      - name: visit_followup          # exactly as approved in WhatsApp Manager
        language: en_US
        label: After a visit           # what staff see
        body: "Hi {{1}}, thank you for visiting {{2}} on {{3}}. …"
        params: [First name, Clinic, Date]
        quick_reply_payloads: ["/thank", "/request_human", "/book_appointment"]
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from clinic.inbox.model import InvalidInput

PARAM_MAX = 200  # keep parameters short: they go into a fixed, approved text
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclasses.dataclass(frozen=True)
class ApprovedTemplate:
    name: str
    language: str
    label: str
    body: str
    params: Tuple[str, ...] = ()
    quick_reply_payloads: Tuple[str, ...] = ()

    def render(self, values: Sequence[str]) -> str:
        """The text the patient sees (for the transcript), after checking the values."""
        values = self.check(values)
        return _PLACEHOLDER.sub(lambda m: values[int(m.group(1)) - 1]
                                if 0 < int(m.group(1)) <= len(values) else m.group(0), self.body)

    def check(self, values: Sequence[str]) -> List[str]:
        values = [str(v).strip() for v in (values or [])]
        if len(values) != len(self.params):
            raise InvalidInput(f"template {self.name} needs {len(self.params)} value(s): "
                               + (", ".join(self.params) or "none"))
        for label, value in zip(self.params, values, strict=False):
            if not value:
                raise InvalidInput(f"fill in “{label}”")
            if len(value) > PARAM_MAX or re.search(r"[\n\t]| {5,}", value):
                raise InvalidInput(f"“{label}”: one line, at most {PARAM_MAX} characters")
        return values


DEFAULT_TEMPLATES: Tuple[ApprovedTemplate, ...] = (
    ApprovedTemplate(
        "visit_followup", "en_US", "After a visit: ask the patient to get in touch",
        "Hi {{1}}, thank you for visiting {{2}} on {{3}}. We hope everything went well. If you have "
        "a question about your visit, tap below and our team will get in touch.",
        ("First name", "Clinic", "Visit date"),
        ("/thank", '/request_human{"team": "nurse"}', "/book_appointment")),
    ApprovedTemplate(
        "recall_reminder", "en_US", "Invite to book a routine appointment",
        "Hi {{1}}, {{2}} would like to invite you to book a routine appointment that is now due. "
        "Tap below to book, or ask reception for the details.",
        ("First name", "Clinic"), ("/book_appointment", "/deny", "/opt_out")),
    ApprovedTemplate(
        "results_ready", "en_US", "Results are ready (portal or reception)",
        "Hi {{1}}, your test results are ready. For your privacy they are not sent on WhatsApp: "
        "please sign in to the patient portal or call reception.",
        ("First name",)),
)


def load_templates(environ: Optional[Dict[str, str]] = None) -> Tuple[ApprovedTemplate, ...]:
    environ = os.environ if environ is None else environ
    path = environ.get("INBOX_TEMPLATES_FILE")
    if not path:
        return DEFAULT_TEMPLATES
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    items = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a 'templates:' list")
    result = []
    for item in items:
        try:
            result.append(ApprovedTemplate(
                name=str(item["name"]), language=str(item.get("language", "en_US")),
                label=str(item.get("label") or item["name"]), body=str(item.get("body", "")),
                params=tuple(str(p) for p in item.get("params") or ()),
                quick_reply_payloads=tuple(str(p) for p in item.get("quick_reply_payloads") or ())))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: each template needs at least a name ({exc})") from None
    return tuple(result)
