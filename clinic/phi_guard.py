"""The PHI guard: a deterministic check that an outbound message carries no health
information before it leaves for WhatsApp (Meta's servers, the patient's lock screen, a
shared phone).

What is blocked (each finding names a rule, never the text it matched):

* ``lab_value``: a number with a laboratory unit (``6.1 mmol/L``, ``180 mg/dL``,
  ``4.2 x10^9/L``, ``140/90 mmHg``), a lab test named with its value (``HbA1c 7.2%``,
  ``cholesterol is 6.1``, ``TSH: 4.5``) or its verdict (``your cholesterol is high``);
* ``test_result``: ``positive / negative for …``, ``HIV-positive``, ``your test came back
  negative``, ``results are normal``;
* ``diagnosis``: a term of ``content/phi_terms.yml`` (clinician-editable) in a sentence
  about the patient (``you have diabetes``, ``diagnosed with …``, ``your HIV test``);
* ``icd10_code``: ``E11.9``, or ``E11`` next to "ICD", "code" or "diagnosis";
* ``medication_dose``: ``500 mg``, ``2 tablets twice daily``, ``take one capsule``;
* ``medication``: a medication of the term list said about the patient (``your
  prescription for metformin``).

Two strengths. ``check(text)`` is for sentences (bot replies, staff messages): a term
counts only in a sentence about the patient, so "we run a diabetes clinic" or "we can't
sell ibuprofen here" pass. ``check(text, strict=True)`` is for template and notification
*parameters*, which are names, dates and references only: any listed term is blocked.

Russian and Chinese: every rule has its Russian and Chinese phrasings and units (ммоль/л,
毫摩尔/升, "по 2 таблетки 3 раза в день", "每日三次，每次2片", "положительный результат",
"阳性", "диагноз:", "诊断为"). Terms of the list are matched by script: Latin terms as words,
Chinese terms as substrings (no spaces in Chinese; a Han character next to a number or a Latin
term counts as a boundary), Russian terms word by word by their dictionary forms (pymorphy3),
so "сахарным диабетом" matches "сахарный диабет"; a capitalised word that can be a surname
("Раков") is not a term. A vaccination ("прививка от гриппа", "流感疫苗") is no diagnosis.

Why regexes and lists rather than a model: the guard must give the same answer every time,
explain itself (the rule), be fast on every message, and be editable by a clinician. It is
a safety net behind the real protection (notifications carry only enums and dates; results
live in the portal), not a classifier of everything clinical.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterable, List, Optional, Tuple

import yaml

from clinic.language.scripts import HAN, HAN_RANGES
from clinic.settings import PROJECT_ROOT

TERMS_FILE = PROJECT_ROOT / "content" / "phi_terms.yml"

LAB_VALUE = "lab_value"
TEST_RESULT = "test_result"
DIAGNOSIS = "diagnosis"
ICD10 = "icd10_code"
MEDICATION_DOSE = "medication_dose"
MEDICATION = "medication"
RULES = (LAB_VALUE, TEST_RESULT, DIAGNOSIS, ICD10, MEDICATION_DOSE, MEDICATION)

HINTS = {
    LAB_VALUE: "a laboratory value (a number with a lab unit, or a lab test with its value)",
    TEST_RESULT: "a test outcome (positive / negative / normal)",
    DIAGNOSIS: "a diagnosis or condition (content/phi_terms.yml)",
    ICD10: "an ICD-10 diagnosis code",
    MEDICATION_DOSE: "a medication dose or how to take it",
    MEDICATION: "a named medication (content/phi_terms.yml)",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    rule: str
    where: str = ""  # which part of a message (e.g. "body_params[1]"); never the text

    def as_dict(self) -> Dict[str, str]:
        return {"rule": self.rule, "where": self.where, "hint": HINTS[self.rule]}


class PhiBlocked(ValueError):
    """Raised where a send must not happen; carries the findings (no text)."""

    def __init__(self, findings: List[Finding]):
        self.findings = findings
        super().__init__("health information blocked: " + ", ".join(sorted({f.rule for f in findings})))


# ── the rules ───────────────────────────────────────────────────────────────────────────
# Chinese has no spaces: a Han character next to a number or a Latin term is a boundary.
_HAN_CHARS = HAN_RANGES
_HAN = HAN
_CYRILLIC = re.compile(r"[а-яё]", re.I)
_NOT_AFTER_WORD = rf"(?<![^\W{_HAN_CHARS}])"  # not right after a letter or digit (Han excepted)
_NOT_BEFORE_WORD = rf"(?![^\W{_HAN_CHARS}])"
_NUMBER = r"\d+(?:[.,]\d+)?"
_LAB_UNITS = (
    r"mg/dl|mg/l|g/dl|g/l|mmol/mol|mmol/l|µmol/l|umol/l|nmol/l|pmol/l|ng/ml|ng/l|pg/ml|µg/l|ug/l"
    r"|mcg/l|miu/ml|miu/l|mu/l|iu/ml|iu/l|u/l|meq/l|ml/min(?:/1[.,]73\s?m2)?|cells/µl|cells/ul"
    r"|cells/mm3|/µl|/ul|/mm3|mm\s?hg|bpm|fl|copies/ml"
    r"|(?:x|×|\*)\s?10\s?(?:\^|\*\*)?\s?(?:9|12|6)\s?/\s?l|x\s?10e(?:9|12)/l"
    # Russian
    r"|ммоль/моль|ммоль/л|мкмоль/л|нмоль/л|пмоль/л|мг/дл|мг/л|г/дл|г/л|мкг/л|мкг/мл|нг/мл|нг/л|пг/мл"
    r"|мкме/мл|мме/мл|мме/л|ме/мл|ме/л|мкед/мл|мед/л|ед/мл|ед/л|копий/мл|кл/мкл|тыс/мкл|млн/мкл|/мкл"
    r"|мл/мин(?:/1[.,]73\s?м2)?|мм\s?рт\.?\s?ст|уд\.?/мин|уд\.?\s?в\s?мин"
    r"|(?:х|x|×|\*)\s?10\s?(?:\^|\*\*)?\s?(?:9|12|6)\s?/\s?л"
    # Chinese
    r"|毫摩尔/升|毫摩尔每升|微摩尔/升|纳摩尔/升|皮摩尔/升|毫克/分升|毫克/升|克/分升|克/升|微克/升|纳克/毫升"
    r"|国际单位/升|单位/升|毫米汞柱|次/分钟?|次每分钟?|拷贝/毫升|(?:x|×|\*)\s?10\s?\^?\s?(?:9|12)\s?/\s?升"
)
_LAB_VALUE_RE = re.compile(rf"{_NOT_AFTER_WORD}(?<!/){_NUMBER}\s?(?:{_LAB_UNITS})(?![a-zа-яё])", re.I)
_PERCENT_RE = re.compile(rf"{_NOT_AFTER_WORD}(?<![.]){_NUMBER}\s?%")
_PERCENT_CONTEXT_RE = re.compile(r"\b(?:saturation|level|reading|сатурац\w*|уровень|уровня|насыщени\w*)\b"
                                 r"|血氧|饱和度|水平|含量", re.I)
_VERDICT = r"(?:high|low|raised|elevated|abnormal|normal|borderline|deranged|out of range|too high|too low)"
_RESULT_NOUNS = r"(?:test|tests|result|results|swab|screen|screening|scan|biopsy|culture|smear|pcr|x-ray|mri|ct|ultrasound|blood work|bloods)"
_RU_RESULT_NOUNS = (r"(?:результат|тест|анализ|мазок|мазк|посев|пцр|скрининг|снимок|снимк|рентген|флюорограф|узи|мрт|кт"
                    r"|биопси|исследовани|обследовани|экспресс-тест)[а-яё-]*")
_RU_RESULT_VERDICTS = (r"(?:положительн|отрицательн|сомнительн|в\s+норме|в\s+пределах\s+нормы|норм(?:а|альн)"
                       r"|без\s+отклонений|без\s+патологи|с\s+отклонени|отклонени|чист|показал|выявил|обнаружил"
                       r"|повышен|понижен|снижен|подтвердил)[а-яё]*")
_ZH_RESULT_NOUNS = (r"(?:检查|化验|检测|检验|体检|报告|结果|筛查|活检|B超|超声|CT|核磁|磁共振|X光|X线|胸片|片子|拍片|血检|尿检|核酸"
                    r"|抗原|抗体)")
_TEST_RESULT_RES = [
    re.compile(r"\b(?:positive|negative|reactive|non-reactive)\s+(?:for|to)\b", re.I),
    re.compile(r"\b(?:tested|tests?|testing|screened)\s+(?:\w+\s+){0,2}(?:positive|negative|reactive)\b", re.I),
    re.compile(r"\b[a-z0-9]{2,12}-(?:positive|negative)\b", re.I),  # "HIV-positive", "Rh-negative"
    re.compile(r"\b(?:hiv|covid|covid-19|strep|rh|her2|pcr|antigen|antibody|antibodies|pregnancy|hcg|hpv)\s+"
               r"(?:test\s+)?(?:positive|negative)\b", re.I),
    re.compile(rf"\b{_RESULT_NOUNS}\s+(?:\w+\s+){{0,3}}?(?:is|are|was|were|came back|come back|returned|look|looks|showed|shows|show)\s+"
               rf"(?:\w+\s+)?(?:positive|negative|{_VERDICT}|clear|inconclusive|fine|reassuring|concerning|unremarkable)\b", re.I),
    re.compile(r"\b(?:not detected|no evidence of|(?:was|were) detected in (?:your|the) (?:sample|blood|urine|swab))\b",
               re.I),
    # Russian: "положительный результат", "анализ показал", "тест на беременность положительный"
    re.compile(rf"\b(?:положительн|отрицательн|сомнительн)[а-яё]*\s+(?:[а-яё]+\s+)?{_RU_RESULT_NOUNS}", re.I),
    re.compile(rf"\b{_RU_RESULT_NOUNS}[:—–-]?\s+(?:[а-яёa-z0-9-]+\s+){{0,3}}?{_RU_RESULT_VERDICTS}", re.I),
    re.compile(r"\b(?:вич|спид|ковид|коронавирус|covid(?:-19)?|hiv|гепатит|сифилис|хламиди|гоноре|впч|хгч|антиген|антител"
               r"|стрептокок|грипп|туберкул)[а-яё]*\s+(?:[a-zа-яё0-9]{1,2}\s+)?(?:тест\s+)?(?:положительн|отрицательн)", re.I),
    re.compile(rf"\b{_RU_RESULT_NOUNS}\s+(?:хорош|плох)[а-яё]*", re.I),  # "анализы хорошие"
    re.compile(r"\b[а-яёa-z0-9]{2,12}-(?:положительн|отрицательн)[а-яё]*", re.I),  # "ВИЧ-положительный"
    re.compile(r"\b(?:антител|антиген|вирус|днк|рнк|бактери|возбудител|патологи|клетк|инфекци|паразит)[а-яё]*\s+"
               r"(?:[а-яё]+\s+){0,2}?(?:не\s+)?(?:выявлен|обнаружен)[а-яё]*", re.I),
    re.compile(r"\b(?:не\s+)?(?:выявлен|обнаружен)[а-яё]*\s+(?:[а-яё]+\s+)?"
               r"(?:антител|антиген|вирус|днк|рнк|бактери|возбудител|патологи|клетк|инфекци|паразит)", re.I),
    # Chinese: "阳性", "检查结果显示", "结果正常", "未检出"
    re.compile(r"阳性|阴性|未检出|检出(?!率)|查出|未见异常|未发现异常"),
    re.compile(rf"{_ZH_RESULT_NOUNS}(?:结果|报告)?(?:显示|提示|表明|发现)", re.I),
    re.compile(rf"{_ZH_RESULT_NOUNS}[^。，,；;！？!?]{{0,6}}?(?:正常|异常|良好|没问题|没有问题|有问题|不太好|不理想|偏高|偏低|超标)",
               re.I),
]
# Russian and Chinese sentences that announce a diagnosis whatever the condition is called.
_DIAGNOSIS_PHRASE_RES = [
    re.compile(r"\bдиагноз\s*:|\b(?:поставлен|поставили|установлен|установили|подтвержд[её]н|подтвердили)[а-яё]*"
               r"\s+(?:[а-яё]+\s+)?диагноз|\bдиагностирова(?:н|ли)[а-яё]*|\bваш\s+диагноз", re.I),
    re.compile(r"诊断为|诊断是|诊断结果(?:为|是|显示)|确诊为|确诊了|已确诊|被确诊|确诊患有|被诊断|诊断[:：]"),
]
_ICD_DOTTED_RE = re.compile(r"(?<![A-Za-z0-9_])[A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4}(?![A-Za-z0-9_])")
_ICD_SHORT_RE = re.compile(r"(?<![A-Za-z0-9_])[A-TV-Z][0-9][0-9AB](?![A-Za-z0-9_])")
_ICD_CUE_RE = re.compile(r"\b(?:icd(?:-?10)?|diagnos\w*|dx|code|мкб(?:-?10)?|диагноз\w*|шифр\w*)\b|诊断|编码|疾病代码", re.I)
# A Russian doctor may type an ICD-10 letter in Cyrillic ("Е11.9"): compare codes in Latin.
_CYRILLIC_LOOKALIKES = str.maketrans("АВЕКМНОРСТХУ", "ABEKMHOPCTXY")
_DOSE_RE = re.compile(
    rf"(?<![\w/]){_NUMBER}\s?(?:mg|mcg|µg|ug|micrograms?|milligrams?|ml|mls|millilitres?|milliliters?|iu)\b(?!\s?/)",
    re.I)
_RU_DOSE_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?(?:мг|мкг|мл|ме|миллиграмм[а-яё]*|миллилитр[а-яё]*|микрограмм[а-яё]*)"
                         r"(?![а-яёa-z])(?!\s?/)", re.I)
_ZH_DOSE_RE = re.compile(rf"{_NOT_AFTER_WORD}(?<!/){_NUMBER}\s?(?:毫克|微克|毫升|国际单位|mg|mcg|ml|iu)(?![a-z])(?!\s?/)", re.I)
_UNITS_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?units?\b", re.I)
_RU_ZH_UNITS_RE = re.compile(rf"{_NOT_AFTER_WORD}{_NUMBER}\s?(?:ед\b|единиц|个?单位)", re.I)
_INSULIN_RE = re.compile(r"\binsulin\b|инсулин|胰岛素", re.I)
_MED_AMOUNT_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?(?:g|grams?)\b", re.I)
_RU_ZH_MED_AMOUNT_RE = re.compile(rf"{_NOT_AFTER_WORD}{_NUMBER}\s?(?:г\b|грамм|克(?!/))", re.I)
_COUNT = r"(?:\d+|one|two|three|four|five|half(?:\s+a)?|a|an)"
_FORM = r"(?:tablets?|tabs?|pills?|capsules?|caps?|puffs?|drops?|sachets?|injections?|spoonfuls?|teaspoons?|patch(?:es)?|doses?)"
_FREQUENCY = (r"(?:once|twice|three times|four times|\d+\s+times|daily|a day|per day|every\s+\w+|each (?:morning|evening|night|day)"
              r"|at night|at bedtime|in the morning|in the evening|before meals|after meals|with food|bd|bid|tds|tid|qds|qid|od|prn|as needed)")
_RU_COUNT = r"(?:\d+(?:[.,]\d+)?|1/2|½|одн[аоу]й?|одну|две|два|три|четыре|пять|пол|половин[аеуы]|половинк[аеиу])"
_RU_FORM = (r"(?:таблет|капсул|капел|капл|драже|пакетик|саше|ингаляц|впрыск|вдох|доз[аыу]?\b|ложк|ампул|свеч|укол"
            r"|инъекц|пластыр)[а-яё]*")
_RU_FREQUENCY = (r"(?:(?:\d+|один|одного|два|две|три|четыре|пять)\s+раз[а]?\s+в\s+(?:день|сутки|неделю)|раз\s+в\s+(?:день|сутки|неделю)"
                 r"|ежедневно|каждый\s+день|каждые\s+\d+\s+час[а-яё]*|каждое\s+утро|каждый\s+вечер|утром|вечером|на\s+ночь"
                 r"|перед\s+сном|перед\s+едой|после\s+еды|во\s+время\s+еды|натощак|при\s+необходимости|при\s+боли)")
_ZH_COUNT = r"(?:\d+(?:\.\d+)?|[一二两三四五六七八九十半]+)"
_ZH_FORM = r"(?:片|粒|颗|丸|袋|包|支|滴|喷|揿|勺|毫克|毫升|克|mg|ml|单位|国际单位)"
_ZH_FREQUENCY = (r"(?:每日|每天|一日|一天|每晚|每早|每周|睡前|饭前|饭后|餐前|餐后|空腹|每隔?\s*\d+\s*小时|每隔?[一二三四五六八十]+小时"
                 r"|[一二两三四]次)")
_DOSE_FREQUENCY_RES = [
    re.compile(rf"\b{_COUNT}\s+{_FORM}\b(?:\s+[\w-]+){{0,3}}?\s+{_FREQUENCY}\b", re.I),
    re.compile(rf"\b(?:take|takes|taking|took|use|inhale|inject|apply)\s+{_COUNT}\s+{_FORM}\b", re.I),
    # Russian: "по 2 таблетки 3 раза в день", "принимайте одну капсулу"
    re.compile(rf"\bпо\s+{_RU_COUNT}\s+{_RU_FORM}", re.I),
    re.compile(rf"\b{_RU_COUNT}\s+{_RU_FORM}(?:\s+[\w-]+){{0,3}}?\s+{_RU_FREQUENCY}", re.I),
    re.compile(rf"\b(?:принима|прими|пей|пейте|пить|выпе|вводи|введи|коли|закапыва|закапа|наноси|нанеси|используй|ингалиру"
               rf"|рассасыва|применя)[а-яё]*\s+(?:по\s+)?{_RU_COUNT}\s+{_RU_FORM}", re.I),
    # Chinese: "每日三次，每次2片", "口服1粒", "2片，睡前"
    re.compile(rf"(?:每次|一次|每回|每顿)\s*(?:口服|服用|吃|服|含服|注射|喷)?\s*{_ZH_COUNT}\s*{_ZH_FORM}", re.I),
    re.compile(rf"(?:口服|服用|吃|服|含服|注射|外用|滴|喷)\s*{_ZH_COUNT}\s*{_ZH_FORM}", re.I),
    re.compile(rf"{_ZH_COUNT}\s*(?:片|粒|颗|丸|袋|包)\s*[，,、]?\s*{_ZH_FREQUENCY}", re.I),
]
_MED_FREQUENCY_RE = re.compile(rf"\b{_FREQUENCY}\b|\b{_RU_FREQUENCY}|{_ZH_FREQUENCY}", re.I)
# A sentence is "about the patient" when it has one of these around the term.
_ABOUT_PATIENT_RES = [
    re.compile(r"\bdiagnos(?:is|ed|es|tic)\b|\bdx\b|\bconfirmed\b|\bconsistent with\b|\bsuggestive of\b|\bsigns of\b"
               r"|\bindicat(?:es|ing|ed|ion of)\b|\bshows?\b|\bshowed\b|\brevealed\b|\bcame back\b|\btested\b", re.I),
    re.compile(r"\b(?:he|she|they|patient|the patient|your (?:son|daughter|child|husband|wife|partner|mother|father))"
               r"\s+(?:has|had|have|is|was|are)\b", re.I),
    re.compile(r"\b(?:prescri(?:bed|ption)|treatment|medication|medicine|dose|dosage|refill)\s+(?:for|of)\b", re.I),
    re.compile(r"\byou(?:'re| are| were)\s+(?:on|taking|prescribed)\b", re.I),
    # Russian
    re.compile(r"\b(?:диагноз|диагностир|подтвержд|подтвердил|выявлен|выявил|обнаружен|обнаружил|признак|свидетельству"
               r"|соответству|показал|показыва|назначил|назначен)[а-яё]*"
               r"|\b(?:рецепт|лечени|доз|дозировк|назначени)[а-яё]*\s+(?:от|для|при|на)\b"
               r"|\bвы\s+(?:принимаете|получаете|пьете|пьёте)\b"
               r"|\b(?:он|она|они|пациент|пациентка|ваш\s+(?:сын|муж|ребенок|ребёнок|отец)|ваша\s+(?:дочь|жена|мать|мама))"
               r"\s+(?:болеет|болел|болела|страдает|имеет)\b", re.I),
    # Chinese
    # ("温馨提示" is "friendly reminder": only a test's 提示 / 显示 counts)
    re.compile(r"确诊为|确诊了|已确诊|被确诊|诊断为|诊断是|被诊断|检查发现|检查出|查出|检出|符合|考虑为|疑似|处方|开了|正在服用|在服用|在吃"
               rf"|{_ZH_RESULT_NOUNS}(?:显示|提示)", re.I),
]
_RU_BEFORE_RES = [
    re.compile(r"\b(?:ваш|ваша|ваше|ваши|вашего|вашей|вашему|вашим|вашем|вашими|ваших|вашу|твой|твоя|твое|твоё|твои"
               r"|твоего|твоей)\s+(?:[\w-]+\s+){0,2}$", re.I),  # "ваш диабет", "ваш анализ на ВИЧ"
    re.compile(r"\bу\s+(?:вас|тебя|него|неё|нее|них|ребёнка|ребенка|пациента|пациентки|сына|дочери|мужа|жены|мамы|папы"
               r"|матери|отца)\s+(?:[а-яё]+\s+){0,2}$", re.I),  # "у вас диабет", "у вас выявлен диабет"
    re.compile(r"\bвы\s+(?:(?:уже|сейчас|тоже|еще|ещё|были|была|был|остаетесь|остаётесь)\s+)?$", re.I),  # "вы беременны"
    re.compile(r"\b(?:вам|тебе|ему|ей|ребенку|ребёнку)\s+(?:поставили|поставлен|установили|установлен|диагностировали"
               r"|подтвердили|назначили|назначен)[а-яё]*\s+(?:[а-яё]+\s+){0,2}$", re.I),
]
_ZH_BEFORE_RE = re.compile(r"(?:您|你|(?<!其)他|她|孩子|宝宝|患者|病人)(?:的[^，。！？,.!?；;]{0,6}"
                           r"|(?:目前|已经|现在|可能|也|还)?(?:患有|有|得了|患了|患上了?|被诊断为|被确诊为?|确诊为?|查出|检查出)?)\s*$"
                           r"|(?:确诊|诊断|查出|检查出|患有|得了|患了)\s*$")
_CONDITIONAL_BEFORE = re.compile(r"\b(?:if|in case|whether|when|unless|anyone|people who|patients who|those who)\b[^.?!]{0,40}$",
                                 re.I)
_RU_ZH_CONDITIONAL_BEFORE = re.compile(
    r"(?:\b(?:если|в\s+случае|при\s+наличии|кто|у\s+кого|людям\s+с|люди\s+с|людей\s+с|пациентам\s+с|пациенты\s+с"
    r"|пациентов\s+с|тем,?\s+у\s+кого|всем,?\s+у\s+кого)\b[^.?!]{0,40}"
    r"|(?:如果|若|假如|万一|要是|如有|如需|如患有|如您|如你|凡是)[^。？！?!]{0,20})$", re.I)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\n])\s+|(?<=[。！？；])")
_RU_WORD = re.compile(r"[а-яёa-z0-9]+", re.I)


@functools.lru_cache(maxsize=1)
def _morph():
    # Imported lazily: only Russian text needs it (pymorphy3 + pymorphy3-dicts-ru, requirements.txt).
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@functools.lru_cache(maxsize=50_000)
def _ru_lemmas(word: str) -> FrozenSet[str]:
    """The word and every dictionary form pymorphy3 knows for it ("диабетом" → диабет)."""
    word = word.lower().replace("ё", "е")
    if not _CYRILLIC.search(word):
        return frozenset({word})
    return frozenset({word} | {parse.normal_form.replace("ё", "е") for parse in _morph().parse(word)})


_SURNAME_ENDING = re.compile(r"(?:ов|ев|ёв|ова|ева|ёва|ын|ына)$")


@functools.lru_cache(maxsize=10_000)
def _ru_is_name(word: str, term_word: FrozenSet[str]) -> bool:
    """A capitalised word that can be a name: "Раков" is a surname, not the plural of рак;
    "Гриппов", unknown to the dictionary, has a surname's ending (but "Инсулин" is the term)."""
    if not (word[:1].isupper() and word[1:].islower() and _CYRILLIC.search(word)):
        return False
    if _SURNAME_ENDING.search(word.lower()) and word.lower().replace("ё", "е") not in term_word:
        return True
    return any({"Name", "Surn", "Patr"} & set(str(parse.tag).replace(" ", ",").split(","))
               for parse in _morph().parse(word))


