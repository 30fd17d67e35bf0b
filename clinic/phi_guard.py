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
_NUMBER = r"\d+(?:[.,]\d+)?"
_LAB_UNITS = (
    r"mg/dl|mg/l|g/dl|g/l|mmol/mol|mmol/l|µmol/l|umol/l|nmol/l|pmol/l|ng/ml|ng/l|pg/ml|µg/l|ug/l"
    r"|mcg/l|miu/ml|miu/l|mu/l|iu/ml|iu/l|u/l|meq/l|ml/min(?:/1[.,]73\s?m2)?|cells/µl|cells/ul"
    r"|cells/mm3|/µl|/ul|/mm3|mm\s?hg|bpm|fl|copies/ml"
    r"|(?:x|×|\*)\s?10\s?(?:\^|\*\*)?\s?(?:9|12|6)\s?/\s?l|x\s?10e(?:9|12)/l"
)
_LAB_VALUE_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?(?:{_LAB_UNITS})(?![a-z])", re.I)
_PERCENT_RE = re.compile(rf"(?<![\w.]){_NUMBER}\s?%")
_VERDICT = r"(?:high|low|raised|elevated|abnormal|normal|borderline|deranged|out of range|too high|too low)"
_RESULT_NOUNS = r"(?:test|tests|result|results|swab|screen|screening|scan|biopsy|culture|smear|pcr|x-ray|mri|ct|ultrasound|blood work|bloods)"
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
]
_ICD_DOTTED_RE = re.compile(r"\b[A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4}\b")
_ICD_SHORT_RE = re.compile(r"\b[A-TV-Z][0-9][0-9AB]\b")
_ICD_CUE_RE = re.compile(r"\b(?:icd(?:-?10)?|diagnos\w*|dx|code)\b", re.I)
_DOSE_RE = re.compile(
    rf"(?<![\w/]){_NUMBER}\s?(?:mg|mcg|µg|ug|micrograms?|milligrams?|ml|mls|millilitres?|milliliters?|iu)\b(?!\s?/)",
    re.I)
_UNITS_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?units?\b", re.I)
_MED_AMOUNT_RE = re.compile(rf"(?<![\w/]){_NUMBER}\s?(?:g|grams?)\b", re.I)
_COUNT = r"(?:\d+|one|two|three|four|five|half(?:\s+a)?|a|an)"
_FORM = r"(?:tablets?|tabs?|pills?|capsules?|caps?|puffs?|drops?|sachets?|injections?|spoonfuls?|teaspoons?|patch(?:es)?|doses?)"
_FREQUENCY = (r"(?:once|twice|three times|four times|\d+\s+times|daily|a day|per day|every\s+\w+|each (?:morning|evening|night|day)"
              r"|at night|at bedtime|in the morning|in the evening|before meals|after meals|with food|bd|bid|tds|tid|qds|qid|od|prn|as needed)")
_DOSE_FREQUENCY_RES = [
    re.compile(rf"\b{_COUNT}\s+{_FORM}\b(?:\s+[\w-]+){{0,3}}?\s+{_FREQUENCY}\b", re.I),
    re.compile(rf"\b(?:take|takes|taking|took|use|inhale|inject|apply)\s+{_COUNT}\s+{_FORM}\b", re.I),
]
# A sentence is "about the patient" when it has one of these around the term.
_ABOUT_PATIENT_RES = [
    re.compile(r"\bdiagnos(?:is|ed|es|tic)\b|\bdx\b|\bconfirmed\b|\bconsistent with\b|\bsuggestive of\b|\bsigns of\b"
               r"|\bindicat(?:es|ing|ed|ion of)\b|\bshows?\b|\bshowed\b|\brevealed\b|\bcame back\b|\btested\b", re.I),
    re.compile(r"\b(?:he|she|they|patient|the patient|your (?:son|daughter|child|husband|wife|partner|mother|father))"
               r"\s+(?:has|had|have|is|was|are)\b", re.I),
    re.compile(r"\b(?:prescri(?:bed|ption)|treatment|medication|medicine|dose|dosage|refill)\s+(?:for|of)\b", re.I),
    re.compile(r"\byou(?:'re| are| were)\s+(?:on|taking|prescribed)\b", re.I),
]
_CONDITIONAL_BEFORE = re.compile(r"\b(?:if|in case|whether|when|unless|anyone|people who|patients who|those who)\b[^.?!]{0,40}$",
                                 re.I)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\n])\s+")


