"""The approved-template registry: built-in demo templates plus an optional YAML/JSON file.

A file may use the simple format below or Meta's own ``message_templates`` export
(``{"data":[{"name","language","status","category","components":[{"type":"BODY",...}]}]}``)::

    templates:
      - name: appointment_reminder
        language: en_US            # or languages: [en_US, es]
        category: utility
        status: APPROVED           # PAUSED -> 132015, DISABLED -> 132016, others -> 132001
        header: "Appointment reminder"
        body: "Hi {{1}}, ... {{2}} at {{3}}."
        footer: "Reply below"
        buttons:
          - {type: quick_reply, text: Confirm}
          - {type: url, text: Open portal, url: "https://portal.example/{{1}}"}

``languages:`` shares one text between languages; a template whose text differs per language
is listed once per language (each entry its own ``language`` and texts). The built-in clinic
templates exist in en_US, ru and zh_CN (``BUILTIN_TRANSLATIONS``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from whatsapp import limits

from .graph_errors import GraphError, invalid

# The clinic's portal, the fixed part of the portal templates' URL buttons.
_PORTAL = (os.environ.get("CLINIC_PORTAL_URL") or "https://portal.riverside-clinic.example").rstrip("/")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MEDIA_FORMATS = ("image", "video", "document", "location")

BUILTIN_TEMPLATES: List[Dict[str, Any]] = [
    {
        "name": "hello_world",
        "language": "en_US",
        "category": "utility",
        "header": "Hello World",
        "body": (
            "Welcome and congratulations!! This message demonstrates your ability to send a "
            "WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for "
            "taking the time to test with us."
        ),
        "footer": "WhatsApp Business Platform sample message",
    },
    {
        "name": "appointment_reminder",
        "language": "en_US",
        "category": "utility",
        "header": "Appointment reminder",
        "body": (
            "Hi {{1}}, this is a reminder of your appointment on {{2}} at {{3}}. "
            "Please confirm, reschedule or cancel below."
        ),
        "footer": "Reply STOP to opt out",
        "buttons": [
            {"type": "quick_reply", "text": "Confirm"},
            {"type": "quick_reply", "text": "Reschedule"},
            {"type": "quick_reply", "text": "Cancel"},
        ],
    },
    # Used by the clinic's reminders (domain/reminders.yml). No clinical content in the
    # parameters: first name, date, time, practitioner, site.
    {
        "name": "appointment_reminder_v2",
        "language": "en_US",
        "category": "utility",
        "header": "Appointment reminder",
        "body": (
            "Hi {{1}}, this is a reminder of your appointment on {{2}} at {{3}} with {{4}}, "
            "{{5}}. Please confirm, reschedule or cancel below."
        ),
        "footer": "Reply STOP to stop reminders",
        "buttons": [
            {"type": "quick_reply", "text": "Confirm"},
            {"type": "quick_reply", "text": "Reschedule"},
            {"type": "quick_reply", "text": "Cancel"},
        ],
    },
    {
        "name": "visit_followup",
        "language": "en_US",
        "category": "utility",
        "header": "After your visit",
        "body": (
            "Hi {{1}}, thank you for visiting {{2}} on {{3}}. We hope everything went well. "
            "If you have a question about your visit, tap below and our team will get in touch."
        ),
        "footer": "Reply STOP to stop reminders",
        "buttons": [
            {"type": "quick_reply", "text": "All good"},
            {"type": "quick_reply", "text": "Talk to a nurse"},
            {"type": "quick_reply", "text": "Book again"},
        ],
    },
    {
        "name": "recall_reminder",
        "language": "en_US",
        "category": "utility",
        "header": "Time for a check-up",
        "body": (
            "Hi {{1}}, {{2}} would like to invite you to book a routine appointment that is "
            "now due. Tap below to book, or ask reception for the details."
        ),
        "footer": "Reply STOP to stop reminders",
        "buttons": [
            {"type": "quick_reply", "text": "Book now"},
            {"type": "quick_reply", "text": "Not now"},
            {"type": "quick_reply", "text": "Stop reminders"},
        ],
    },
    # Health-education broadcasts (clinic/broadcasts): MARKETING, only to contacts who opted
    # in; the same text for everyone (no patient data). The button stops tips only.
    {
        "name": "health_tip",
        "language": "en_US",
        "category": "marketing",
        "header": "Health tip",
        "body": "A health tip from {{1}}: {{2}}",
        "footer": "Reply STOP to stop all messages",
        "buttons": [{"type": "quick_reply", "text": "Stop tips"}],
    },
    # Satisfaction surveys (clinic/surveys): five quick replies carry the rating and survey id.
    {
        "name": "visit_survey",
        "language": "en_US",
        "category": "utility",
        "header": "How was your visit?",
        "body": (
            "Thank you for visiting {{1}} on {{2}}. How was your visit? Tap a score from "
            "1 (poor) to 5 (excellent)."
        ),
        "footer": "Reply STOP to stop reminders",
        "buttons": [{"type": "quick_reply", "text": text}
                    for text in ("1 - Poor", "2", "3", "4", "5 - Excellent")],
    },
    {
        "name": "service_survey",
        "language": "en_US",
        "category": "utility",
        "body": (
            "How did the {{1}} team do when you talked to us? Tap a score from 1 (poor) "
            "to 5 (excellent)."
        ),
        "footer": "Reply STOP to stop reminders",
        "buttons": [{"type": "quick_reply", "text": text}
                    for text in ("1 - Poor", "2", "3", "4", "5 - Excellent")],
    },
    # Clinic notifications (clinic/notifications, domain/notifications.yml): utility
    # templates with no clinical content. Results and documents carry a URL button whose
    # dynamic suffix is a single-use portal token; the fixed part is the clinic's portal URL,
    # registered with the template (here: CLINIC_PORTAL_URL, as the clinic would at Meta).
    {
        "name": "results_ready",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, your test results are ready. For your privacy they are not sent on "
            "WhatsApp: please sign in to the patient portal or call reception."
        ),
        "buttons": [{"type": "url", "text": "Open portal", "url": _PORTAL + "/t/{{1}}"}],
    },
    {
        "name": "document_ready",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, your {{2}} is ready. For your privacy it is not sent on WhatsApp: "
            "open it securely in the patient portal."
        ),
        "buttons": [{"type": "url", "text": "Open portal", "url": _PORTAL + "/t/{{1}}"}],
    },
    {
        "name": "document_ready_collect",
        "language": "en_US",
        "category": "utility",
        "body": "Hi {{1}}, your {{2}} is ready to collect at reception ({{3}}). Please bring an ID.",
    },
    {
        "name": "billing_update",
        "language": "en_US",
        "category": "utility",
        "body": "Hi {{1}}, an update on your {{2}}: it {{3}}. For questions, tap below.",
        "buttons": [{"type": "quick_reply", "text": "Talk to billing"}],
    },
    {
        "name": "queue_called",
        "language": "en_US",
        "category": "utility",
        "header": "It's your turn",
        "body": "{{1}}, it's your turn: ticket {{2}}, please go to {{3}}.",
    },
    {
        "name": "queue_position",
        "language": "en_US",
        "category": "utility",
        "body": (
            "Hi {{1}}, ticket {{2}}: {{3}} ahead of you, about {{4}} minutes. We'll message "
            "you when it's your turn."
        ),
    },
]


# The clinic's templates in the patient's other languages, as approved per language at Meta:
# the same name, category, parameters ({{n}}) and buttons (type, order, URL) as the English
# entry above; only the texts differ. "STOP" stays as it is (the opt-out keyword).
BUILTIN_TRANSLATIONS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "appointment_reminder_v2": {
        "ru": {
            "header": "Напоминание о приёме",
            "body": (
                "Здравствуйте, {{1}}! Напоминаем о вашей записи на приём {{2}} в {{3}}: {{4}}, "
                "{{5}}. Пожалуйста, подтвердите, перенесите или отмените запись с помощью "
                "кнопок ниже."
            ),
            "footer": "Ответьте STOP, чтобы отключить напоминания",
            "buttons": ["Подтвердить", "Перенести", "Отменить"],
        },
        "zh_CN": {
            "header": "就诊提醒",
            "body": (
                "您好，{{1}}！提醒您：您已预约{{2}} {{3}}就诊，医生：{{4}}，地点：{{5}}。"
                "请点击下方按钮确认、改期或取消预约。"
            ),
            "footer": "回复STOP即可停止提醒",
            "buttons": ["确认", "改期", "取消"],
        },
    },
    "visit_followup": {
        "ru": {
            "header": "После вашего визита",
            "body": (
                "Здравствуйте, {{1}}! Спасибо, что посетили {{2}} {{3}}. Надеемся, всё прошло "
                "хорошо. Если у вас есть вопрос о визите, нажмите кнопку ниже, и наши сотрудники "
                "свяжутся с вами."
            ),
            "footer": "Ответьте STOP, чтобы отключить напоминания",
            "buttons": ["Всё хорошо", "Вопрос медсестре", "Записаться снова"],
        },
        "zh_CN": {
            "header": "就诊回访",
            "body": (
                "您好，{{1}}！感谢您选择{{2}}，并于{{3}}前来就诊，希望一切顺利。"
                "如果您对本次就诊有任何疑问，请点击下方按钮，我们的工作人员会与您联系。"
            ),
            "footer": "回复STOP即可停止提醒",
            "buttons": ["一切都好", "咨询护士", "再次预约"],
        },
    },
    "recall_reminder": {
        "ru": {
            "header": "Пора на плановый приём",
            "body": (
                "Здравствуйте, {{1}}! {{2}} приглашает вас записаться на плановый приём: "
                "подошёл срок. Нажмите кнопку ниже, чтобы записаться, или уточните подробности "
                "в регистратуре."
            ),
            "footer": "Ответьте STOP, чтобы отключить напоминания",
            "buttons": ["Записаться", "Не сейчас", "Не напоминать"],
        },
        "zh_CN": {
            "header": "定期就诊提醒",
            "body": (
                "您好，{{1}}！{{2}}提醒您，您的定期就诊时间已到，欢迎预约。"
                "请点击下方按钮预约，或向前台咨询详情。"
            ),
            "footer": "回复STOP即可停止提醒",
            "buttons": ["立即预约", "暂不需要", "停止提醒"],
        },
    },
    "health_tip": {
        "ru": {
            "header": "Совет о здоровье",
            "body": "Совет о здоровье от {{1}}: {{2}}",
            "footer": "Ответьте STOP, чтобы отключить все сообщения",
            "buttons": ["Не присылать советы"],
        },
        "zh_CN": {
            "header": "健康小贴士",
            "body": "来自{{1}}的健康小贴士：{{2}}",
            "footer": "回复STOP即可停止接收所有消息",
            "buttons": ["不再接收健康贴士"],
        },
    },
    "visit_survey": {
        "ru": {
            "header": "Как прошёл ваш визит?",
            "body": (
                "Спасибо, что посетили {{1}} {{2}}. Как прошёл ваш визит? Поставьте оценку "
                "от 1 (плохо) до 5 (отлично)."
            ),
            "footer": "Ответьте STOP, чтобы отключить напоминания",
            "buttons": ["1 - Плохо", "2", "3", "4", "5 - Отлично"],
        },
        "zh_CN": {
            "header": "您对本次就诊满意吗？",
            "body": (
                "感谢您选择{{1}}，并于{{2}}前来就诊。您对本次就诊满意吗？"
                "请点击1（很差）到5（非常好）为我们评分。"
            ),
            "footer": "回复STOP即可停止提醒",
            "buttons": ["1 - 很差", "2", "3", "4", "5 - 非常好"],
        },
    },
    "service_survey": {
        "ru": {
            "body": (
                "Как вам работа команды {{1}}, когда вы к нам обращались? Поставьте оценку "
                "от 1 (плохо) до 5 (отлично)."
            ),
            "footer": "Ответьте STOP, чтобы отключить напоминания",
            "buttons": ["1 - Плохо", "2", "3", "4", "5 - Отлично"],
        },
        "zh_CN": {
            "body": "您与我们沟通时，对{{1}}团队的服务满意吗？请点击1（很差）到5（非常好）为我们评分。",
            "footer": "回复STOP即可停止提醒",
            "buttons": ["1 - 很差", "2", "3", "4", "5 - 非常好"],
        },
    },
    "results_ready": {
        "ru": {
            "body": (
                "Здравствуйте, {{1}}! Ваши результаты анализов готовы. В целях "
                "конфиденциальности мы не присылаем их в WhatsApp: войдите на портал пациента "
                "или позвоните в регистратуру."
            ),
            "buttons": ["Открыть портал"],
        },
        "zh_CN": {
            "body": (
                "您好，{{1}}！您的检查结果已出。为保护您的隐私，结果不会通过WhatsApp发送："
                "请登录患者门户查看，或致电前台。"
            ),
            "buttons": ["打开患者门户"],
        },
    },
    "document_ready": {
        "ru": {
            "body": (
                "Здравствуйте, {{1}}! Документ «{{2}}» готов. В целях конфиденциальности мы не "
                "присылаем его в WhatsApp: откройте его на портале пациента по защищённой ссылке."
            ),
            "buttons": ["Открыть портал"],
        },
        "zh_CN": {
            "body": (
                "您好，{{1}}！您的{{2}}已准备好。为保护您的隐私，文件不会通过WhatsApp发送："
                "请在患者门户中安全查看。"
            ),
            "buttons": ["打开患者门户"],
        },
    },
    "document_ready_collect": {
        "ru": {
            "body": (
                "Здравствуйте, {{1}}! Документ «{{2}}» готов, его можно забрать в регистратуре "
                "({{3}}). Пожалуйста, возьмите с собой документ, удостоверяющий личность."
            ),
        },
        "zh_CN": {
            "body": "您好，{{1}}！您的{{2}}已准备好，请到前台领取（{{3}}）。领取时请携带身份证件。",
        },
    },
    "billing_update": {
        "ru": {
            "body": (
                "Здравствуйте, {{1}}! Новости по документу «{{2}}»: {{3}}. "
                "Если есть вопросы, нажмите кнопку ниже."
            ),
            "buttons": ["Вопрос по оплате"],
        },
        "zh_CN": {
            "body": "您好，{{1}}！您的{{2}}状态有更新：{{3}}。如有疑问，请点击下方按钮。",
            "buttons": ["咨询收费处"],
        },
    },
    "queue_called": {
        "ru": {
            "header": "Ваша очередь",
            "body": "Подошла ваша очередь, {{1}}! Талон {{2}}: пожалуйста, пройдите в {{3}}.",
        },
        "zh_CN": {
            "header": "轮到您了",
            "body": "轮到您了，{{1}}！您的号码是{{2}}，请前往{{3}}。",
        },
    },
    "queue_position": {
        "ru": {
            "body": (
                "Здравствуйте, {{1}}! Талон {{2}}: перед вами в очереди {{3}} чел., ожидание около "
                "{{4}} мин. Мы напишем вам, когда подойдёт ваша очередь."
            ),
        },
        "zh_CN": {
            "body": (
                "您好，{{1}}！您的号码是{{2}}，前面还有{{3}}人，预计等待约{{4}}分钟。"
                "轮到您时，我们会通知您。"
            ),
        },
    },
}


def _translated(item: Dict[str, Any], language: str, texts: Dict[str, Any]) -> Dict[str, Any]:
    """``item`` (a built-in English entry) in ``language``: its texts replaced, all else kept."""
    names = PLACEHOLDER.findall(item.get("body") or "")
    if PLACEHOLDER.findall(texts["body"]) != names:
        raise ValueError(f"{item['name']} ({language}): the body must use {names} in order")
    buttons = item.get("buttons") or []
    titles = texts.get("buttons") or []
    if len(titles) != len(buttons):
        raise ValueError(f"{item['name']} ({language}): {len(buttons)} button text(s) expected")
    result = dict(item, language=language, body=texts["body"],
                  buttons=[dict(button, text=title)
                           for button, title in zip(buttons, titles, strict=True)])
    for key in ("header", "footer"):
        if item.get(key):
            if not texts.get(key):
                raise ValueError(f"{item['name']} ({language}): the {key} needs a translation")
            result[key] = texts[key]
    return result


BUILTIN_TEMPLATES += [
    _translated(item, language, texts)
    for item in list(BUILTIN_TEMPLATES)
    for language, texts in BUILTIN_TRANSLATIONS.get(item["name"], {}).items()
]

@dataclass
class Template:
    name: str
    language: str
    category: str = "utility"
    status: str = "APPROVED"
    header: Optional[Dict[str, Any]] = None  # {"format": "text", "text": ...} or {"format": "image"}
    body: str = ""
    footer: Optional[str] = None
    buttons: List[Dict[str, Any]] = field(default_factory=list)

    def body_params(self) -> List[str]:
        return PLACEHOLDER.findall(self.body)

    def header_params(self) -> List[str]:
        if not self.header:
            return []
        if self.header.get("format") == "text":
            return PLACEHOLDER.findall(self.header.get("text") or "")
        return ["media"]

    def describe(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "language": self.language,
            "category": self.category,
            "status": self.status,
            "header": self.header,
            "body": self.body,
            "footer": self.footer,
            "buttons": self.buttons,
            "body_params": len(self.body_params()),
        }


def _normalise(item: Dict[str, Any]) -> List[Template]:
    if "components" in item:  # Meta's message_templates format
        header = None
        body = ""
        footer = None
        buttons: List[Dict[str, Any]] = []
        for comp in item.get("components") or []:
            kind = str(comp.get("type", "")).lower()
            if kind == "header":
                fmt = str(comp.get("format", "text")).lower()
                header = {"format": fmt, "text": comp.get("text")} if fmt == "text" else {"format": fmt}
            elif kind == "body":
                body = comp.get("text") or ""
            elif kind == "footer":
                footer = comp.get("text")
            elif kind == "buttons":
                for button in comp.get("buttons") or []:
                    buttons.append(
                        {
                            "type": str(button.get("type", "quick_reply")).lower(),
                            "text": button.get("text", ""),
                            **({"url": button["url"]} if button.get("url") else {}),
                        }
                    )
        item = dict(item, header=header, body=body, footer=footer, buttons=buttons)
    header = item.get("header")
    if isinstance(header, str):
        header = {"format": "text", "text": header}
    elif isinstance(header, dict):
        fmt = str(header.get("format") or header.get("type") or "text").lower()
        header = {"format": fmt, "text": header.get("text")} if fmt == "text" else {"format": fmt}
    languages = item.get("languages") or [item.get("language") or "en_US"]
    if isinstance(languages, str):
        languages = [languages]
    result = []
    for language in languages:
        result.append(
            Template(
                name=str(item["name"]),
                language=str(language),
                category=str(item.get("category") or "utility").lower(),
                status=str(item.get("status") or "APPROVED").upper(),
                header=header,
                body=str(item.get("body") or ""),
                footer=item.get("footer"),
                buttons=[
                    {**button, "type": str(button.get("type", "quick_reply")).lower()}
                    for button in item.get("buttons") or []
                ],
            )
        )
    return result


class TemplateRegistry:
    def __init__(self, path: Optional[str] = None) -> None:
        self._templates: Dict[Tuple[str, str], Template] = {}
        for item in BUILTIN_TEMPLATES:
            self.add(item)
        if path:
            self.load(path)

    def add(self, item: Dict[str, Any]) -> None:
        for template in _normalise(item):
            self._templates[(template.name, template.language)] = template

    def load(self, path: str) -> None:
        text = Path(path).read_text(encoding="utf-8")
        if path.endswith((".yml", ".yaml")):
            import yaml  # a project dependency already; only needed for YAML files

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if isinstance(data, dict):
            data = data.get("templates") or data.get("data") or []
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of templates")
        for item in data:
            self.add(item)

    def all(self) -> List[Template]:
        return list(self._templates.values())

    def get(self, name: str, language: str) -> Template:
        template = self._templates.get((name, language))
        if template is None:
            known = sorted(lang for (tname, lang) in self._templates if tname == name)
            details = (
                f"template name ({name}) does not exist in {language}"
                if not known
                else f"template name ({name}) does not exist in {language} (available: {', '.join(known)})"
            )
            raise GraphError(132001, details=details)
        if template.status == "PAUSED":
            raise GraphError(132015, details=f"template {name} is paused")
        if template.status == "DISABLED":
            raise GraphError(132016, details=f"template {name} has been disabled")
        if template.status != "APPROVED":
            raise GraphError(132001, details=f"template {name} is not approved ({template.status})")
        return template


def _param_value(param: Dict[str, Any]) -> str:
    kind = param.get("type")
    if kind == "text":
        return str(param.get("text", ""))
    if kind in ("currency", "date_time"):
        return str((param.get(kind) or {}).get("fallback_value", ""))
    return ""


def _substitute(text: str, values: Dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _check_params(
    section: str, expected: List[str], params: List[Dict[str, Any]]
) -> Dict[str, str]:
    if len(params) != len(expected):
        raise GraphError(
            132000,
            details=(
                f"{section}: number of localizable_params ({len(params)}) does not match the "
                f"expected number of params ({len(expected)})"
            ),
        )
    named = bool(expected) and not all(name.isdigit() for name in expected)
    values: Dict[str, str] = {}
    for index, param in enumerate(params):
        where = f"template['components'][{section}]['parameters'][{index}]"
        if not isinstance(param, dict) or "type" not in param:
            raise invalid(where, "must be an object with a type")
        kind = param["type"]
        if kind not in ("text", "currency", "date_time", "image", "video", "document", "location"):
            raise invalid(f"{where}['type']", f"must be one of {{text, currency, date_time, image, video, document, location}} - got \"{kind}\"")
        if kind == "text":
            text = param.get("text")
            if not isinstance(text, str) or text == "":
                raise invalid(f"{where}['text']", "is required")
            if section == "body" and ("\n" in text or "\t" in text or "     " in text):
                raise GraphError(
                    132018,
                    details=f"{where}['text']: Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
                )
        elif kind in ("currency", "date_time"):
            if not isinstance(param.get(kind), dict) or "fallback_value" not in param[kind]:
                raise invalid(f"{where}['{kind}']['fallback_value']", "is required")
        else:
            media = param.get(kind)
            if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
                raise invalid(f"{where}['{kind}']", "requires an id or a link")
        if named:
            name = param.get("parameter_name")
            if name not in expected:
                raise invalid(
                    f"{where}['parameter_name']",
                    f"must be one of {{{', '.join(expected)}}} - got \"{name}\"",
                    code=131009,
                )
            values[name] = _param_value(param)
        else:
            values[str(index + 1)] = _param_value(param)
    return values


def check_and_render(template: Template, components: Any) -> Dict[str, Any]:
    """Validate a send's components against ``template``; return what the user sees."""
    if components is None:
        components = []
    if not isinstance(components, list):
        raise invalid("template['components']", "must be an array")
    header_params: List[Dict[str, Any]] = []
    body_params: List[Dict[str, Any]] = []
    button_params: Dict[int, Dict[str, Any]] = {}
    for index, comp in enumerate(components):
        where = f"template['components'][{index}]"
        if not isinstance(comp, dict):
            raise invalid(where, "must be an object")
        kind = comp.get("type")
        if kind not in ("header", "body", "button"):
            raise invalid(f"{where}['type']", f"must be one of {{header, body, button}} - got \"{kind}\"")
        params = comp.get("parameters", [])
        if not isinstance(params, list):
            raise invalid(f"{where}['parameters']", "must be an array")
        if kind == "header":
            header_params = params
        elif kind == "body":
            body_params = params
        else:
            try:
                button_index = int(comp.get("index"))
            except (TypeError, ValueError):
                raise invalid(f"{where}['index']", "is required and must be a number") from None
            if not 0 <= button_index < len(template.buttons):
                raise invalid(
                    f"{where}['index']",
                    f"({button_index}) does not match any button of template {template.name}",
                    code=131009,
                )
            button = template.buttons[button_index]
            sub_type = comp.get("sub_type")
            if sub_type != button["type"]:
                raise invalid(
                    f"{where}['sub_type']",
                    f"must be \"{button['type']}\" for button {button_index} - got \"{sub_type}\"",
                    code=131009,
                )
            if len(params) != 1:
                raise GraphError(
                    132000,
                    details=f"button {button_index}: number of params ({len(params)}) does not match the expected number of params (1)",
                )
            param = params[0]
            if sub_type == "quick_reply":
                payload = param.get("payload") if isinstance(param, dict) else None
                if param.get("type") != "payload" or not isinstance(payload, str) or not payload:
                    raise invalid(f"{where}['parameters'][0]['payload']", "is required")
                if len(payload) > limits.TEMPLATE_QUICK_REPLY_PAYLOAD_MAX:
                    raise invalid(
                        f"{where}['parameters'][0]['payload']",
                        f"must be at most {limits.TEMPLATE_QUICK_REPLY_PAYLOAD_MAX} characters long",
                        code=131009,
                    )
            elif sub_type == "url":
                if not isinstance(param, dict) or not isinstance(param.get("text"), str):
                    raise invalid(f"{where}['parameters'][0]['text']", "is required")
            button_params[button_index] = param

    header_values = _check_params("header", template.header_params(), header_params)
    body_values = _check_params("body", template.body_params(), body_params)

    rendered: Dict[str, Any] = {"name": template.name, "language": template.language,
                                "category": template.category}
    if template.header:
        if template.header.get("format") == "text":
            rendered["header"] = {"type": "text", "text": _substitute(template.header.get("text") or "", header_values)}
        else:
            media = header_params[0] if header_params else {}
            rendered["header"] = {"type": template.header["format"], template.header["format"]: media.get(template.header["format"], {})}
    rendered["body"] = _substitute(template.body, body_values)
    if template.footer:
        rendered["footer"] = template.footer
    buttons = []
    for index, button in enumerate(template.buttons):
        param = button_params.get(index) or {}
        if button["type"] == "quick_reply":
            buttons.append({"type": "quick_reply", "index": index, "text": button.get("text", ""),
                            "payload": param.get("payload") or button.get("text", "")})
        elif button["type"] == "url":
            url = str(button.get("url", ""))
            url = PLACEHOLDER.sub(lambda _m, p=param: str(p.get("text", "")), url)
            buttons.append({"type": "url", "index": index, "text": button.get("text", ""), "url": url})
        else:
            buttons.append({"type": button["type"], "index": index, "text": button.get("text", "")})
    rendered["buttons"] = buttons
    return rendered