def _script(term: str) -> str:
    if _HAN.search(term):
        return "han"
    return "cyrillic" if _CYRILLIC.search(term) else "latin"


@dataclasses.dataclass(frozen=True)
class _Matcher:
    """Where the terms of one list are in a sentence: Latin terms by regular expression (plural
    "s" allowed), Han terms as substrings (Chinese has no spaces), Russian terms word by word
    by their dictionary forms (pymorphy3), so every inflection matches."""

    latin: Optional[re.Pattern]
    han: Optional[re.Pattern]
    russian: Dict[str, Tuple[Tuple[FrozenSet[str], ...], ...]]

    @classmethod
    def of(cls, terms: Iterable[str]) -> "_Matcher":
        by_script: Dict[str, List[str]] = {"latin": [], "han": [], "cyrillic": []}
        for term in terms:
            by_script[_script(term)].append(term)
        latin = _term_pattern(by_script["latin"]) if by_script["latin"] else None
        han = re.compile("|".join(re.escape(t) for t in _longest_first(by_script["han"])), re.I) \
            if by_script["han"] else None
        index: Dict[str, List[Tuple[FrozenSet[str], ...]]] = {}
        for term in by_script["cyrillic"]:
            words = tuple(_ru_lemmas(word) for word in _RU_WORD.findall(term))
            if words:
                for key in words[0]:
                    index.setdefault(key, []).append(words)
        return cls(latin, han, {key: tuple(value) for key, value in index.items()})

    def spans(self, sentence: str) -> List[Tuple[int, int]]:
        found: List[Tuple[int, int]] = []
        if self.latin is not None:
            found.extend(m.span() for m in self.latin.finditer(sentence))
        if self.han is not None and _HAN.search(sentence):
            found.extend(m.span() for m in self.han.finditer(sentence))
        if self.russian and _CYRILLIC.search(sentence):
            found.extend(self._russian_spans(sentence))
        return sorted(set(found))

    def _russian_spans(self, sentence: str) -> Iterable[Tuple[int, int]]:
        words = [(m.start(), m.end(), m.group()) for m in _RU_WORD.finditer(sentence)]
        for i, (start, _, word) in enumerate(words):
            candidates = {term for key in _ru_lemmas(word) for term in self.russian.get(key, ())}
            for term in candidates:
                last = i + len(term) - 1
                if last >= len(words):
                    continue
                if not all(term[k] & _ru_lemmas(words[i + k][2]) for k in range(1, len(term))):
                    continue
                if any(sentence[words[j - 1][1]:words[j][0]].strip(" \t-") for j in range(i + 1, last + 1)):
                    continue  # the words of a term follow one another
                if any(_ru_is_name(words[i + k][2], term[k]) for k in range(len(term))):
                    continue
                yield start, words[last][1]


