"""`rasa` without the start-up noise a newcomer reads as errors (issue 12, defect 12).

``bash scripts/train.sh`` and ``make run`` start Rasa through this script, with the same
arguments as ``rasa``::

    python -m scripts.quiet_rasa train --domain domain --data data ...

It drops exactly the warnings and log lines this project expects, each explained below and
each keyed to its exact message and, where there is one, the exact name it is about. Every
other warning is shown as before (tests/test_quiet_rasa.py checks both).

1. ``The utterance 'utter_x' is not used in any story or rule.`` Rasa's validator reads
   stories and rules only. Responses a custom action sends
   (``dispatcher.utter_message(response="utter_x")``, the standard pattern for "that date is
   in the past") or a form asks (``utter_ask_[<form>_]<slot>``) are used all the same.
   Dropped only for the names found sent in actions/ or asked by a form in domain/ (the rule
   of scripts/validate.py); a response nobody sends still warns.
2. ``Intent 'x' has only 1 training examples!`` for intents no patient types: forced by an
   NLU component (long_message, red_flag_check, unsupported_language), pushed by the
   scheduler (EXTERNAL_*) or sent by a button (rate, confirm_opt_in). Rasa needs one example
   per intent, so data/nlu gives each a ``zqx…`` token no patient would type. Dropped only
   for intents whose every example is such a token.
3. ``…training data consisting of entity examples, but your NLU configuration does not
   include an entity extractor trained on your training data`` and ``…consisting of lookup
   tables, but your NLU configuration does not include any components that uses the
   features created from the lookup table``. Rasa only knows its own learned extractors.
   Here the `team` lookup table is read by RegexFeaturizer (a feature for the classifier) and
   by ScriptAwareRegexEntityExtractor, which takes its entity names from the annotated
   examples (``use_only_entities``), as EntitySynonymMapper takes its synonyms (config.yml).
   Dropped only while config.yml's pipeline has both components.
4. Library DeprecationWarnings: scripts/env.sh sets ``PYTHONWARNINGS=ignore::DeprecationWarning``,
   but importing sanic (Rasa's web server) puts ``once`` for every DeprecationWarning in front
   of it (sanic/app.py), so they all came back. Your own PYTHONWARNINGS is applied again after
   that import: ``PYTHONWARNINGS=default bash scripts/train.sh`` still shows them.
5. INFO lines libraries log on every start: pymorphy3's "Loading dictionaries from …" and
   "format: …, revision: …", alembic's "setup plugin …", "Context impl …." and "Will assume
   … DDL.". A logging filter on exactly those loggers and messages.
6. ``Unable to fetch responses for faq/x …`` whenever the ResponseSelector picks a FAQ topic
   with no ``utter_faq/x`` in the domain. Here that is a choice, not a mistake: such a topic
   (faq/examinations, faq/clinic_rules) is answered from the clinic's approved documents
   (actions/faq.py finds no text, data/rules/knowledge.yml searches the documents). Dropped
   only for the ``faq/<topic>`` intents with training examples and no ``utter_faq/<topic>``
   response in domain/.
"""

from __future__ import annotations

import ast
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Set, Tuple

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Rasa's own wording (rasa/validator.py, rasa/shared/nlu/training_data/training_data.py,
# rasa/graph_components/validators/default_recipe_validator.py; Rasa 3.6).
UNUSED_RESPONSE = "The utterance '{}' is not used in any story or rule."
FEW_EXAMPLES = "Intent '{}' has only 1 training examples! Minimum is 2, training may fail."
ENTITY_EXAMPLES_WITHOUT_EXTRACTOR = (
    "You have defined training data consisting of entity examples, but your NLU configuration "
    "does not include an entity extractor trained on your training data.")
LOOKUP_TABLES_WITHOUT_FEATURES = (
    "You have defined training data consisting of lookup tables, but your NLU configuration "
    "does not include any components that uses the features created from the lookup table.")
# The components that make 3. expected (config.yml).
LOOKUP_READERS = ({"RegexFeaturizer"},
                  {"addons.lookup_entities.ScriptAwareRegexEntityExtractor", "RegexEntityExtractor"})
NO_FAQ_TEXT = ("Unable to fetch responses for {} This means that there is likely an issue with the "
               "training data.Please make sure you have added responses for this intent.")
PLACEHOLDER_EXAMPLE = re.compile(r"zqx[a-z]+")
# (logger, message template): 5.
QUIET_LOG_LINES = (
    ("pymorphy3.opencorpora_dict.wrapper", "Loading dictionaries from %s"),
    ("pymorphy3.opencorpora_dict.wrapper",
     "format: %(format_version)s, revision: %(source_revision)s, updated: %(compiled_at)s"),
    ("alembic.runtime.plugins", "setup plugin %s"),
    ("alembic.runtime.migration", "Context impl %s."),
    ("alembic.runtime.migration", "Will assume %s DDL."),
)


