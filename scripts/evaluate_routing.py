"""`make evaluate-routing`: what a patient gets for a document question the NLU takes for a
curated FAQ topic — the curated text, or the approved passage that answers it
(clinic/knowledge/curated.py) — per language.

The trained model (models/assistant.tar.gz; `make train`) reads every question of
tests/data/knowledge/questions.<lang>.yml (the evaluation, never used for choosing) and of
tuning.yml (where the rule was chosen). A question the NLU sends to a FAQ topic with an
approved text (actions/faq.py: intent ``faq``, its ResponseSelector confidence at least
MIN_ANSWER_CONFIDENCE) got that text before the rule; with it, the documents answer when an
approved passage answers better. Printed per language and set: how many were sent to a
curated text, how many now get the expected passage, a wrong passage, or keep the text.
Then the other side: the FAQ topics' own training examples (data/nlu/<lang>/faq.yml, each
taken as its labelled topic) that would now leave their curated text for a passage
(``--verbose`` lists them, with the passage).

The documents are those of `make evaluate-knowledge` (the demo documents approved, 1,000
passages in all).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from evaluate_knowledge import DATA, build  # noqa: E402

from actions.faq import approved_answer  # noqa: E402
from clinic.clock import utcnow  # noqa: E402
from clinic.knowledge.answers import DocumentAnswers  # noqa: E402
from clinic.knowledge.demo import LANGUAGES  # noqa: E402
from clinic.language.responses import select_variation  # noqa: E402

MODEL = ROOT / "models" / "assistant.tar.gz"


@dataclasses.dataclass
class Question:
    language: str
    text: str
    expected: Optional[str]  # a phrase of the right passage; None: the documents do not answer it


@dataclasses.dataclass
class Routed:
    question: Question
    response: str  # the curated text the NLU chose
    diverted: bool
    quote: str = ""
    right: bool = False


def questions(kind: str) -> List[Question]:
    out = []
    for language in LANGUAGES:
        data = (yaml.safe_load((DATA / "tuning.yml").read_text(encoding="utf-8"))[language] if kind == "tuning"
                else yaml.safe_load((DATA / f"questions.{language}.yml").read_text(encoding="utf-8")))
        out += [Question(language, q, e) for q, e in data["answerable"]]
        out += [Question(language, q, None) for q in data["unanswerable"]]
    return out


def curated_text(domain: Dict[str, Any], response: str, language: str) -> Optional[str]:
    variation = select_variation(domain["responses"][response], {"language": language})
    return variation.get("text") if variation else None


def route(documents: DocumentAnswers, domain: Dict[str, Any], question: Question, response: str) -> Routed:
    text = curated_text(domain, response, question.language)
    answer = documents.better_than_curated(question.text, question.language, text) if text else None
    if answer is None:
        return Routed(question, response, False)
    right = question.expected is not None and answer.passage is not None and question.expected in answer.passage.text
    return Routed(question, response, True, answer.quote, right)


async def parse_all(model: Path, texts: List[str]) -> List[Dict[str, Any]]:
    from rasa.core.agent import Agent  # slow to import: only when the model is read

    agent = Agent.load(str(model))
    return [await agent.parse_message(text) for text in texts]


def faq_examples(language: str) -> List[Tuple[str, str]]:
    """(text, ``utter_faq/<topic>``) of the language's FAQ training examples, read as Rasa reads them."""
    from rasa.shared.nlu.training_data.loading import load_data

    return [(m.get("text"), f"utter_{m.get_full_intent()}")
            for m in load_data(str(ROOT / "data" / "nlu" / language / "faq.yml")).intent_examples]


def report(label: str, routed: List[Routed], totals: Dict[str, int], verbose: bool) -> None:
    print(f"\n{label}: questions the NLU sends to a curated FAQ text, and what they get now")
    print(f"{'language':9} {'questions':>9} {'to a text':>9} {'answerable':>10} {'→ right passage':>15} "
          f"{'→ wrong':>7} {'keep text':>9} {'unanswerable':>12} {'→ a passage':>11}")
    for language in LANGUAGES:
        rows = [r for r in routed if r.question.language == language]
        answerable = [r for r in rows if r.question.expected is not None]
        unanswerable = [r for r in rows if r.question.expected is None]
        print(f"{language:9} {totals[language]:>9} {len(rows):>9} {len(answerable):>10} "
              f"{sum(r.diverted and r.right for r in answerable):>15} "
              f"{sum(r.diverted and not r.right for r in answerable):>7} "
              f"{sum(not r.diverted for r in answerable):>9} {len(unanswerable):>12} "
              f"{sum(r.diverted for r in unanswerable):>11}")
        if verbose:
            for r in rows:
                outcome = ("right passage" if r.right else "WRONG passage") if r.diverted else "keeps the text"
                print(f"    {outcome:15} {r.response:24} {r.question.text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--verbose", action="store_true", help="list every question and example")
    args = parser.parse_args()
    if not args.model.exists():
        print(f"{args.model} not found: `make train` first", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["LOG_LEVEL"] = "WARNING"  # Rasa: no debug line per parsed message
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("rasa", "tensorflow", "absl", "jieba"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from rasa.shared.core.domain import Domain
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)

    domain = Domain.load(str(ROOT / "domain")).as_dict()
    with tempfile.TemporaryDirectory() as directory:
        kb = build(Path(directory))
        documents = DocumentAnswers(kb.sessions, clock=utcnow)
        documents.searcher.answer("warm up", "en")
        sets = {kind: questions(kind) for kind in ("evaluation", "tuning")}
        parses = asyncio.run(parse_all(args.model, [q.text for kind in sets for q in sets[kind]]))
        at = 0
        for kind, asked in sets.items():
            routed = []
            for question, parse in zip(asked, parses[at:at + len(asked)], strict=True):
                response = approved_answer(parse, domain) if parse["intent"]["name"] == "faq" else None
                if response is not None:
                    routed.append(route(documents, domain, question, response))
            at += len(asked)
            totals = {language: sum(q.language == language for q in asked) for language in LANGUAGES}
            report(f"{kind} questions", routed, totals, args.verbose)
        print("\nthe FAQ topics' own examples (data/nlu/<lang>/faq.yml) that would leave their curated text:")
        for language in LANGUAGES:
            examples = [(text, response) for text, response in faq_examples(language) if response in domain["responses"]]
            left = [(text, response, routed.quote) for text, response in examples
                    if (routed := route(documents, domain, Question(language, text, None), response)).diverted]
            print(f"    {language}: {len(left)} of {len(examples)}")
            if args.verbose:
                for text, response, quote in left:
                    print(f"        {response:24} {text}  →  {quote[:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