@dataclasses.dataclass(frozen=True)
class Terms:
    diagnoses: Tuple[str, ...]
    analytes: Tuple[str, ...]
    medications: Tuple[str, ...]

    @functools.cached_property
    def diagnosis_re(self) -> re.Pattern:
        return _term_pattern(t for t in self.diagnoses if _script(t) == "latin")

    @functools.cached_property
    def analyte_re(self) -> re.Pattern:
        return _term_pattern(t for t in self.analytes if _script(t) == "latin")

    @functools.cached_property
    def medication_re(self) -> re.Pattern:
        return _term_pattern(t for t in self.medications if _script(t) == "latin")

    @functools.cached_property
    def diagnosis_matcher(self) -> _Matcher:
        return _Matcher.of(self.diagnoses)

    @functools.cached_property
    def analyte_matcher(self) -> _Matcher:
        return _Matcher.of(self.analytes)

    @functools.cached_property
    def medication_matcher(self) -> _Matcher:
        return _Matcher.of(self.medications)

    @functools.cached_property
    def analyte_value_re(self) -> re.Pattern:
        names = "|".join(_term_regex(t) for t in _longest_first(t for t in self.analytes if _script(t) == "latin"))
        return re.compile(
            rf"{_NOT_AFTER_WORD}(?<!-)(?:{names or '(?!)'})(?:e?s)?{_NOT_BEFORE_WORD}(?!-)\s*(?:\([^)]{{0,12}}\))?\s*"
            rf"(?:(?:level|levels|result|reading|value|is|was|were|of|came back|=|:|-|是|为)\s*){{0,3}}"
            rf"(?:(?:<|>|≤|≥)\s*)?(?:{_NUMBER}(?!\s?(?:am|pm|h\b|:\d))|{_VERDICT}\b)", re.I)


