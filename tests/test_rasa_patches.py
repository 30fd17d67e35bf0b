"""The action-response validation patch (addons/rasa_patches.py) validates exactly as Rasa
does, but checks the constant schema only once."""

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

import addons  # noqa: F401  (applies the patch, as loading the model does)
from addons import rasa_patches


@pytest.fixture
def action():
    return RemoteAction("action_check_faq_answer", None)


def test_the_patch_is_installed():
    assert RemoteAction._validate_action_result is rasa_patches._validate_action_result


def test_valid_responses_pass(action):
    assert action._validate_action_result({"events": [{"event": "slot", "name": "x", "value": 1}],
                                            "responses": [{"text": "hi"}]})
    assert action._validate_action_result({})


@pytest.mark.parametrize("bad", [
    {"responses": "not a list"},
    {"events": [{"event": "no-such-event"}]},
    {"responses": [7]},
])
def test_invalid_responses_raise_rasas_error(action, bad):
    with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result(bad)
    # The same verdict as unpatched Rasa's jsonschema.validate.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, RemoteAction.action_response_format_spec())


def test_the_schema_is_checked_once_not_per_response(action, monkeypatch):
    checks = []
    validator_class = jsonschema.validators.validator_for(RemoteAction.action_response_format_spec())
    original = validator_class.check_schema
    monkeypatch.setattr(validator_class, "check_schema", classmethod(lambda cls, s: checks.append(s) or original(s)))
    monkeypatch.setattr(rasa_patches, "_validator", None)
    for _ in range(5):
        action._validate_action_result({"events": []})
    assert len(checks) == 1


# ── the most specific response variation wins ───────────────────────────────────────────
def _variation(text, **conditions):
    variation = {"text": text}
    if conditions:
        variation["condition"] = [{"type": "slot", "name": k, "value": v} for k, v in conditions.items()]
    return variation


RESPONSES = {"utter_emergency": [
    _variation("crisis en", red_flag_response="crisis"),
    _variation("emergency en"),
    _variation("emergency ru", language="ru"),
    _variation("crisis ru", language="ru", red_flag_response="crisis"),
]}


@pytest.mark.parametrize("slots, expected", [
    ({"language": "ru", "red_flag_response": "crisis"}, ["crisis ru"]),
    ({"language": "ru", "red_flag_response": "emergency"}, ["emergency ru"]),
    ({"language": None, "red_flag_response": "crisis"}, ["crisis en"]),
    ({"language": None, "red_flag_response": None}, ["emergency en"]),
])
def test_the_most_specific_matching_variation_wins(slots, expected):
    from rasa.core.nlg.generator import ResponseVariationFilter

    chosen = ResponseVariationFilter(RESPONSES).responses_for_utter_action("utter_emergency", "rest", slots)
    assert [v["text"] for v in chosen] == expected


def test_without_overlapping_conditions_rasa_chooses_as_before():
    from rasa.core.nlg.generator import ResponseVariationFilter

    responses = {"utter_x": [_variation("a", language="ru"), _variation("b", language="ru"),
                             _variation("c")]}
    unpatched = ResponseVariationFilter.responses_for_utter_action.__wrapped__
    for slots in ({"language": "ru"}, {"language": None}):
        patched = ResponseVariationFilter(responses).responses_for_utter_action("utter_x", "rest", slots)
        assert patched == unpatched(ResponseVariationFilter(responses), "utter_x", "rest", slots)
