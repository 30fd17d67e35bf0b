"""Which `emergency` examples of the NLU training data no red-flag phrase catches, and which
examples of other intents a phrase would wrongly flag, per language: for whoever edits
content/red_flags/<language>.yml or data/nlu/<language>/safety.yml (docs/measurements.md).

    PYTHONPATH=. .venv/bin/python scripts/red_flag_coverage.py

An `emergency` example no phrase catches depends on the language model alone, which asks the
safety question only at high confidence; each one is either a phrase to add or a wording too
ambiguous for a phrase (listed in the language file's "known misses").
"""

from __future__ import annotations

import logging
import sys
from typing import List, Tuple

from rasa.shared.nlu.training_data.loading import load_data

from clinic.safety.red_flags import default_detector

LANGUAGES = ("en", "ru", "zh")


def examples(language: str) -> List[Tuple[str, str]]:
    return [(m.get("intent"), m.get("text"))
            for m in load_data(f"data/nlu/{language}").intent_examples]


def main() -> int:
    logging.disable(logging.WARNING)
    detector = default_detector()
    wrong = 0
    for language in LANGUAGES:
        rows = examples(language)
        emergencies = [text for intent, text in rows if intent == "emergency"]
        missed = [text for text in emergencies if not detector.detect(text)]
        flagged = [(intent, text) for intent, text in rows
                   if intent != "emergency" and detector.detect_all(text)]
        wrong += len(flagged)
        print(f"{language}: {len(emergencies)} emergency examples, {len(missed)} caught by no "
              f"phrase; {len(flagged)} examples of other intents flagged")
        for text in missed:
            print(f"  not caught: {text}")
        for intent, text in flagged:
            print(f"  FLAGGED ({intent}): {text}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