# After a Russian or Chinese lab test's name: its value or its verdict ("холестерин 6,1",
# "уровень глюкозы натощак 7,8", "гемоглобин понижен", "血糖7.8", "胆固醇偏高").
_RU_VERDICT = (r"(?:(?:повышен|понижен|снижен|высок|низк|завышен|занижен|превышен)[а-яё]*|в\s+норме|в\s+пределах\s+нормы"
               r"|выше\s+нормы|ниже\s+нормы|норм(?:а|альн[а-яё]*)\b|с\s+отклонени[а-яё]*|отклонени[а-яё]*)")
_ZH_VERDICT = (r"(?:偏高|偏低|升高|降低|过高|过低|很高|较高|较低|太高|太低|不正常|异常|正常|超标|不达标|达标"
               rf"|(?:高|低)(?![{_HAN_CHARS}]))")
_VALUE_AFTER_RU_ZH = re.compile(
    r"\s*(?:\([^)]{0,12}\))?\s*"
    r"(?:(?:уровень|уровня|составляет|составил[аио]?|равен|равна|равно|был[аио]?|в\s+крови|в\s+сыворотке|в\s+моче"
    r"|натощак|у\s+вас|сейчас|水平|值|为|是|检测|结果|测得|：|:|=|-|—)\s*){0,3}"
    rf"(?:(?:<|>|≤|≥)\s*)?(?:{_NUMBER}(?!\s?(?::\d|ч\b|час|点|时|分钟|月|日|号|年|次|元|руб|раз|лет|год|мин|%))"
    rf"|{_RU_VERDICT}|{_ZH_VERDICT})", re.I)
