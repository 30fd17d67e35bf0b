"""The short labels actions put into messages themselves (button titles, list values,
fallback words), in en / ru / zh, in one table.

Whole sentences belong in domain responses (with a variation per language); only what a
response cannot hold lives here: titles of buttons built from live data and words that
fill a response's slot. Limits: a reply button title holds 20 characters, a list row 24.
"""

from __future__ import annotations

from typing import Dict, Optional

from clinic.i18n import language_code, plural_category

LABELS: Dict[str, Dict[str, str]] = {
    # Buttons (≤ 20 characters: they may be shown as reply buttons).
    "anyone": {"en": "Anyone", "ru": "Любой специалист", "zh": "任何人"},
    "another_time": {"en": "Another day or time", "ru": "Другой день/время", "zh": "换个日期或时间"},
    "anyone_available": {"en": "Anyone available", "ru": "Любой специалист",
                         "zh": "任何有空的医护人员"},
    "talk_to_reception": {"en": "Talk to reception", "ru": "Помощь регистратуры", "zh": "联系前台"},
    "reschedule": {"en": "Reschedule", "ru": "Перенести", "zh": "改约"},
    "cancel": {"en": "Cancel", "ru": "Отменить", "zh": "取消预约"},
    # Greeting when the patient's name is unknown ("Hi there", "Здравствуйте, уважаемый
    # пациент!", "尊敬的患者，您好").
    "no_first_name": {"en": "there", "ru": "уважаемый пациент", "zh": "尊敬的患者"},
    # Queue: who is ahead of the patient ("Перед вами: никого", "前面等候人数：0人").
    "queue_nobody": {"en": "nobody", "ru": "никого", "zh": "0人"},
    # Documents (clinic.notifications.model.DOCUMENT_KINDS), quoted as «{notify_document}».
    "document.sick_note": {"en": "sick note", "ru": "больничный лист", "zh": "病假条"},
    "document.records_copy": {"en": "copy of your records", "ru": "копия медицинской карты",
                              "zh": "病历副本"},
    "document.referral_letter": {"en": "referral letter", "ru": "направление", "zh": "转诊信"},
    "document.prescription": {"en": "prescription", "ru": "рецепт", "zh": "处方"},
    "document.certificate": {"en": "certificate", "ru": "справка", "zh": "证明"},
    "document.document": {"en": "document", "ru": "документ", "zh": "文件"},
    # Billing (BILLING_ITEMS, BILLING_STATUSES). The statuses follow "…: it" in English;
    # in Russian and Chinese they follow a colon ("Новости по документу «счёт»: …"), so
    # they are clauses of their own (no agreement with the item's gender needed).
    "billing.invoice": {"en": "invoice", "ru": "счёт", "zh": "账单"},
    "billing.insurance_claim": {"en": "insurance claim", "ru": "страховое требование",
                                "zh": "保险理赔"},
    "billing.refund": {"en": "refund", "ru": "возврат средств", "zh": "退款"},
    "billing_status.issued": {"en": "has been issued", "ru": "ожидает оплаты", "zh": "已开具"},
    "billing_status.paid": {"en": "has been paid, thank you", "ru": "оплата получена, спасибо",
                            "zh": "已付款，谢谢"},
    "billing_status.overdue": {"en": "is overdue", "ru": "срок оплаты истёк", "zh": "已逾期"},
    "billing_status.submitted": {"en": "has been sent to your insurer",
                                 "ru": "передано вашему страховщику",
                                 "zh": "已提交给您的保险公司"},
    "billing_status.approved": {"en": "has been approved", "ru": "страховщик одобрил",
                                "zh": "已获批准"},
    "billing_status.rejected": {"en": "was not accepted; our billing team can help",
                                "ru": "страховщик отказал; наша команда по оплате поможет",
                                "zh": "未获接受；我们的收费团队可以帮您"},
    "billing_status.refunded": {"en": "has been refunded", "ru": "деньги возвращены",
                                "zh": "已退款"},
}


def label(key: str, language: Optional[str] = "en") -> str:
    """The label in ``language`` (English when the language is unknown)."""
    return LABELS[key][language_code(language)]


def people(count: int, language: Optional[str] = "en") -> str:
    """How many people are ahead: ``nobody`` · ``1 person`` · ``3 people``; Russian
    ``1 человек`` / ``3 человека`` / ``5 человек``; Chinese ``3人``."""
    language = language_code(language)
    if count == 0:
        return label("queue_nobody", language)
    if language == "ru":
        return f"{count} человека" if plural_category("ru", count) == "few" else f"{count} человек"
    if language == "zh":
        return f"{count}人"
    return "1 person" if count == 1 else f"{count} people"
