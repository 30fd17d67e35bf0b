"""The approved WhatsApp templates staff may send when a patient's 24-hour window has closed
(free text is then refused by WhatsApp; only a template Meta approved may start a
conversation again).

WhatsApp approves a template per *name and language*: ``results_ready`` in ``en_US``,
``ru`` and ``zh_CN`` are three approvals of one template. Staff see each template once (a
``TemplateChoice``, by name); it is offered and sent in the patient's language (the
conversation's language, ``clinic.language``, mapped to its WhatsApp code). When a template
has no version in that language, the clinic's default language is used instead, and the
inbox says so (``TemplateOffer.fallback``: a warning before sending, a note on the ticket and
the audit row after).

The list is the clinic's configuration, not something staff type: by default the demo
templates the local WhatsApp simulator has approved (simulator/templates.py, with its
Russian and Chinese translations), suited to re-contacting a patient; a clinic with its own
approved templates lists them in a YAML file named by ``INBOX_TEMPLATES_FILE``, one entry
per approved language (the same name, the same parameters):

    templates:
      - name: visit_followup          # exactly as approved in WhatsApp Manager
        language: en_US
        label: After a visit           # what staff see
        body: "Hi {{1}}, thank you for visiting {{2}} on {{3}}. …"
        params: [First name, Clinic, Date]
        quick_reply_payloads: ["/thank", "/request_human", "/book_appointment"]
      - name: visit_followup
        language: ru
        body: "Здравствуйте, {{1}}! Спасибо, что посетили {{2}} {{3}}. …"
        # label, params and quick replies: those of the first entry of the name when omitted
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from clinic.inbox.model import InvalidInput

PARAM_MAX = 200  # keep parameters short: they go into a fixed, approved text
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclasses.dataclass(frozen=True)
class ApprovedTemplate:
    """One approved version of a template: a name in one WhatsApp language code."""

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


@dataclasses.dataclass(frozen=True)
class TemplateOffer:
    """A template as offered for one conversation: the version that will be sent."""

    choice: "TemplateChoice"
    template: ApprovedTemplate  # the version sent (its ``language`` is the WhatsApp code)
    wanted: str                 # the WhatsApp code of the patient's language
    default: ApprovedTemplate   # the version in the clinic's default language (or the first)

    @property
    def name(self) -> str:
        return self.template.name

    @property
    def label(self) -> str:
        return self.choice.label

    @property
    def params(self) -> Tuple[str, ...]:
        return self.template.params

    @property
    def body(self) -> str:
        return self.template.body

    @property
    def language(self) -> str:
        return self.template.language

    @property
    def fallback(self) -> bool:
        """No version in the patient's language: another language is sent (and recorded)."""
        return self.template.language != self.wanted

    @property
    def html_lang(self) -> str:
        """The version's language as an HTML ``lang`` value (``zh_CN`` → ``zh-CN``)."""
        return self.template.language.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class TemplateChoice:
    """One template as staff see it: listed once, by name, in every approved language."""

    name: str
    label: str
    versions: Tuple[ApprovedTemplate, ...]  # the default language's first, then as listed

    @property
    def languages(self) -> Tuple[str, ...]:
        return tuple(version.language for version in self.versions)

    @property
    def params(self) -> Tuple[str, ...]:
        return self.versions[0].params

    @property
    def body(self) -> str:
        return self.versions[0].body

    @property
    def language(self) -> str:
        return self.versions[0].language

    def version(self, language: str) -> Optional[ApprovedTemplate]:
        return next((v for v in self.versions if v.language == language), None)

    def offer(self, wanted: str, default: str) -> TemplateOffer:
        """The version for a patient whose language has the WhatsApp code ``wanted``: that
        one if approved, else the clinic's default language's, else the first listed."""
        fallback = self.version(default) or self.versions[0]
        return TemplateOffer(self, self.version(wanted) or fallback, wanted, fallback)


def group_templates(templates: Iterable[ApprovedTemplate], default: str) -> Tuple[TemplateChoice, ...]:
    """Approved versions → one choice per name (in the order names first appear). A name
    approved twice in one language, or whose versions need a different number of values,
    is a configuration error."""
    by_name: Dict[str, List[ApprovedTemplate]] = {}
    for template in templates:
        versions = by_name.setdefault(template.name, [])
        if any(v.language == template.language for v in versions):
            raise ValueError(f"template {template.name} is listed twice in {template.language}")
        if versions and len(template.params) != len(versions[0].params):
            raise ValueError(f"template {template.name} ({template.language}) needs "
                             f"{len(versions[0].params)} value(s) like its other languages")
        if (versions and template.body and versions[0].body
                and _placeholders(template.body) != _placeholders(versions[0].body)):
            raise ValueError(f"template {template.name} ({template.language}) must use the same "
                             "{{n}} placeholders as its other languages")
        versions.append(template)
    choices = []
    for name, versions in by_name.items():
        versions.sort(key=lambda v: v.language != default)  # stable: the default first
        choices.append(TemplateChoice(name, versions[0].label, tuple(versions)))
    return tuple(choices)