_RU_VERDICT_BEFORE = re.compile(r"\b(?:повышенн|пониженн|сниженн|высок|низк)[а-яё]*\s+(?:уровень\s+|содержание\s+)?$", re.I)


def _longest_first(terms: Iterable[str]) -> List[str]:
    return sorted(set(terms), key=len, reverse=True)


def _term_regex(term: str) -> str:
    return r"\s+".join(re.escape(part) for part in term.split())


def _term_pattern(terms: Iterable[str]) -> re.Pattern:
    names = "|".join(_term_regex(t) for t in _longest_first(terms))
    return re.compile(rf"{_NOT_AFTER_WORD}(?<!-)(?:{names or '(?!)'})(?:e?s)?{_NOT_BEFORE_WORD}(?!-)", re.I)


def load_terms(path: Optional[Path] = None) -> Terms:
    """The term lists of ``content/phi_terms.yml`` (errors name the file and the key)."""
    path = Path(path or TERMS_FILE)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    lists = {}
    for key in ("diagnoses", "analytes", "medications"):
        values = data.get(key) or []
        if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            raise ValueError(f"{path}: '{key}' must be a list of terms")
        lists[key] = tuple(v.strip().lower() for v in values)
    return Terms(**lists)


@functools.lru_cache(maxsize=1)
def default_terms() -> Terms:
    return load_terms()


