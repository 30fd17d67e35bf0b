"""A campaign described in YAML (``campaigns/*.yml``), checked before anything is queued.

A broadcast goes to many people through Meta: it must carry no patient data. Its parameters
are campaign-wide (no per-patient field exists), and the checks below refuse text that looks
like an identifier (long digit runs: phone, record or card numbers; e-mail addresses) or a
placeholder that someone expected to be personalised.

Languages: ``language`` is the campaign's default (old files: the only one); ``languages``
lists every language the template is approved in at Meta (WhatsApp codes: ``en_US``, ``ru``,
``zh_CN``). Each recipient gets the version in their conversation's language when it is
listed, else the default one, and their row records that fallback (clinic/broadcasts/
languages.py). ``params`` is one list for every language, or one list per language
(``params: {en_US: [...], ru: [...]}``, every listed language, the same number each): a
text in a parameter must be in the version's language.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml

from clinic import phi_guard
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
    languages: Tuple[str, ...] = ()  # every approved language, the default (``language``) first
    params_by_language: Dict[str, List[str]] = dataclasses.field(default_factory=dict)


def check_params(params: List[str]) -> None:
    for index, value in enumerate(params):
        for pattern, what in _SUSPICIOUS:
            if pattern.search(value):
                raise CampaignError(f"params[{index}] contains {what}: broadcasts must carry no patient data")


def parse(data: Dict[str, Any]) -> CampaignSpec:
    if not isinstance(data, dict):
        raise CampaignError("a campaign file is a mapping (name, template, language, params…)")
    unknown = set(data) - {"name", "template", "language", "languages", "params", "quick_replies", "rate",
                           "description", "segment"}
    if unknown:
        raise CampaignError(f"unknown keys: {sorted(unknown)}")
    name = str(data.get("name") or "")
    if not _NAME.match(name):
        raise CampaignError("name: 2-64 characters, lower-case letters, digits, '_' or '-'")
    replies = data.get("quick_replies") or []
    if not isinstance(replies, list) or not all(isinstance(p, str) for p in replies):
        raise CampaignError("quick_replies: a list of payloads")
    language, languages, by_language = parse_languages(data)
    params = by_language[language]
    segment = data.get("segment") or {"consent": HEALTH_TIPS}
    if segment != {"consent": HEALTH_TIPS}:
        raise CampaignError("segment: only {consent: health_tips} (contacts who opted in to health tips)")
    try:
        rate = float(data.get("rate", 60))
    except (TypeError, ValueError):
        raise CampaignError("rate: messages per second, a number") from None
    if not 0 < rate <= MAX_RATE:
        raise CampaignError(f"rate: between 0 and {MAX_RATE:g} messages per second (Meta's limit)")
    for code, texts in by_language.items():
        try:
            check_params(texts)
        except CampaignError as error:
            raise CampaignError(f"{error} ({code})" if len(by_language) > 1 else str(error)) from None
    spec = CampaignSpec(name=name, template=str(data.get("template") or ""),
                        language=language, params=params,
                        quick_replies=replies, rate=rate, description=str(data.get("description") or ""),
                        topic=HEALTH_TIPS, languages=languages, params_by_language=by_language)
    for code, texts in by_language.items():
        try:
            template = Template(spec.template, code, tuple(texts), tuple(replies))
        except MessageShapeError as error:
            raise CampaignError(f"template: {error}") from None
        # The sender's PHI guard would refuse every message of the version: say so now.
        findings = phi_guard.check_payload(template.to_payload("campaign-check"))
        if findings:
            raise CampaignError(f"params ({code}): the PHI guard refuses them "
                                f"({', '.join(phi_guard.rules_of(findings))}): no health information in a broadcast")
    return spec


def parse_languages(data: Dict[str, Any]) -> Tuple[str, Tuple[str, ...], Dict[str, List[str]]]:
    """(default language, every language with the default first, params per language)."""
    params = data.get("params") or []
    listed = data.get("languages")
    if listed is None and isinstance(params, dict):
        listed = list(params)
    if listed is None:
        listed = [data.get("language") or "en_US"]
    if isinstance(listed, str):
        listed = [listed]
    if (not isinstance(listed, list) or not listed
            or not all(isinstance(code, str) and code.strip() == code and code for code in listed)):
        raise CampaignError("languages: a list of WhatsApp language codes (en_US, ru, zh_CN)")
    if len(set(listed)) != len(listed):
        raise CampaignError("languages: a language is listed twice")
    language = str(data.get("language") or listed[0])
    if language not in listed:
        raise CampaignError(f"language: the default ({language}) must be one of languages {listed}")
    languages = (language,) + tuple(code for code in listed if code != language)
    if isinstance(params, dict):
        missing = [code for code in languages if code not in params]
        extra = [str(code) for code in params if code not in languages]
        if missing or extra:
            raise CampaignError("params: one list per language of languages"
                                + (f"; missing {missing}" if missing else "")
                                + (f"; not in languages: {extra}" if extra else ""))
        by_language = {code: params[code] for code in languages}
    else:
        by_language = {code: params for code in languages}
    for code, texts in by_language.items():
        if not isinstance(texts, list) or not all(isinstance(p, str) for p in texts):
            raise CampaignError(f"params: a list of texts ({code})" if isinstance(params, dict)
                                else "params: a list of texts")
    if len({len(texts) for texts in by_language.values()}) > 1:
        raise CampaignError("params: the same number of texts in every language (one template, one set of {{n}})")
    return language, languages, {code: list(texts) for code, texts in by_language.items()}


def load(path: Path) -> CampaignSpec:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise CampaignError(f"cannot read {path}: {error}") from None
    return parse(data)
