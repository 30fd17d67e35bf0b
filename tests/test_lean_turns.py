"""addons/lean_turns.py predicts exactly what Rasa's own code predicts (issue 15).

Every test story (tests/stories, the same trackers `rasa test core` builds) is run through
the trained model's policies twice, with Rasa's own code (LEAN_TURNS=0) and with the
patch: at every action of every story the ensemble's prediction (policy, probabilities,
events, flags) must be the same. Then the same for one long conversation made of all the
test stories one after the other (a few hundred actions, far longer than any rule or
max_history), with the tracker rebuilt from its serialised events at every user message
as the SQL tracker store does, so both ways the patch reuses states (same objects within
a turn, equal events across turns) are compared with Rasa on long histories.
Uses models/assistant.tar.gz as it is (no training here).
"""

from __future__ import annotations

import math

import pytest

from addons import lean_turns
from tests.model_support import story_trackers_of


@pytest.fixture(scope="module")
def agent(model):
    # `model`: tests/conftest.py (trained first if needed, so a fresh clone runs these too).
    from rasa.core.agent import Agent

    lean_turns.apply()
    return Agent.load(str(model))


@pytest.fixture(scope="module")
def story_trackers(agent):
    return story_trackers_of(agent)


def without_time(event):
    return {k: v for k, v in event.as_dict().items() if k != "timestamp"}


def prediction_record(prediction):
    return {
        "policy": prediction.policy_name,
        "probabilities": list(prediction.probabilities),
        "events": [without_time(e) for e in prediction.events],
        "optional_events": [without_time(e) for e in prediction.optional_events],
        "end_to_end": prediction.is_end_to_end_prediction,
        "no_user": prediction.is_no_user_prediction,
        "hide_rule_turn": prediction.hide_rule_turn,
        "action_metadata": prediction.action_metadata,
    }


def predictions_along(agent, events, sender, rebuild_each_turn=False):
    """The ensemble's prediction before every ActionExecuted of `events`, the tracker
    growing event by event as in `rasa test` (and rebuilt from serialised events at every
    user message when `rebuild_each_turn`)."""
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    slots = agent.domain.slots
    tracker = DialogueStateTracker.from_events(sender, events[:1], slots)
    records = []
    for event in events[1:]:
        if rebuild_each_turn and isinstance(event, UserUttered):
            dumped = [e.as_dict() for e in tracker.events]
            tracker = DialogueStateTracker.from_dict(sender, dumped, slots)
        if isinstance(event, ActionExecuted):
            records.append((event.action_name, prediction_record(agent.processor._predict_next_with_tracker(tracker))))
        tracker.update(event)
    return records


def assert_same(rasa_records, lean_records, where):
    assert len(rasa_records) == len(lean_records), where
    for step, ((gold, a), (_, b)) in enumerate(zip(rasa_records, lean_records, strict=True)):
        context = f"{where}, action {step} ({gold})"
        pa, pb = a.pop("probabilities"), b.pop("probabilities")
        assert a == b, context
        assert max(pa) == pytest.approx(max(pb), abs=1e-6), context
        assert pa.index(max(pa)) == pb.index(max(pb)), context
        assert all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(pa, pb, strict=True)), context


def run(agent, monkeypatch, enabled, events_by_sender, rebuild_each_turn=False):
    monkeypatch.setenv("LEAN_TURNS", "1" if enabled else "0")
    lean_turns.CACHE.clear()
    return {sender: predictions_along(agent, events, sender, rebuild_each_turn)
            for sender, events in events_by_sender.items()}


def test_the_patch_is_installed_for_prediction_only(agent):
    from rasa.core.featurizers.tracker_featurizers import TrackerFeaturizer
    from rasa.core.policies.rule_policy import RulePolicy

    assert TrackerFeaturizer.__dict__["_create_states"].__func__ is lean_turns._create_states
    # Rasa's own code while RulePolicy's training predicts; `train` itself is not wrapped
    # (Rasa's graph validation reads its return annotation).
    assert hasattr(RulePolicy._run_prediction_on_trackers, "__wrapped__")
    assert not hasattr(RulePolicy.train, "__wrapped__")
    # RulePolicy needs one state more than its longest rule; max-history policies their own.
    rule_policy = next(p for p in _policies(agent) if type(p).__name__ == "RulePolicy")
    assert 3 <= lean_turns.rule_states_needed(rule_policy) <= 40


def _policies(agent):
    nodes = agent.processor.graph_runner._instantiated_nodes.values()
    return [node._component for node in nodes]


@pytest.mark.model
def test_every_test_story_gets_the_same_predictions(agent, story_trackers, monkeypatch):
    events = {f"story-{i}": list(t.events) for i, t in enumerate(story_trackers)}
    rasa = run(agent, monkeypatch, False, events)
    lean = run(agent, monkeypatch, True, events)
    assert sum(len(r) for r in rasa.values()) > 1000
    for i, tracker in enumerate(story_trackers):
        assert_same(rasa[f"story-{i}"], lean[f"story-{i}"], tracker.sender_id)
    # The cache was used: most predictions extended the states of the one before.
    assert lean_turns.CACHE.hits > lean_turns.CACHE.misses


@pytest.mark.model
def test_a_long_conversation_gets_the_same_predictions(agent, story_trackers, monkeypatch):
    from rasa.shared.core.events import ActionExecuted

    chained = list(story_trackers[0].events)[:1]
    for tracker in story_trackers:
        chained += list(tracker.events)[1:]
        if sum(isinstance(e, ActionExecuted) for e in chained) > 400:
            break
    events = {"long": chained}
    rasa = run(agent, monkeypatch, False, events, rebuild_each_turn=True)
    lean = run(agent, monkeypatch, True, events, rebuild_each_turn=True)
    # Hundreds of predictions (how many of the 400+ actions are predicted depends on which
    # stories the chain took: the loading order of tests/stories differs between checkouts).
    assert len(rasa["long"]) >= 300
    assert_same(rasa["long"], lean["long"], "chained test stories")


def test_rasa_train_still_accepts_the_graph():
    """Rasa validates every component's `train`/run methods (with their annotations) before
    training: the patches must leave them as they are (a wrapped RulePolicy.train once broke
    `rasa train`)."""
    from rasa.engine.recipes.recipe import Recipe
    from rasa.engine.validation import validate
    from rasa.shared.data import TrainingType
    from rasa.shared.importers.importer import TrainingDataImporter

    from tests.model_support import PROJECT_ROOT

    lean_turns.apply()
    importer = TrainingDataImporter.load_from_config(
        str(PROJECT_ROOT / "config.yml"), str(PROJECT_ROOT / "domain"), [str(PROJECT_ROOT / "data")])
    config = importer.get_config()
    graph = Recipe.recipe_for_name(config.get("recipe")).graph_config_for_recipe(
        config, {}, training_type=TrainingType.BOTH)
    validate(graph)
