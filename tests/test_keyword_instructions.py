"""Every keyword the assistant tells a patient to send works, deterministically, in every
language (issue 12, defect 2: after STOP the assistant said "To turn messages back on, just
send START", and "START" got "Sorry, I didn't quite understand").

The walk reads every text a patient can see: each variation of each response in
domain/*.yml, every string in content/*.yml and campaigns/*.yml, and the WhatsApp templates
(simulator/templates.py holds the clinic's approved texts). An *instruction* is a verb of
sending ("send", "type", "reply", "write", "say"; "напишите", "отправьте", "ответьте"…;
"发送", "回复", "输入", "说") followed, in the same sentence, by a quoted («…», “…”, "…",
「…」), bold (*menu*) or capitalised (STOP, СТАРТ) word. Words after "for example" are
examples of free text, not keywords.

Each instruction must be a keyword of content/keywords.yml that addons/language.py forces
whatever the classifier guesses (any case, with punctuation, whichever language the
conversation is in), for an intent the text means (PURPOSES: a response that starts telling
patients to send something must say here what for) and with a rule in data/rules; or be one
of a form's own answers (FORM_ANSWERS), checked with the form's own parser and never taken
by the keyword layer.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Callable, Dict, FrozenSet, Iterator, List, Optional, Set, Tuple

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from addons.language import LanguageDetector
from clinic.language.catalogue import default_catalogue
from clinic.language.keywords import default_keywords
from clinic.scheduling.answers import requested_change

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = default_catalogue()
KEYWORDS = default_keywords()

# ── what counts as an instruction ─────────────────────────────────────────────────────────
# Whole words for English and Russian (so "replied", "ответит" or "type of appointment" with
# no quoted word after it do not count); 说 ("say") only right before a quote, since it is
# part of many Chinese words (说明 "explanation").
_VERB = re.compile(
    r"(?i)\b(?:send|sending|type|reply|write|say)\b"
    r"|(?<![а-яё])(?:напишите|написать|отправьте|отправить|пришлите|прислать|ответьте|ответить"
    r"|скажите|сказать|введите|ввести)(?![а-яё])"
    r"|发送|回复|输入|说(?=\s*[“\"「«])")
# Capitalised words may touch Chinese characters ("回复STOP即可"), so no \b there.
_WORD = re.compile(
    r"\*([^*\n]{1,40})\*|「([^」\n]{1,40})」|“([^”\n]{1,40})”|\"([^\"\n]{1,40})\"|«([^»\n]{1,40})»"
    r"|(?<![A-Za-zА-Яа-яЁё])([A-ZА-ЯЁ]{3,})(?![A-Za-zА-Яа-яЁё])")
_SENTENCE_END = re.compile(r"[.!?。！？;；\n]")
_EXAMPLES = re.compile(r"(?i)for example|e\.g\.|such as|например|例如|比如")


def instructed_words(text: str) -> Set[str]:
    """The words ``text`` tells a patient to send."""
    words: Set[str] = set()
    for verb in _VERB.finditer(text):
        end = _SENTENCE_END.search(text, verb.end())
        clause = text[verb.end():end.start() if end else len(text)]
        example = _EXAMPLES.search(clause)
        if example:
            clause = clause[:example.start()]
        for match in _WORD.finditer(clause):
            word = next(group for group in match.groups() if group).strip()
            if "{" not in word:  # a placeholder ("*call {emergency_number}*") is not a word to send
                words.add(word)
    return words


# ── every text a patient sees ─────────────────────────────────────────────────────────────
@dataclasses.dataclass(frozen=True)
class Shown:
    key: str       # what PURPOSES / FORM_ANSWERS name: a response, "template:<name>", "<file>:<path>"
    variant: str   # which of its texts: a response's variation, a template's language
    text: str


def _language_of(variation: dict) -> str:
    for condition in variation.get("condition") or []:
        if condition.get("name") == "language" and condition.get("value") is not None:
            return condition["value"]
    return CATALOGUE.default


def _strings(node, path: str = "") -> Iterator[Tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


def shown_texts() -> Iterator[Shown]:
    for path in sorted((ROOT / "domain").glob("*.yml")):
        responses = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}
        for name, variations in responses.items():
            for index, variation in enumerate(variations):
                if variation.get("text"):
                    yield Shown(name, f"{_language_of(variation)} #{index}", str(variation["text"]))
    for folder in ("content", "campaigns"):
        for path in sorted((ROOT / folder).glob("*.yml")):
            if path.name == "keywords.yml":
                continue  # the keywords themselves, not a text patients read
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            for where, text in _strings(data):
                yield Shown(f"{folder}/{path.name}:{where}", "text", text)
    from simulator.templates import BUILTIN_TEMPLATES, BUILTIN_TRANSLATIONS

    def whole(texts: dict) -> str:  # a template message: header, body and footer together
        return "\n".join(texts[part] for part in ("header", "body", "footer") if isinstance(texts.get(part), str))

    for template in BUILTIN_TEMPLATES:
        if template["name"] == "hello_world":
            continue  # Meta's sample template ("…send a message from the Cloud API"), never the clinic's
        yield Shown(f"template:{template['name']}", str(template.get("language")), whole(template))
    for name, languages in BUILTIN_TRANSLATIONS.items():
        for language, texts in languages.items():
            yield Shown(f"template:{name}", language, whole(texts))


def instructions() -> Dict[str, Dict[str, Set[str]]]:
    """key → variant → the words that variant tells patients to send (variants with none
    are kept too: a language that forgets the instruction is a gap)."""
    found: Dict[str, Dict[str, Set[str]]] = {}
    for shown in shown_texts():
        found.setdefault(shown.key, {})[shown.variant] = instructed_words(shown.text)
    return {key: variants for key, variants in found.items() if any(variants.values())}


INSTRUCTIONS = instructions()

# ── what each instruction is for ──────────────────────────────────────────────────────────
# key → the purposes of its instructions; each purpose is the set of intents that serve it.
# Every variation must reach every purpose, and every word must serve one of them.
MENU = [frozenset({"menu"})]
OPT_OUT = [frozenset({"opt_out"})]
# Leaving a form: `stop` ("never mind", 算了) or a no (`deny`, «не надо»); both end it
# (data/rules/appointments.yml). Not `opt_out`, which would also end every reminder.
LEAVE_FORM = frozenset({"stop", "deny"})
PURPOSES: Dict[str, List[FrozenSet[str]]] = {
    "utter_you_are_welcome": MENU,
    "utter_anything_else": MENU,
    "utter_ask_rephrase": MENU,
    "utter_rating_thanks": MENU,
    "utter_rating_unrated": MENU,
    "utter_language_changed": MENU,
    "utter_erasure_cancelled": MENU,
    "utter_iamabot": [frozenset({"request_human"})],
    "utter_handoff_resolved": [frozenset({"request_human"})],
    "utter_ask_opt_in": OPT_OUT,
    "utter_opt_in_reminders_recorded": OPT_OUT,
    "utter_opt_out_recorded": [frozenset({"opt_in"})],
    "utter_opt_in_declined": [frozenset({"opt_in"})],
    "utter_tips_opt_out_recorded": [frozenset({"opt_out"}), frozenset({"opt_in"})],
    "utter_opt_in_recorded": [frozenset({"opt_out_tips"}), frozenset({"opt_out"})],
    "utter_booking_confirmed": [frozenset({"reschedule_appointment"}), frozenset({"cancel_appointment"})],
    "utter_reschedule_same_service": [LEAVE_FORM, frozenset({"book_appointment"})],
    "utter_please_answer_yes_no": [LEAVE_FORM],
    # The WhatsApp templates' footers: "Reply STOP to stop reminders".
    **{f"template:{name}": OPT_OUT for name in (
        "appointment_reminder_v2", "appointment_reminder", "visit_followup", "recall_reminder",
        "health_tip", "visit_survey", "service_survey")},
}

# Answers a form reads itself (not keywords): key → (the form's parser, what it must say).
FORM_ANSWERS: Dict[str, Tuple[Callable[[str], Optional[str]], str]] = {
    # "Type another day or time, or "another doctor"": validate_booking_form's requested_change.
    "utter_ask_booking_slot": (requested_change, "practitioner"),
}

# Known defects in files this change may not edit (reported to their owner); strict, so the
# fix turns the xfail into a failure that says to remove the entry.
KNOWN_DEFECTS: Dict[str, str] = {}


def _rule_intents() -> Set[str]:
    intents: Set[str] = set()

    def steps_of(node) -> Iterator[dict]:
        if isinstance(node, dict):
            if "intent" in node:
                yield node
            for value in node.values():
                yield from steps_of(value)
        elif isinstance(node, list):
            for value in node:
                yield from steps_of(value)

    for path in (ROOT / "data" / "rules").glob("*.yml"):
        for rule in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("rules") or []:
            intents |= {step["intent"] for step in steps_of(rule.get("steps") or [])}
    return intents


def _domain_intents() -> Set[str]:
    intents: Set[str] = set()
    for path in (ROOT / "domain").glob("*.yml"):
        for intent in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("intents") or []:
            intents.add(intent if isinstance(intent, str) else next(iter(intent)))
    return intents


RULE_INTENTS = _rule_intents()


def _param(key: str):
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[key])] if key in KNOWN_DEFECTS else []
    return pytest.param(key, marks=marks, id=key)


# ── the walk itself ───────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("text, words", [
    ("To turn messages back on, just send START.", {"START"}),
    ("如需重新开启消息，只需发送“开始”（或“START”）。", {"开始", "START"}),
    ("Чтобы отключить всё, отправьте СТОП (или STOP), а чтобы подписаться — СТАРТ (или START).",
     {"СТОП", "STOP", "СТАРТ", "START"}),
    ("Send \"stop tips\" to stop the tips only, or STOP to stop everything.", {"stop tips", "STOP"}),
    ("Type *menu* to see what I can do.", {"menu"}),
    ("好的，接下来我用中文和您交流。发送「菜单」即可查看我能做什么。", {"菜单"}),
    ("回复STOP即可停止提醒", {"STOP"}),
    ("Ответьте STOP, чтобы отключить напоминания", {"STOP"}),
    ("请先说“算了”，然后说“预约”。", {"算了", "预约"}),
    # Not instructions: an example of free text, a verb without a word, a placeholder, prose.
    ("Choose below or type it (for example \"blood test\").", set()),
    ("Someone from our team will reply to you here. What type of appointment is it?", set()),
    ("If you're in danger right now, *call {emergency_number}*.", set()),
    ("🕘 *Opening hours*\nMain site: 8:00-18:00", set()),
])
def test_the_walk_finds_what_a_text_tells_patients_to_send(text, words):
    assert instructed_words(text) == words


def test_the_walk_reads_every_language_and_source():
    assert INSTRUCTIONS["utter_opt_out_recorded"] == {
        "en #0": {"START"}, "ru #1": {"СТАРТ", "START"}, "zh #2": {"开始", "START"}}
    assert {"菜单"} == INSTRUCTIONS["utter_language_changed"]["zh #2"]
    assert "template:appointment_reminder_v2" in INSTRUCTIONS
    assert len(INSTRUCTIONS) >= 20, sorted(INSTRUCTIONS)


# ── every instruction works ───────────────────────────────────────────────────────────────
@pytest.mark.parametrize("key", [_param(k) for k in sorted(INSTRUCTIONS) if k not in FORM_ANSWERS])
def test_every_instruction_is_a_keyword_for_what_the_text_means(key):
    purposes = PURPOSES.get(key)
    assert purposes is not None, (
        f"{key} tells patients to send {sorted(set().union(*INSTRUCTIONS[key].values()))}: add its "
        "words to content/keywords.yml and say in PURPOSES (this file) which intent each one is for")
    meant = set().union(*purposes)
    for variant, words in sorted(INSTRUCTIONS[key].items()):
        reached = {word: KEYWORDS.intent_for(word) for word in words}
        unknown = sorted(word for word, intent in reached.items() if intent is None)
        assert not unknown, f"{key} ({variant}) tells patients to send {unknown}: add to content/keywords.yml"
        wrong = {word: intent for word, intent in reached.items() if intent not in meant}
        assert not wrong, f"{key} ({variant}): {wrong} reach another intent than {sorted(meant)}"
        missing = [sorted(p) for p in purposes if not p & set(reached.values())]
        assert not missing, f"{key} ({variant}) does not tell patients how to reach {missing}"


def test_every_declared_purpose_is_still_instructed():
    """Keeps PURPOSES honest: a response reworded to drop its instruction leaves here too."""
    stale = sorted(set(PURPOSES) - set(INSTRUCTIONS))
    assert not stale, f"no longer tell patients to send anything: {stale}"


def _form_answer_params():
    for key in sorted(FORM_ANSWERS):
        for variant in sorted(INSTRUCTIONS.get(key, {"(not found)": set()})):
            name = f"{key} {variant}"
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[name])] if name in KNOWN_DEFECTS else []
            yield pytest.param(key, variant, marks=marks, id=name)


@pytest.mark.parametrize("key, variant", _form_answer_params())
def test_a_forms_own_answers_are_read_by_the_form_not_taken_by_a_keyword(key, variant):
    parser, expected = FORM_ANSWERS[key]
    words = INSTRUCTIONS.get(key, {}).get(variant)
    assert words, f"{key} ({variant}) no longer names its answer"
    for word in words:
        assert KEYWORDS.intent_for(word) is None, f"the keyword layer would take {word!r} from the form"
        assert parser(word) == expected, f"{key} ({variant}) tells patients to write {word!r}; the form reads {parser(word)!r}"


def test_every_keyword_intent_is_in_the_domain_and_has_a_rule():
    intents = set(KEYWORDS.words.values())
    assert intents - _domain_intents() == set()
    assert intents - RULE_INTENTS == set(), "a keyword whose intent no rule answers is a dead end"
    assert set().union(*(set().union(*p) for p in PURPOSES.values())) - RULE_INTENTS == set()


# ── …through the NLU component, whatever the classifier guessed ───────────────────────────
INSTRUCTED_KEYWORDS = sorted({
    word for key, variants in INSTRUCTIONS.items() if key not in FORM_ANSWERS
    for words in variants.values() for word in words if KEYWORDS.intent_for(word)})


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector(CATALOGUE, KEYWORDS)


@pytest.mark.parametrize("word", INSTRUCTED_KEYWORDS)
def test_the_keyword_layer_forces_every_instructed_keyword(detector, word):
    expected = KEYWORDS.intent_for(word)
    for text in {word, word.upper(), word.lower(), word.capitalize(), f"{word}!", f" {word} 👍"}:
        for language in [None, *CATALOGUE.codes]:  # REST (no door) and each remembered language
            guess = {"name": "nlu_fallback", "confidence": 0.3}
            data = {"text": text, "intent": guess, "intent_ranking": [guess], "entities": []}
            if language:
                data["metadata"] = {"language": language}
            message = Message(data=data)
            detector.process([message])
            assert message.get("intent")["name"] == expected, (text, language, message.get("intent"))
