"""A campaign described in YAML (``campaigns/*.yml``), checked before anything is queued.

A broadcast goes to many people through Meta: it must carry no patient data. Its parameters
are campaign-wide (no per-patient field exists), and the checks below refuse text that looks
like an identifier (long digit runs: phone, record or card numbers; e-mail addresses) or a
placeholder that someone expected to be personalised.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, List

import yaml

from clinic.broadcasts.store import CampaignError
from clinic.consent import HEALTH_TIPS
from whatsapp.outbound import MessageShapeError, Template

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
_SUSPICIOUS = [
    (re.compile(r"\d[\d\s().-]{5,}\d"), "a long number (phone, record or card number?)"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"), "an e-mail address"),
    (re.compile(r"\{\{?\s*\w+\s*\}?\}|<\w+>"), "a placeholder (broadcasts are not personalised)"),
]
MAX_RATE = 80.0  # Meta's default throughput per business number


@dataclasses.dataclass(frozen=True)
class CampaignSpec:
    name: str
    template: str
    language: str
    params: List[str]
    quick_replies: List[str]
    rate: float
    description: str
    topic: str


def check_params(params: List[str]) -> None:
    for index, value in enumerate(params):
        for pattern, what in _SUSPICIOUS:
            if pattern.search(value):
                raise CampaignError(f"params[{index}] contains {what}: broadcasts must carry no patient data")


def parse(data: Dict[str, Any]) -> CampaignSpec:
    if not isinstance(data, dict):
        raise CampaignError("a campaign file is a mapping (name, template, language, params…)")
    unknown = set(data) - {"name", "template", "language", "params", "quick_replies", "rate",
                           "description", "segment"}
    if unknown:
        raise CampaignError(f"unknown keys: {sorted(unknown)}")
    name = str(data.get("name") or "")
    if not _NAME.match(name):
        raise CampaignError("name: 2-64 characters, lower-case letters, digits, '_' or '-'")
    params = data.get("params") or []
    replies = data.get("quick_replies") or []
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise CampaignError("params: a list of texts")
    if not isinstance(replies, list) or not all(isinstance(p, str) for p in replies):
        raise CampaignError("quick_replies: a list of payloads")
    segment = data.get("segment") or {"consent": HEALTH_TIPS}
    if segment != {"consent": HEALTH_TIPS}:
        raise CampaignError("segment: only {consent: health_tips} (contacts who opted in to health tips)")
    try:
        rate = float(data.get("rate", 60))
    except (TypeError, ValueError):
        raise CampaignError("rate: messages per second, a number") from None
    if not 0 < rate <= MAX_RATE:
        raise CampaignError(f"rate: between 0 and {MAX_RATE:g} messages per second (Meta's limit)")
    check_params(params)
    spec = CampaignSpec(name=name, template=str(data.get("template") or ""),
                        language=str(data.get("language") or "en_US"), params=params,
                        quick_replies=replies, rate=rate, description=str(data.get("description") or ""),
                        topic=HEALTH_TIPS)
    try:
        Template(spec.template, spec.language, tuple(params), tuple(replies))
    except MessageShapeError as error:
        raise CampaignError(f"template: {error}") from None
    return spec


def load(path: Path) -> CampaignSpec:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CampaignError(f"cannot read {path}: {error}") from None
    return parse(data)