def _normalise(text: str) -> str:
    # NFKC: full-width digits, "µ" variants and non-breaking spaces compare like plain ones.
    return unicodedata.normalize("NFKC", text).replace("\u00b5", "µ").replace("\u03bc", "µ")


_VACCINE_AFTER = re.compile(r"\s*(?:vaccin\w*|jabs?\b|shots?\b|疫苗|прививк|вакцин)", re.I)
_VACCINE_BEFORE = re.compile(r"(?:vaccin\w*|прививк[а-яё]*|вакцин[а-яё]*)\s+(?:against|for|от|против)\s+$"
                             r"|(?:预防|接种)[^，。,.]{0,4}$", re.I)


def _vaccination(sentence: str, start: int, end: int) -> bool:
    """"flu vaccine", "прививка от гриппа", "流感疫苗": a vaccination says nothing of an illness."""
    return bool(_VACCINE_AFTER.match(sentence, end) or _VACCINE_BEFORE.search(sentence[max(0, start - 30):start]))


def _about_patient(sentence: str, start: int, end: int) -> bool:
    before = sentence[max(0, start - 120):start]  # every cue before a term is short: bounded work
    if _CONDITIONAL_BEFORE.search(before) or _RU_ZH_CONDITIONAL_BEFORE.search(before):
        return False  # "if you have diabetes, bring your meter": advice, not a finding
    reach = 20 if _HAN.search(sentence) else 60  # a Han character carries about a word
    window = sentence[max(0, start - reach):min(len(sentence), end + reach)]
    if re.search(r"\byour\s+(?:[\w-]+\s+){0,2}$", before, re.I):
        return True  # "your diabetes", "your HIV test"
    if re.search(r"\byou(?:'ve|'re| have| had| are| were)\s+(?:got\s+|been\s+|now\s+|still\s+)?(?:a\s+|an\s+|mild\s+|severe\s+|early\s+)?$",
                 before, re.I):
        return True  # "you have diabetes", "you are pregnant"
    if any(pattern.search(before) for pattern in _RU_BEFORE_RES) or _ZH_BEFORE_RE.search(before):
        return True  # "у вас диабет", "ваш анализ на ВИЧ", "您患有糖尿病", "您的HIV检测"
    return any(cue.search(window) for cue in _ABOUT_PATIENT_RES)