def _placeholders(body: str) -> List[int]:
    return sorted({int(number) for number in _PLACEHOLDER.findall(body)})


_VISIT_FOLLOWUP = ("visit_followup", "After a visit: ask the patient to get in touch",
                   ("First name", "Clinic", "Visit date"),
                   ("/thank", '/request_human{"team": "nurse"}', "/book_appointment"))
_RECALL_REMINDER = ("recall_reminder", "Invite to book a routine appointment",
                    ("First name", "Clinic"), ("/book_appointment", "/deny", "/opt_out"))
_RESULTS_READY = ("results_ready", "Results are ready (portal or reception)", ("First name",), ())


def _version(spec: tuple, language: str, body: str) -> ApprovedTemplate:
    name, label, params, payloads = spec
    return ApprovedTemplate(name, language, label, body, params, payloads)


# The simulator's approved texts (simulator/templates.py: BUILTIN_TEMPLATES and its
# BUILTIN_TRANSLATIONS), the same bodies word for word (tests/test_inbox_languages.py
# compares them).
DEFAULT_TEMPLATES: Tuple[ApprovedTemplate, ...] = (
    _version(_VISIT_FOLLOWUP, "en_US",
             "Hi {{1}}, thank you for visiting {{2}} on {{3}}. We hope everything went well. If you have "
             "a question about your visit, tap below and our team will get in touch."),
    _version(_VISIT_FOLLOWUP, "ru",
             "Здравствуйте, {{1}}! Спасибо, что посетили {{2}} {{3}}. Надеемся, всё прошло "
             "хорошо. Если у вас есть вопрос о визите, нажмите кнопку ниже, и наши сотрудники "
             "свяжутся с вами."),
    _version(_VISIT_FOLLOWUP, "zh_CN",
             "您好，{{1}}！感谢您选择{{2}}，并于{{3}}前来就诊，希望一切顺利。"
             "如果您对本次就诊有任何疑问，请点击下方按钮，我们的工作人员会与您联系。"),
    _version(_RECALL_REMINDER, "en_US",
             "Hi {{1}}, {{2}} would like to invite you to book a routine appointment that is now due. "
             "Tap below to book, or ask reception for the details."),
    _version(_RECALL_REMINDER, "ru",
             "Здравствуйте, {{1}}! {{2}} приглашает вас записаться на плановый приём: "
             "подошёл срок. Нажмите кнопку ниже, чтобы записаться, или уточните подробности "
             "в регистратуре."),
    _version(_RECALL_REMINDER, "zh_CN",
             "您好，{{1}}！{{2}}提醒您，您的定期就诊时间已到，欢迎预约。"
             "请点击下方按钮预约，或向前台咨询详情。"),
    _version(_RESULTS_READY, "en_US",
             "Hi {{1}}, your test results are ready. For your privacy they are not sent on WhatsApp: "
             "please sign in to the patient portal or call reception."),
    _version(_RESULTS_READY, "ru",
             "Здравствуйте, {{1}}! Ваши результаты анализов готовы. В целях "
             "конфиденциальности мы не присылаем их в WhatsApp: войдите на портал пациента "
             "или позвоните в регистратуру."),
    _version(_RESULTS_READY, "zh_CN",
             "您好，{{1}}！您的检查结果已出。为保护您的隐私，结果不会通过WhatsApp发送："
             "请登录患者门户查看，或致电前台。"),
)


def load_templates(environ: Optional[Dict[str, str]] = None) -> Tuple[ApprovedTemplate, ...]:
    """Every approved version (one per name and language), from ``INBOX_TEMPLATES_FILE`` or
    the defaults. A later entry of a name may leave out label, params and quick replies:
    those of the name's first entry are used."""
    environ = os.environ if environ is None else environ
    path = environ.get("INBOX_TEMPLATES_FILE")
    if not path:
        return DEFAULT_TEMPLATES
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    items = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a 'templates:' list")
    result: List[ApprovedTemplate] = []
    first: Dict[str, ApprovedTemplate] = {}
    for item in items:
        try:
            name = str(item["name"])
            base = first.get(name)
            params = item.get("params")
            payloads = item.get("quick_reply_payloads")
            template = ApprovedTemplate(
                name=name, language=str(item.get("language", "en_US")),
                label=str(item.get("label") or (base.label if base else name)),
                body=str(item.get("body", "")),
                params=tuple(str(p) for p in params) if params is not None else (base.params if base else ()),
                quick_reply_payloads=(tuple(str(p) for p in payloads) if payloads is not None
                                      else (base.quick_reply_payloads if base else ())))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: each template needs at least a name ({exc})") from None
        first.setdefault(name, template)
        result.append(template)
    return tuple(result)
