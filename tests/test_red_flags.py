"""The red-flag detector (Rasa-free) on the clinician-reviewed phrase list."""

from pathlib import Path

import pytest
import yaml

from clinic.safety.red_flags import RedFlagDataError, RedFlagDetector, default_detector, normalise

CORPUS = yaml.safe_load(
    (Path(__file__).parent / "data" / "red_flag_corpus.yml").read_text(encoding="utf-8")
)


@pytest.fixture(scope="module")
def detector() -> RedFlagDetector:
    return default_detector()


@pytest.mark.parametrize("case", CORPUS["must_flag"], ids=lambda c: c["text"][:50])
def test_red_flag_messages_are_caught(detector, case):
    categories = [m.category.id for m in detector.detect(case["text"])]
    assert case["category"] in categories


@pytest.mark.parametrize("text", CORPUS["must_not_flag"], ids=lambda t: t[:50])
def test_ordinary_messages_are_not_flagged(detector, text):
    assert detector.detect(text) == []


def test_corpus_covers_every_category(detector):
    covered = {case["category"] for case in CORPUS["must_flag"]}
    assert {c.id for c in detector.categories} <= covered


def small(phrases, response="emergency"):
    return RedFlagDetector.from_data(
        {"categories": {"test": {"label": "Test", "response": response, "phrases": phrases}}}
    )


def test_words_match_by_lemma_and_ignore_case_and_punctuation():
    detector = small(["heavy bleed"])
    assert detector.detect("HEAVY BLEEDING!!!")
    assert detector.detect("it's heavy, bleeding")  # punctuation between words is ignored
    assert not detector.detect("heavy breathing")


def test_contractions_are_normalised():
    detector = small(["can not breathe"])
    for text in ["I can't breathe", "i cant breathe", "I cannot breathe", "I can’t breathe"]:
        assert detector.detect(text), text


def test_gap_stands_for_up_to_three_words():
    detector = small(["pain in * chest"])
    assert detector.detect("pain in chest")
    assert detector.detect("pain in my chest")
    assert detector.detect("pain in my upper left chest")  # exactly three words
    assert not detector.detect("pain in my arm and then later my chest")  # too far apart


def test_negation_is_deliberately_not_interpreted():
    # A missed emergency costs more than an unneeded safety message.
    assert small(["chest pain"]).detect("no chest pain, just a question")


def test_one_match_per_category_in_order_of_appearance():
    detector = RedFlagDetector.from_data(
        {
            "categories": {
                "a": {"phrases": ["chest pain"]},
                "b": {"phrases": ["kill myself"], "response": "crisis"},
            }
        }
    )
    matches = detector.detect("I want to kill myself and I have chest pain and chest pain")
    assert [(m.category.id, m.category.response) for m in matches] == [
        ("b", "crisis"),
        ("a", "emergency"),
    ]


def test_matches_report_the_character_span_of_the_words():
    text = "Please help, my DAD can’t breathe!!"
    [match] = small(["can not breathe"]).detect(text)
    assert text[match.start : match.end] == "can’t breathe"


def test_empty_and_emoji_only_messages():
    detector = small(["chest pain"])
    assert detector.detect("") == []
    assert detector.detect("   ") == []
    assert detector.detect("🙏😊") == []


def test_normalise_drops_punctuation_and_emoji():
    assert normalise("Help!! 😱 He is not breathing.") == ["help", "he", "be", "not", "breathe"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "expected a 'categories' mapping"),
        ({"categories": {"x": {"phrases": []}}}, "needs a list of phrases"),
        ({"categories": {"x": {"phrases": ["a"], "response": "panic"}}}, "response must be"),
        ({"categories": {"x": {"phrases": ["* chest"]}}}, "must start and end with a word"),
        ({"categories": {"x": {"phrases": ["chest *"]}}}, "must start and end with a word"),
    ],
)
def test_malformed_phrase_lists_are_rejected_with_a_reason(data, message):
    with pytest.raises(RedFlagDataError, match=message):
        RedFlagDetector.from_data(data)


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(RedFlagDataError, match="not found"):
        RedFlagDetector.from_file(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("categories: [unclosed")
    with pytest.raises(RedFlagDataError, match="not valid YAML"):
        RedFlagDetector.from_file(broken)


def test_project_list_is_documented_for_reviewers():
    data = yaml.safe_load(Path("content/red_flags.yml").read_text(encoding="utf-8"))
    assert data["reviewed_by"] and data["reviewed_on"]
    assert all(body.get("label") for body in data["categories"].values())
