"""addons/lean_tracker.py: a tracker's applied events and its copies are what Rasa's own
code gives (issue 15).

At every event of every test story (the trackers `rasa test core` builds), and of one long
conversation chaining them with new sessions, restarts, undos, a new loop name late and a
tracker with an event limit, the kept fold's ``applied_events()`` must be the very events
Rasa's method returns, and ``copy()`` must leave a tracker in the state Rasa's replaying copy
has. A copy changed afterwards must leave its original as it was.
Uses models/assistant.tar.gz as it is (for the test stories' trackers; no training here).
"""

from __future__ import annotations

import dataclasses

import pytest

from addons import lean_tracker
from tests.model_support import story_trackers_of

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def agent(model):
    from rasa.core.agent import Agent

    lean_tracker.apply()
    return Agent.load(str(model))


@pytest.fixture(scope="module")
def story_events(agent):
    return [list(t.events) for t in story_trackers_of(agent)]


def rasa_applied(tracker):
    return lean_tracker._ORIGINALS["applied_events"](tracker)


def rasa_copy(tracker):
    return lean_tracker._ORIGINALS["copy"](tracker)


def state_of(tracker) -> dict:
    """Everything a tracker holds, events and the latest messages by identity (a replay
    assigns the event objects themselves), empty placeholders by content."""
    from rasa.shared.core.trackers import EventVerbosity

    def message(event):
        if any(e is event for e in tracker.events):
            return ("event", id(event))
        return ("placeholder", type(event).__name__, {k: v for k, v in event.as_dict().items() if k != "timestamp"})

    return {
        "events": [id(e) for e in tracker.events],
        "slots": {name: (type(slot).__name__, dict(vars(slot))) for name, slot in tracker.slots.items()},
        "slots_type": type(tracker.slots).__name__,
        "paused": tracker._paused,
        "followup": tracker.followup_action,
        "latest_action": tracker.latest_action,
        "latest_message": message(tracker.latest_message),
        "latest_bot": message(tracker.latest_bot_utterance),
        "active_loop": dataclasses.asdict(tracker.active_loop) if tracker.active_loop else None,
        "ids": (tracker.sender_id, tracker.model_id, tracker.assistant_id, tracker.sender_source,
                tracker.is_rule_tracker, tracker._max_event_history),
        "current_state": {k: v for k, v in tracker.current_state(EventVerbosity.APPLIED).items()
                          if k != "events"},
    }


def differences(mine: dict, rasa: dict) -> list:
    """What differs, slot by slot, for a readable failure."""
    found = []
    for key in mine:
        if mine[key] == rasa[key]:
            continue
        if key == "slots":
            found += [(name, mine[key].get(name), rasa[key].get(name)) for name in set(mine[key]) | set(rasa[key])
                      if mine[key].get(name) != rasa[key].get(name)]
        else:
            found.append((key, mine[key], rasa[key]))
    return found


def check_along(events, slots, sender="story", max_event_history=None):
    """Grow a tracker event by event; at each, the patched methods against Rasa's."""
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = DialogueStateTracker(sender, slots, max_event_history=max_event_history)
    for position, event in enumerate(events):
        tracker.update(event)
        assert [id(e) for e in tracker.applied_events()] == [id(e) for e in rasa_applied(tracker)], position
        if position % 3 == 0 or position == len(events) - 1:  # copies cost a replay each
            mine, rasa = state_of(tracker.copy()), state_of(rasa_copy(tracker))
            assert mine == rasa, (position, differences(mine, rasa), events[max(0, position - 12):position + 1])
    return tracker


def test_the_methods_are_patched_for_plain_trackers_only(agent):
    from rasa.shared.core.generator import TrackerWithCachedStates
    from rasa.shared.core.trackers import DialogueStateTracker

    assert DialogueStateTracker.applied_events is lean_tracker.applied_events
    assert DialogueStateTracker.copy is lean_tracker.copy
    # The trackers Rasa trains on keep Rasa's code: no fold is kept on them.
    training = TrackerWithCachedStates("t", agent.domain.slots, domain=agent.domain)
    training.applied_events()
    assert lean_tracker._KEPT not in vars(training)


def test_every_test_story_gets_rasa_s_applied_events_and_copies(agent, story_events):
    for index, events in enumerate(story_events):
        check_along(events, agent.domain.slots, sender=f"story-{index}")


