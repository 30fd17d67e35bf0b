"""scripts/quiet_rasa.py drops exactly the start-up warnings this project expects and keeps
every other one (issue 12, defect 12: `make run` printed ~45 warnings a newcomer read as
errors)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from rasa.shared.utils.io import raise_warning

from scripts import quiet_rasa as q

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def quiet_loggers():
    yield
    for name, _ in q.QUIET_LOG_LINES:  # leave the other tests' loggers as they were
        logger = logging.getLogger(name)
        for added in [f for f in logger.filters if isinstance(f, q.QuietLogLines)]:
            logger.removeFilter(added)


@pytest.fixture
def project(tmp_path) -> Path:
    """A small project: one response sent by an action, one asked by a form, one by
    nobody; a placeholder intent, a real one with one example; the lookup readers."""
    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "a.py").write_text(textwrap.dedent('''
        def run(dispatcher):
            dispatcher.utter_message(response="utter_sent_by_action")
            # response="utter_in_a_comment" is not sent
            return "utter_only_a_string"
    '''))
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "d.yml").write_text(
        "forms:\n  f:\n    required_slots: [s]\nresponses:\n  utter_faq/curated:\n    - text: hi\n")
    (tmp_path / "data" / "nlu").mkdir(parents=True)
    (tmp_path / "data" / "nlu" / "n.yml").write_text(textwrap.dedent('''
        nlu:
        - intent: forced_by_code
          examples: |
            - zqxforcedbycode
        - intent: typed_by_patients
          examples: |
            - hello there
        - intent: faq/curated
          examples: |
            - what are your hours
        - intent: faq/from_documents
          examples: |
            - how long does an MRI take
    '''))
    (tmp_path / "config.yml").write_text(
        "pipeline:\n  - name: RegexFeaturizer\n  - name: addons.lookup_entities.ScriptAwareRegexEntityExtractor\n")
    return tmp_path


def shown(root: Path, messages) -> list:
    """What Rasa would print for ``messages`` once the filters of ``root`` are installed."""
    with warnings.catch_warnings(record=True) as caught:  # the filters are restored after
        warnings.filterwarnings("once", category=UserWarning)  # what Rasa itself sets up
        q.install(root)
        for message in messages:
            raise_warning(message)
    return [str(w.message) for w in caught]


def test_expected_warnings_are_dropped(project):
    expected = [
        q.UNUSED_RESPONSE.format("utter_sent_by_action"),
        q.UNUSED_RESPONSE.format("utter_ask_s"),
        q.UNUSED_RESPONSE.format("utter_ask_f_s"),
        q.FEW_EXAMPLES.format("forced_by_code"),
        q.ENTITY_EXAMPLES_WITHOUT_EXTRACTOR + " To extract non-pretrained entities, add one of …",
        q.LOOKUP_TABLES_WITHOUT_FEATURES + " To make use of the features …",
        q.NO_FAQ_TEXT.format("faq/from_documents"),
    ]
    assert shown(project, expected) == []


def test_every_other_warning_is_kept(project):
    unexpected = [
        q.UNUSED_RESPONSE.format("utter_in_a_comment"),       # named in a comment only
        q.UNUSED_RESPONSE.format("utter_only_a_string"),      # a string, not response=…
        q.UNUSED_RESPONSE.format("utter_sent_by_action_2"),   # a longer name is another name
        q.FEW_EXAMPLES.format("typed_by_patients"),           # a real intent short of data
        "Intent 'forced_by_code' has only 0 training examples! Minimum is 2, training may fail.",
        "The intent 'forced_by_code' is not used in any story or rule.",
        "Slot auto-fill has been removed in 3.0 and replaced with a new explicit mechanism",
        q.NO_FAQ_TEXT.format("faq/curated"),                  # has a text: the warning would be news
        q.NO_FAQ_TEXT.format("faq/unknown_topic"),            # no training data: a typo somewhere
    ]
    assert shown(project, unexpected) == unexpected


def test_the_pipeline_warnings_come_back_without_the_components_that_make_them_wrong(project):
    (project / "config.yml").write_text("pipeline:\n  - name: RegexFeaturizer\n")
    messages = [q.ENTITY_EXAMPLES_WITHOUT_EXTRACTOR, q.LOOKUP_TABLES_WITHOUT_FEATURES]
    assert shown(project, messages) == messages


def test_the_project_itself_expects_what_its_training_printed():
    """The names of the real project (the warnings of a `rasa train` on it)."""
    sent = q.responses_sent_by_code(ROOT)
    assert {"utter_ask_booking_confirmed", "utter_ask_survey_comment", "utter_please_answer_yes_no",
            "utter_reschedule_same_service"} <= sent
    assert "utter_greet" not in sent  # used by rules: Rasa doesn't warn, nothing to drop
    assert {"long_message", "red_flag_check", "unsupported_language", "rate", "confirm_opt_in",
            "EXTERNAL_notification"} <= q.placeholder_intents(ROOT)
    assert "greet" not in q.placeholder_intents(ROOT)
    assert q.pipeline_reads_lookup_tables(ROOT)
    assert q.faq_topics_without_text(ROOT) == {"faq/examinations", "faq/clinic_rules"}


def test_only_the_named_log_lines_of_the_named_loggers_are_dropped(caplog):
    q.install(ROOT)
    with caplog.at_level(logging.INFO):
        logging.getLogger("alembic.runtime.migration").info("Context impl %s.", "SQLiteImpl")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade %s -> %s", "a", "b")
        logging.getLogger("alembic.runtime.plugins").info("setup plugin %s", "alembic.autogenerate.tables")
        logging.getLogger("pymorphy3.opencorpora_dict.wrapper").info("Loading dictionaries from %s", "/x")
        logging.getLogger("clinic.db").info("Context impl %s.", "SQLiteImpl")  # another logger
    assert [r.getMessage() for r in caplog.records] == ["Running upgrade a -> b", "Context impl SQLiteImpl."]
    q.install(ROOT)  # installing twice adds no second filter
    assert len(logging.getLogger("alembic.runtime.migration").filters) == 1


def test_pythonwarnings_applies_again_after_sanic_turned_deprecation_warnings_back_on():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # PYTHONWARNINGS
        warnings.filterwarnings("once", category=DeprecationWarning)    # sanic/app.py at import
        warnings.warn("shown: sanic's filter won", DeprecationWarning, stacklevel=1)
        q.honour_warnoptions(["ignore::DeprecationWarning"])
        warnings.warn("hidden again", DeprecationWarning, stacklevel=1)
        warnings.warn("other categories untouched", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["shown: sanic's filter won", "other categories untouched"]


def test_a_deprecation_that_is_also_a_user_warning_follows_pythonwarnings_after_rasas_setup():
    """pyparsing's PyparsingDeprecationWarning (via matplotlib) is both; Rasa's `once` for
    UserWarning came first, so it was shown during training despite PYTHONWARNINGS."""

    class PyparsingLikeDeprecation(UserWarning, DeprecationWarning):
        pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # PYTHONWARNINGS
        warnings.filterwarnings("once", category=UserWarning)           # Rasa's set-up
        q.quieten(ROOT, options=["ignore::DeprecationWarning"])
        warnings.warn("'setParseAction' deprecated - use 'set_parse_action'", PyparsingLikeDeprecation, stacklevel=1)
        warnings.warn("a warning nobody expects", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a warning nobody expects"]


def test_sanic_really_does_that():
    """The reason for honour_warnoptions: if sanic stops doing it, it can go."""
    code = "import warnings, sanic; print(warnings.filters[0][:3])"
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "('once', None, <class 'DeprecationWarning'>)"


def test_rasa_through_the_script_validates_the_project_without_a_warning():
    """End to end: Rasa's own validator on the real project prints no warning at all (it
    printed 33 "not used in any story or rule" and the libraries' DeprecationWarnings)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", "RASA_TELEMETRY_ENABLED": "false",
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.quiet_rasa", "data", "validate", "--domain", "domain", "--data", "data",
         "--config", "config.yml"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=280)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Warning" not in output, output[-3000:]