@dataclasses.dataclass(frozen=True)
class Terms:
    diagnoses: Tuple[str, ...]
    analytes: Tuple[str, ...]
    medications: Tuple[str, ...]

    @functools.cached_property
    def diagnosis_re(self) -> re.Pattern:
        return _term_pattern(self.diagnoses)

    @functools.cached_property
    def analyte_re(self) -> re.Pattern:
        return _term_pattern(self.analytes)

    @functools.cached_property
    def medication_re(self) -> re.Pattern:
        return _term_pattern(self.medications)

    @functools.cached_property
    def analyte_value_re(self) -> re.Pattern:
        names = "|".join(_term_regex(t) for t in _longest_first(self.analytes))
        return re.compile(
            rf"(?<![\w-])(?:{names})(?:e?s)?(?![\w-])\s*(?:\([^)]{{0,12}}\))?\s*"
            rf"(?:(?:level|levels|result|reading|value|is|was|were|of|came back|=|:|-)\s*){{0,3}}"
            rf"(?:(?:<|>|≤|≥)\s*)?(?:{_NUMBER}(?!\s?(?:am|pm|h\b|:\d))|{_VERDICT}\b)", re.I)


def _longest_first(terms: Iterable[str]) -> List[str]:
    return sorted(set(terms), key=len, reverse=True)


def _term_regex(term: str) -> str:
    return r"\s+".join(re.escape(part) for part in term.split())


def _term_pattern(terms: Iterable[str]) -> re.Pattern:
    names = "|".join(_term_regex(t) for t in _longest_first(terms))
    return re.compile(rf"(?<![\w-])(?:{names})(?:e?s)?(?![\w-])", re.I)


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


def _about_patient(sentence: str, start: int, end: int) -> bool:
    before = sentence[:start]
    if _CONDITIONAL_BEFORE.search(before):
        return False  # "if you have diabetes, bring your meter": advice, not a finding
    window = sentence[max(0, start - 60):min(len(sentence), end + 60)]
    if re.search(r"\byour\s+(?:[\w-]+\s+){0,2}$", before, re.I):
        return True  # "your diabetes", "your HIV test"
    if re.search(r"\byou(?:'ve|'re| have| had| are| were)\s+(?:got\s+|been\s+|now\s+|still\s+)?(?:a\s+|an\s+|mild\s+|severe\s+|early\s+)?$",
                 before, re.I):
        return True  # "you have diabetes", "you are pregnant"
    return any(cue.search(window) for cue in _ABOUT_PATIENT_RES)


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
        if _PERCENT_RE.search(sentence) and (terms.analyte_re.search(sentence)
                                             or re.search(r"\b(?:saturation|level|reading)\b", sentence, re.I)):
            add(LAB_VALUE)
        if _ICD_SHORT_RE.search(sentence) and _ICD_CUE_RE.search(sentence):
            add(ICD10)
        for match in terms.diagnosis_re.finditer(sentence):
            if strict or _about_patient(sentence, match.start(), match.end()):
                add(DIAGNOSIS)
                break
        for match in terms.medication_re.finditer(sentence):
            if strict or _about_patient(sentence, match.start(), match.end()):
                add(MEDICATION)
                break
        if _UNITS_RE.search(sentence) and re.search(r"\binsulin\b", sentence, re.I):
            add(MEDICATION_DOSE)
        if terms.medication_re.search(sentence) and (_MED_AMOUNT_RE.search(sentence)
                                                     or re.search(rf"\b{_FREQUENCY}\b", sentence, re.I)):
            add(MEDICATION_DOSE)  # "paracetamol 1 g four times a day"
    if any(pattern.search(text) for pattern in _TEST_RESULT_RES):
        add(TEST_RESULT)
    if _ICD_DOTTED_RE.search(text):
        add(ICD10)
    if _DOSE_RE.search(text) or any(pattern.search(text) for pattern in _DOSE_FREQUENCY_RES):
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