def _analyte_value(sentence: str, terms: Terms) -> bool:
    """A Russian or Chinese lab test named with its value or verdict."""
    for start, end in terms.analyte_matcher.spans(sentence):
        if _VALUE_AFTER_RU_ZH.match(sentence, end) or _RU_VERDICT_BEFORE.search(sentence[:start]):
            return True
    return False


def check(text: Optional[str], strict: bool = False, terms: Optional[Terms] = None,
          where: str = "") -> List[Finding]:
    """The findings in ``text`` (empty list: nothing clinical found). ``strict`` for
    template / notification parameters: any listed term counts."""
    if not text:
        return []
    terms = terms or default_terms()
    text = _normalise(text)
    rules: List[str] = []

    def add(rule: str) -> None:
        if rule not in rules:
            rules.append(rule)

    if _LAB_VALUE_RE.search(text) or terms.analyte_value_re.search(text):
        add(LAB_VALUE)
    for sentence in _SENTENCE_SPLIT.split(text):
        if not sentence:
            continue
        analytes = terms.analyte_matcher.spans(sentence)
        if _PERCENT_RE.search(sentence) and (analytes or _PERCENT_CONTEXT_RE.search(sentence)):
            add(LAB_VALUE)
        if analytes and _analyte_value(sentence, terms):
            add(LAB_VALUE)
        icd_view = sentence.translate(_CYRILLIC_LOOKALIKES)
        if _ICD_SHORT_RE.search(icd_view) and _ICD_CUE_RE.search(sentence):
            add(ICD10)
        if _ICD_DOTTED_RE.search(icd_view):
            add(ICD10)
        if any(pattern.search(sentence) for pattern in _DIAGNOSIS_PHRASE_RES):
            add(DIAGNOSIS)
        for start, end in terms.diagnosis_matcher.spans(sentence):
            if strict or (not _vaccination(sentence, start, end) and _about_patient(sentence, start, end)):
                add(DIAGNOSIS)
                break
        medications = terms.medication_matcher.spans(sentence)
        for start, end in medications:
            if strict or _about_patient(sentence, start, end):
                add(MEDICATION)
                break
        if (_UNITS_RE.search(sentence) or _RU_ZH_UNITS_RE.search(sentence)) and _INSULIN_RE.search(sentence):
            add(MEDICATION_DOSE)
        if medications and (_MED_AMOUNT_RE.search(sentence) or _RU_ZH_MED_AMOUNT_RE.search(sentence)
                            or _MED_FREQUENCY_RE.search(sentence)):
            add(MEDICATION_DOSE)  # "paracetamol 1 g four times a day"
    if any(pattern.search(text) for pattern in _TEST_RESULT_RES):
        add(TEST_RESULT)
    if (_DOSE_RE.search(text) or _RU_DOSE_RE.search(text) or _ZH_DOSE_RE.search(text)
            or any(pattern.search(text) for pattern in _DOSE_FREQUENCY_RES)):
        add(MEDICATION_DOSE)
    return [Finding(rule, where) for rule in rules]