def test_a_long_conversation_with_sessions_restarts_undos_and_a_late_loop(agent, story_events):
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SessionStarted,
        SlotSet,
        UserUtteranceReverted,
    )

    chained = []
    for index, events in enumerate(story_events):
        chained.extend(events)
        if index % 7 == 3:
            chained.append(UserUtteranceReverted())
        if index % 11 == 5:
            chained.append(ActionReverted())
        if index % 13 == 8:
            chained.extend([ActionExecuted("action_session_start"), SessionStarted()])
        if index == 40:
            chained.append(Restarted())
    # A loop whose name appears only at the end: Rasa then treats its earlier executions
    # differently, so the kept fold must be folded again.
    chained[len(chained) // 2:len(chained) // 2] = [ActionExecuted("late_form"), SlotSet("requested_slot", None)]
    chained.extend([ActiveLoop("late_form"), ActionExecuted("late_form"), ActiveLoop(None)])
    assert len(chained) > 1200
    check_along(chained, agent.domain.slots, sender="long")
    # With an event limit the deque drops its oldest events: every call folds again.
    check_along(chained[:400], agent.domain.slots, sender="limited", max_event_history=50)


def test_a_tracker_given_other_events_is_folded_again(agent, story_events):
    from rasa.shared.core.conversation import Dialogue
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    def ids(events):
        return [id(e) for e in events]

    events = next(e for e in story_events if len(e) > 20)
    tracker = DialogueStateTracker.from_events("replaced", events, agent.domain.slots)
    assert ids(tracker.applied_events()) == ids(rasa_applied(tracker))
    # Rasa's own way of loading a conversation again (the same deque, events added).
    tracker.recreate_from_dialogue(Dialogue("replaced", events[:10]))
    assert ids(tracker.applied_events()) == ids(rasa_applied(tracker))
    # A new deque with fewer events.
    tracker.events = tracker._create_events(events[:10])
    assert ids(tracker.applied_events()) == ids(rasa_applied(tracker)) and len(tracker.applied_events()) <= 10
    # The last event replaced by another: same length, a different last event.
    tracker.events.pop()
    tracker.events.append(ActionExecuted("action_listen"))
    assert ids(tracker.applied_events()) == ids(rasa_applied(tracker))


def test_a_changed_copy_leaves_its_original_as_it_was(agent, story_events):
    from rasa.shared.core.events import ActiveLoop, SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker

    events = next(e for e in story_events if any(isinstance(x, ActiveLoop) and x.name for x in e))
    # Stop inside the form, so the original has an active loop to share by mistake.
    end = next(i for i, x in enumerate(events) if isinstance(x, ActiveLoop) and x.name) + 1
    original = DialogueStateTracker.from_events("changed", events[:end], agent.domain.slots)
    assert original.active_loop is not None
    before = state_of(original)
    duplicate = original.copy()
    slot = next(iter(agent.domain.slots)).name
    duplicate.update(SlotSet(slot, "changed in the copy"))
    duplicate.interrupt_loop(True)
    duplicate.reject_action(original.active_loop_name)
    duplicate.latest_action["action_name"] = "changed"
    assert state_of(original) == before
    assert duplicate.slots[slot].value == "changed in the copy" != original.slots[slot].value


def test_a_copy_carries_the_fold_and_goes_on_as_rasa(agent, story_events):
    """Rasa runs every action on a copy: the copy starts from the original's fold (no
    folding of the whole session again) and, grown further, still gives Rasa's events."""
    from rasa.shared.core.trackers import DialogueStateTracker

    first, *others = [e for e in story_events if len(e) > 15][:6]
    original = DialogueStateTracker.from_events("carried", first, agent.domain.slots)
    original.applied_events()
    duplicate = original.copy()
    carried = vars(duplicate)[lean_tracker._KEPT]
    assert carried.events is duplicate.events and carried.length == len(first)
    assert carried.applied is not vars(original)[lean_tracker._KEPT].applied  # its own list
    for events in others:
        for event in events:
            duplicate.update(event)
            assert [id(e) for e in duplicate.applied_events()] == [id(e) for e in rasa_applied(duplicate)]
    # The original did not move with its copy.
    assert [id(e) for e in original.applied_events()] == [id(e) for e in rasa_applied(original)]
    assert len(original.events) == len(first)


def test_a_form_s_temporary_tracker_is_rasa_s(agent, story_events):
    """At every event of every test story with the booking form, the tracker the form's
    validation is sent equals the one Rasa builds by replaying the session (events compared
    by content: each way makes its own three new events)."""
    from rasa.core.actions.forms import FormAction
    from rasa.shared.core.events import ActiveLoop, SlotSet
    from rasa.shared.core.trackers import DialogueStateTracker

    def comparable(tracker):
        state = state_of(tracker)
        state["events"] = [{k: v for k, v in e.as_dict().items() if k != "timestamp"} for e in tracker.events]
        for key in ("latest_message", "latest_bot"):
            state[key] = state[key][0]
        return state

    rasa_temporary = lean_tracker._ORIGINALS["FormAction._temporary_tracker"]
    form = FormAction("booking_form", None)
    compared = 0
    for index, events in enumerate(story_events):
        if not any(isinstance(e, ActiveLoop) and e.name == "booking_form" for e in events):
            continue
        tracker = DialogueStateTracker(f"form-{index}", agent.domain.slots)
        for event in events:
            tracker.update(event)
            extra = [SlotSet("booking_service", "gp_consultation")]
            tracker.applied_events()
            mine = form._temporary_tracker(tracker, extra, agent.domain)
            assert lean_tracker._KEPT in vars(mine)  # a copy (Rasa's way keeps no fold)
            assert comparable(mine) == comparable(rasa_temporary(form, tracker, extra, agent.domain)), index
            compared += 1
    assert compared > 100


def test_lean_turns_off_runs_rasa_s_code(agent, story_events, monkeypatch):
    from rasa.shared.core.trackers import DialogueStateTracker

    monkeypatch.setenv("LEAN_TURNS", "0")
    tracker = DialogueStateTracker.from_events("off", story_events[0], agent.domain.slots)
    tracker.applied_events()
    assert lean_tracker._KEPT not in vars(tracker)
