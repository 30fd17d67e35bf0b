"""The Rasa project as a whole: validation, test stories, and the trained model."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.model_support import rasa

CORPUS = yaml.safe_load(Path("tests/data/red_flag_corpus.yml").read_text(encoding="utf-8"))


def test_data_validates_without_warnings():
    """scripts/validate.py: Rasa's validator with no warning left unexplained."""
    result = subprocess.run([sys.executable, "scripts/validate.py"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_the_validate_script_still_catches_unused_responses():
    """The allowance covers only responses the code really sends."""
    sys.path.insert(0, "scripts")
    try:
        from validate import problems_in, responses_sent_by_code
    finally:
        sys.path.pop(0)
    sent = responses_sent_by_code()
    assert "utter_ask_booking_service" in sent
    line = "UserWarning: The utterance '{}' is not used in any story or rule."
    assert problems_in(line.format("utter_ask_booking_service"), sent) == []
    assert problems_in(line.format("utter_nobody_sends_this"), sent) != []


@pytest.mark.model
def test_every_test_story_passes(trained_model, tmp_path):
    result = rasa(
        "test", "core", "--model", str(trained_model), "--stories", "tests/stories",
        "--fail-on-prediction-errors", "--out", str(tmp_path),
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-2000:] + details)


@pytest.fixture(scope="module")
def agent(trained_model):
    from rasa.core.agent import Agent

    return Agent.load(str(trained_model))


def parse(agent, text):
    return asyncio.run(agent.parse_message(text))


@pytest.mark.model
def test_red_flags_reach_emergency_through_the_whole_pipeline(agent):
    missed, classifier_wrong = [], 0
    for case in CORPUS["must_flag"]:
        result = parse(agent, case["text"])
        if result["intent"]["name"] != "emergency":
            missed.append(case["text"])
        if (result.get("red_flags") or {}).get("overridden_intent") != "emergency":
            classifier_wrong += 1
    assert missed == []
    # Report how often the safety net did work the classifier would not have done.
    print(f"\nsafety net overrode the classifier on {classifier_wrong}/{len(CORPUS['must_flag'])}")


@pytest.mark.model
def test_detector_entities_fill_the_emergency_slots(agent):
    result = parse(agent, "I don't want to live anymore, I'm thinking of killing myself")
    entities = {e["entity"]: e["value"] for e in result["entities"]}
    assert result["intent"]["name"] == "emergency"
    assert entities["red_flag_response"] == "crisis"


@pytest.mark.model
@pytest.mark.parametrize(
    "text, team",
    [("can I talk to someone in billing", "billing"), ("i need the front desk", "reception")],
)
def test_team_entity_is_extracted_and_normalised(agent, text, team):
    result = parse(agent, text)
    assert {e["entity"]: e["value"] for e in result["entities"]}.get("team") == team


@pytest.mark.model
def test_gibberish_falls_back(agent):
    assert parse(agent, "qwxz blorp vvv")["intent"]["name"] == "nlu_fallback"