def _yaml_files(folder: Path) -> Iterable[dict]:
    for path in sorted(folder.rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            yield data


def responses_sent_by_code(root: Path = PROJECT_ROOT) -> Set[str]:
    """Responses actions send by name (``response="utter_x"``) or forms ask."""
    sent: Set[str] = set()
    for path in (root / "actions").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.keyword) and node.arg == "response"
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                sent.add(node.value.value)
    for domain in _yaml_files(root / "domain"):
        for form, body in (domain.get("forms") or {}).items():
            for slot in (body or {}).get("required_slots") or []:
                sent |= {f"utter_ask_{slot}", f"utter_ask_{form}_{slot}"}
    return sent


def placeholder_intents(root: Path = PROJECT_ROOT) -> Set[str]:
    """Intents whose every training example is a ``zqx…`` token (2. above)."""
    examples: dict = {}
    for data in _yaml_files(root / "data" / "nlu"):
        for block in data.get("nlu") or []:
            if isinstance(block, dict) and "intent" in block:
                lines = [line.strip()[2:].strip() for line in str(block.get("examples") or "").splitlines()
                         if line.strip().startswith("- ")]
                examples.setdefault(block["intent"], []).extend(lines)
    return {intent for intent, lines in examples.items()
            if lines and all(PLACEHOLDER_EXAMPLE.fullmatch(line) for line in lines)}


def faq_topics_without_text(root: Path = PROJECT_ROOT) -> Set[str]:
    """``faq/<topic>`` intents with training examples and no ``utter_faq/<topic>`` (6. above)."""
    topics = {block["intent"] for data in _yaml_files(root / "data" / "nlu") for block in data.get("nlu") or []
              if isinstance(block, dict) and str(block.get("intent", "")).startswith("faq/")}
    texts = {name for domain in _yaml_files(root / "domain") for name in (domain.get("responses") or {})}
    return {topic for topic in topics if f"utter_{topic}" not in texts}


def pipeline_reads_lookup_tables(root: Path = PROJECT_ROOT) -> bool:
    config = yaml.safe_load((root / "config.yml").read_text(encoding="utf-8")) or {}
    names = {step.get("name") for step in config.get("pipeline") or [] if isinstance(step, dict)}
    return all(names & readers for readers in LOOKUP_READERS)


def expected_warnings(root: Path = PROJECT_ROOT) -> List[str]:
    """Regular expressions (matched from the start, as ``warnings`` does) of 1.-3. and 6."""
    patterns = [re.escape(UNUSED_RESPONSE.format(name)) + r"\Z" for name in sorted(responses_sent_by_code(root))]
    patterns += [re.escape(FEW_EXAMPLES.format(name)) + r"\Z" for name in sorted(placeholder_intents(root))]
    patterns += [re.escape(NO_FAQ_TEXT.format(name)) + r"\Z" for name in sorted(faq_topics_without_text(root))]
    if pipeline_reads_lookup_tables(root):
        # Rasa appends what to add to the configuration: only the first sentence is matched.
        patterns += [re.escape(ENTITY_EXAMPLES_WITHOUT_EXTRACTOR), re.escape(LOOKUP_TABLES_WITHOUT_FEATURES)]
    return patterns


class QuietLogLines(logging.Filter):
    """Drops the records of one logger whose message template is one of ``templates``."""

    def __init__(self, templates: Iterable[str]) -> None:
        super().__init__()
        self.templates = frozenset(templates)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.templates


def honour_warnoptions(options: Optional[List[str]] = None) -> None:
    """Apply PYTHONWARNINGS / -W again, in front of what imports added since (4. above)."""
    for option in options if options is not None else sys.warnoptions:
        try:
            warnings._setoption(option)  # how Python applies -W itself; stable since 3.0
        except warnings._OptionError:  # type: ignore[attr-defined]
            pass  # Python already said so at start-up


def install(root: Path = PROJECT_ROOT) -> Tuple[int, int]:
    """Install 1.-3., 5. and 6.; returns (warning filters, logging filters) added. Call it after
    Rasa configures warnings: Rasa puts ``once`` for every UserWarning in front."""
    patterns = expected_warnings(root)
    for pattern in patterns:
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)
    by_logger: dict = {}
    for name, template in QUIET_LOG_LINES:
        by_logger.setdefault(name, []).append(template)
    for name, templates in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietLogLines) for f in logger.filters):
            logger.addFilter(QuietLogLines(templates))
    return len(patterns), len(by_logger)


def quieten(root: Path = PROJECT_ROOT, options: Optional[List[str]] = None) -> None:
    """Everything above, once Rasa has configured warnings and logging."""
    # Again: Rasa put `once` for every UserWarning in front, and pyparsing's
    # PyparsingDeprecationWarning is both a UserWarning and a DeprecationWarning.
    honour_warnoptions(options)
    install(root)


def main(argv: Optional[List[str]] = None) -> int:
    import sanic  # noqa: F401 - imported first so that 4. can undo what its import does

    honour_warnoptions()
    import rasa.__main__ as rasa_main

    configure = rasa_main.configure_logging_and_warnings

    def configure_then_quieten(*args, **kwargs) -> None:
        configure(*args, **kwargs)
        quieten()

    rasa_main.configure_logging_and_warnings = configure_then_quieten
    sys.argv = ["rasa", *(sys.argv[1:] if argv is None else argv)]
    rasa_main.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