def check_fields(fields: Dict[str, Any], strict: bool = True, terms: Optional[Terms] = None) -> List[Finding]:
    """Check every string in a (nested) dict of parameters; ``where`` names the field."""
    findings: List[Finding] = []
    for where, value in _strings(fields, ""):
        findings.extend(check(value, strict=strict, terms=terms, where=where))
    return findings


def _strings(value: Any, where: str):
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


# ── outbound WhatsApp messages ───────────────────────────────────────────────────────────
# Keys of a Graph API payload that are not read by the patient (ids, payloads, links).
_NOT_SHOWN: FrozenSet[str] = frozenset({"to", "type", "messaging_product", "recipient_type", "id", "payload",
                                        "url", "link", "code", "index", "sub_type", "name", "language",
                                        "policy", "context", "message_id", "status", "filename",
                                        "biz_opaque_callback_data"})


def check_payload(payload: Dict[str, Any], terms: Optional[Terms] = None) -> List[Finding]:
    """Check what the patient would read in a Graph API message payload: free text in
    sentence mode, template parameters in strict mode."""
    findings: List[Finding] = []
    for where, value, in_template_params in _shown_strings(payload, "", False):
        findings.extend(check(value, strict=in_template_params, terms=terms, where=where))
    return findings


def _shown_strings(value: Any, where: str, in_params: bool):
    if isinstance(value, str):
        yield where, value, in_params
    elif isinstance(value, dict):
        for key, item in value.items():
            if key in _NOT_SHOWN:
                continue
            child = f"{where}.{key}" if where else str(key)
            yield from _shown_strings(item, child, in_params or (key == "parameters" and "template" in where))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _shown_strings(item, f"{where}[{index}]", in_params)


def rules_of(findings: Iterable[Finding]) -> List[str]:
    return sorted({finding.rule for finding in findings})
