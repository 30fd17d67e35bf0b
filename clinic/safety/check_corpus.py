"""Check a language's red-flag test corpus against the phrase lists.

    python -m clinic.safety.check_corpus ru

Prints every ``must_flag`` message not caught (or not with its category), every
``must_not_flag`` message that raised anything, and every ``must_check`` message whose
context (negated / hypothetical / historical) was not recognised, then a summary. Exit
status 1 when anything is wrong, so clinicians and CI read the same verdict.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import yaml

from clinic.safety.red_flags import RedFlagDetector, default_detector
from clinic.settings import PROJECT_ROOT

CORPUS_DIR = PROJECT_ROOT / "tests" / "data" / "red_flags"


def problems(language: str, detector: Optional[RedFlagDetector] = None) -> List[str]:
    detector = detector or default_detector()
    corpus = yaml.safe_load((CORPUS_DIR / f"{language}.yml").read_text(encoding="utf-8"))
    found: List[str] = []
    for item in corpus.get("must_flag") or []:
        hits = detector.detect(item["text"])
        if item["category"] not in {m.category.id for m in hits}:
            got = ", ".join(f"{m.category.id}/{m.context}" for m in detector.detect_all(item["text"]))
            found.append(f"MISSED ({item['category']}; got: {got or 'nothing'}): {item['text']}")
    for item in corpus.get("must_not_flag") or []:
        item = item if isinstance(item, dict) else {"text": str(item)}
        hits = detector.detect_all(item["text"])
        if hits:
            what = ", ".join(f"{m.category.id} via {m.language}:{m.phrase!r}" for m in hits)
            found.append(f"FALSE ALARM ({what}): {item['text']}")
    for item in corpus.get("must_check") or []:
        assessment = detector.assess(item["text"])
        contexts = {(m.category.id, m.context) for m in assessment.matches}
        if not assessment.needs_check or (item["category"], item["context"]) not in contexts:
            got = ", ".join(f"{c}/{k}" for c, k in sorted(contexts))
            found.append(f"CONTEXT ({item['category']}/{item['context']}; got: {got or 'nothing'}): "
                         f"{item['text']}")
    return found


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m clinic.safety.check_corpus LANGUAGE  (e.g. en, ru, zh)")
        return 2
    language = argv[0]
    path = CORPUS_DIR / f"{language}.yml"
    if not path.exists():
        print(f"no corpus at {path}")
        return 2
    corpus = yaml.safe_load(path.read_text(encoding="utf-8"))
    found = problems(language)
    for line in found:
        print(line)
    sizes = {key: len(corpus.get(key) or []) for key in ("must_flag", "must_not_flag", "must_check")}
    kinds = {kind: sum(1 for line in found if line.startswith(kind)) for kind in ("MISSED", "FALSE ALARM", "CONTEXT")}
    print(f"{language}: {sizes['must_flag']} must_flag, {sizes['must_not_flag']} must_not_flag, "
          f"{sizes['must_check']} must_check -> {kinds['MISSED']} missed, {kinds['FALSE ALARM']} false alarms, "
          f"{kinds['CONTEXT']} context errors")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
