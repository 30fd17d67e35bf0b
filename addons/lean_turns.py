"""A dialogue turn whose cost does not grow with the conversation (issue 15), for Rasa 3.6.

Why: for every action it predicts, Rasa turns the *whole* conversation into dialogue
states, once per policy (RulePolicy twice: text, then intent; MemoizationPolicy; TEDPolicy),
by replaying every event into a fresh tracker (``Domain.states_for_tracker_history``). The
policies then use only the last few states: Memoization and TED the last ``max_history``
(5), RulePolicy the last as many as its longest rule has. In a profile of turn 181-200 of
one conversation this state building was ~40 % of Rasa's CPU (docs/measurements.md, "Lean
turns (issue 15)").

What changes, at prediction time only (training and the trackers Rasa trains on,
``TrackerWithCachedStates``, are untouched):

Installed when Rasa imports ``addons`` (loading the model); while RulePolicy's training
checks predict (on plain trackers too) Rasa's own code runs, so ``rasa train`` is untouched.

1. States are built incrementally. Per conversation and per way of building them (the
   flags of ``past_states``), the states up to the last action already seen are kept with
   the replayed tracker; a later call whose applied events extend the same events
   (identical objects, or equal events after the tracker was loaded again) only replays
   the new events. Anything else (an undo, a restart, a new session, another domain)
   rebuilds from the start, exactly as Rasa does.
2. Each featurizer gets only the states its policy reads: ``max_history`` for a max-history
   featurizer with a limit, and for RulePolicy one state more than its longest rule (a rule
   can only match within its own length; one more keeps the fallback key longer than any
   rule key, so it still names no rule). Fewer states, all of them identical to the last
   ones Rasa would build: the same predictions (tests/test_lean_turns.py runs every test
   story and a long chained conversation with and without this module).

Set ``LEAN_TURNS=0`` in Rasa's environment to run Rasa's own code (benchmarks compare both).
"""

from __future__ import annotations

import collections
import contextvars
import copy
import itertools
import json
import logging
import os
from typing import Any, Dict, List, Optional, Text

logger = logging.getLogger(__name__)

# How many prediction states the featurizer being called needs (None: all of them).
_needed_states: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("lean_turns_needed", default=None)
# Set while RulePolicy looks for a rule: one state more than its longest rule.
_rule_states: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("lean_turns_rule", default=None)
# Set while RulePolicy's training checks predict: Rasa's own code throughout.
_training: contextvars.ContextVar[bool] = contextvars.ContextVar("lean_turns_training", default=False)

MAX_CONVERSATIONS = 2000  # incremental states kept for this many (conversation, flags) pairs
_ORIGINALS: Dict[str, Any] = {}


def enabled() -> bool:
    return os.environ.get("LEAN_TURNS", "1") != "0"


# ── 1. incremental states ─────────────────────────────────────────────────────────────────
class _Fold:
    """Rasa's ``Domain.states_for_tracker_history`` as a resumable left fold.

    ``states`` holds the state of every prior tracker yielded at an ``ActionExecuted`` of
    ``applied``; ``tracker`` has all of ``applied`` replayed. The state after the last event
    (Rasa's final ``yield tracker, False``) is never kept: it is built fresh on every call."""

    __slots__ = ("applied", "tracker", "states", "last_ml_action_sub_state", "turn_was_hidden",
                 "raw_length", "raw_last", "loop_names", "domain")

    def __init__(self, tracker, domain=None):
        # The domain the states were built with (held, so its id is not reused while cached:
        # a reloaded model's domain starts a new fold).
        self.domain = domain
        self.applied: List[Any] = []
        # The tracker's own events when `applied` was computed: their number, the last one
        # (same object), and the loop names among them (see `_applied_events`).
        self.raw_length = 0
        self.raw_last = None
        self.loop_names: frozenset = frozenset()
        self.tracker = tracker.init_copy()
        self.states: List[Dict] = []
        self.last_ml_action_sub_state = None
        self.turn_was_hidden = False


class _StateCache:
    def __init__(self, size: int = MAX_CONVERSATIONS):
        self.size = size
        self.folds: "collections.OrderedDict[tuple, _Fold]" = collections.OrderedDict()
        self.hits = self.misses = 0

    def clear(self) -> None:
        self.folds.clear()
        self.hits = self.misses = 0

    def get(self, key: tuple) -> Optional[_Fold]:
        fold = self.folds.get(key)
        if fold is not None:
            self.folds.move_to_end(key)
        return fold

    def put(self, key: tuple, fold: _Fold) -> None:
        self.folds[key] = fold
        self.folds.move_to_end(key)
        while len(self.folds) > self.size:
            self.folds.popitem(last=False)


CACHE = _StateCache()


def _same_event(a, b) -> bool:
    return a is b or (type(a) is type(b) and a.timestamp == b.timestamp and a == b)


def _extends(applied: List[Any], known: List[Any]) -> bool:
    if len(applied) < len(known):
        return False
    # Newest first: a changed conversation usually differs at its end.
    for i in range(len(known) - 1, -1, -1):
        if not _same_event(applied[i], known[i]):
            return False
    return True


def _applied_events(tracker, fold: Optional[_Fold]) -> tuple:
    """``tracker.applied_events()``, without re-reading the whole history when the tracker
    only grew since ``fold`` (same tracker object, same last known event) by events that Rasa
    simply appends: no restart, new session, undo, loop execution or new loop name (those
    can change earlier applied events; then Rasa's own method runs). Returns (applied
    events, whether they extend ``fold.applied``)."""
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SessionStarted,
        UserUtteranceReverted,
    )

    events = tracker.events
    if fold is not None and fold.raw_length and len(events) >= fold.raw_length \
            and events[fold.raw_length - 1] is fold.raw_last:
        new = list(itertools.islice(events, fold.raw_length, None))
        loop_names = fold.loop_names
        simple = True
        for event in new:
            if isinstance(event, (Restarted, SessionStarted, ActionReverted, UserUtteranceReverted)):
                simple = False
            elif isinstance(event, ActiveLoop) and event.name and event.name not in loop_names:
                simple = False
            elif isinstance(event, ActionExecuted) and event.action_name in loop_names:
                simple = False
            if not simple:
                break
        if simple:
            return fold.applied + new, True
    return tracker.applied_events(), None


def _remember_events(fold: _Fold, tracker, extended: bool) -> None:
    from rasa.shared.core.events import ActiveLoop

    events = tracker.events
    if not extended:  # else no new loop name came (see `_applied_events`)
        fold.loop_names = frozenset(e.name for e in events if isinstance(e, ActiveLoop) and e.name)
    fold.raw_length = len(events)
    fold.raw_last = events[-1] if events else None


def _state_step(domain, fold: _Fold, tr, hide_rule_turn: bool, omit_unset_slots: bool,
                ignore_rule_only_turns: bool, rule_only_data, states: List[Dict]) -> Optional[Dict]:
    """One iteration of Rasa's loop (rasa/shared/core/domain.py, states_for_tracker_history,
    Rasa 3.6), with its loop variables held in ``fold``; returns the state or None (hidden)."""
    import rasa.shared.core.constants as core_constants

    # Rasa's own static helpers, called through their class: this is Rasa's loop, moved.
    from rasa.shared.core.domain import Domain

    if ignore_rule_only_turns:
        if not fold.turn_was_hidden:
            fold.last_ml_action_sub_state = Domain._get_prev_action_sub_state(tr)
        if not tr.followup_action and not tr.latest_action_name == tr.active_loop_name:
            fold.turn_was_hidden = hide_rule_turn
        if fold.turn_was_hidden:
            return None
    state = domain.get_active_state(tr, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        Domain._remove_rule_only_features(state, rule_only_data)
        if states:
            Domain._substitute_rule_only_user_input(state, states[-1])
        if fold.last_ml_action_sub_state:
            state[core_constants.PREVIOUS_ACTION] = fold.last_ml_action_sub_state
    return Domain._clean_state(state)


def incremental_states(tracker, domain, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                       rule_only_data: Optional[Dict[Text, Any]] = None) -> List[Dict]:
    """Rasa's states for the tracker's history, building only what is new since the last
    call for this conversation. The returned list and its states belong to the cache:
    callers copy what they hand on."""
    from rasa.shared.core.events import ActionExecuted

    key = (id(domain), tracker.sender_id, omit_unset_slots, ignore_rule_only_turns,
           json.dumps(rule_only_data, sort_keys=True, default=str) if rule_only_data else None)
    fold = CACHE.get(key)
    applied, extends = _applied_events(tracker, fold)
    if fold is None or fold.domain is not domain or not (extends or _extends(applied, fold.applied)):
        CACHE.misses += 1
        fold = _Fold(tracker, domain)
    else:
        CACHE.hits += 1
    tr = fold.tracker
    for event in applied[len(fold.applied):]:
        if isinstance(event, ActionExecuted):
            state = _state_step(domain, fold, tr, event.hide_rule_turn, omit_unset_slots,
                                ignore_rule_only_turns, rule_only_data, fold.states)
            if state is not None:
                fold.states.append(state)
        tr.update(event)
    fold.applied = applied
    _remember_events(fold, tracker, bool(extends))
    CACHE.put(key, fold)
    # Rasa's final `yield tracker, False`, on a copy of the loop variables: kept state stays
    # as it was before this state.
    final_fold = _Fold.__new__(_Fold)
    final_fold.last_ml_action_sub_state = fold.last_ml_action_sub_state
    final_fold.turn_was_hidden = fold.turn_was_hidden
    final = _state_step(domain, final_fold, tr, False, omit_unset_slots, ignore_rule_only_turns,
                        rule_only_data, fold.states)
    return fold.states + ([final] if final is not None else [])


# ── 2. only the states a policy reads ────────────────────────────────────────────────────
def _tail(states: List[Dict], needed: int) -> List[Dict]:
    """The last ``needed`` states not counting ``action_unlikely_intent`` ones (which ML
    featurizers drop before slicing), so the slice after dropping them is Rasa's."""
    from rasa.core.featurizers.tracker_featurizers import _is_prev_action_unlikely_intent_in_state

    count, start = 0, len(states)
    while start > 0 and count < needed:
        start -= 1
        if not _is_prev_action_unlikely_intent_in_state(states[start]):
            count += 1
    return states[start:]


def _create_states(tracker, domain, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                   rule_only_data: Optional[Dict[Text, Any]] = None) -> List[Dict]:
    from rasa.shared.core.trackers import DialogueStateTracker

    needed = _needed_states.get()
    if needed is None or type(tracker) is not DialogueStateTracker or _training.get() or not enabled():
        return _ORIGINALS["_create_states"](tracker, domain, omit_unset_slots=omit_unset_slots,
                                            ignore_rule_only_turns=ignore_rule_only_turns,
                                            rule_only_data=rule_only_data)
    states = incremental_states(tracker, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
    # Fresh dicts, as Rasa's own states are: featurizers edit them in place.
    return copy.deepcopy(_tail(states, needed))


def _with_needed_states(original):
    def prediction_states(self, trackers, domain, *args, **kwargs):
        # With no max_history, only RulePolicy's featurizer (while it looks for a rule) is
        # known to need fewer states; any other caller gets them all.
        token = _needed_states.set(self.max_history if self.max_history else _rule_states.get())
        try:
            return original(self, trackers, domain, *args, **kwargs)
        finally:
            _needed_states.reset(token)

    prediction_states.__wrapped__ = original  # type: ignore[attr-defined]
    return prediction_states


def rule_states_needed(policy) -> Optional[int]:
    """One state more than the longest rule RulePolicy learnt (None: unknown)."""
    cached = getattr(policy, "_lean_turns_rule_states", None)
    if cached is None:
        from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy

        keys = [k for name in (RULES, RULES_FOR_LOOP_UNHAPPY_PATH) for k in policy.lookup.get(name, {})]
        cached = 1 + max((len(RulePolicy._rule_key_to_state(k)) for k in keys), default=0)
        policy._lean_turns_rule_states = cached
    return cached


def _with_rule_states(original):
    def _find_action_from_rules(self, tracker, domain, *args, **kwargs):
        token = _rule_states.set(rule_states_needed(self))
        try:
            return original(self, tracker, domain, *args, **kwargs)
        finally:
            _rule_states.reset(token)

    _find_action_from_rules.__wrapped__ = original  # type: ignore[attr-defined]
    return _find_action_from_rules


def install() -> bool:
    """Install the patches now (idempotent); False where Rasa's dialogue code is absent."""
    try:
        from rasa.core.featurizers.tracker_featurizers import (
            MaxHistoryTrackerFeaturizer,
            TrackerFeaturizer,
        )
        from rasa.core.policies.rule_policy import RulePolicy
    except ImportError:  # the action server's process: nothing to patch
        return False
    if "_create_states" in _ORIGINALS:
        return True
    _ORIGINALS["_create_states"] = TrackerFeaturizer._create_states
    TrackerFeaturizer._create_states = staticmethod(_create_states)
    # Only max-history featurizers: a full-dialogue one (TED without max_history) reads all.
    cls = MaxHistoryTrackerFeaturizer
    _ORIGINALS["MaxHistoryTrackerFeaturizer.prediction_states"] = cls.prediction_states
    cls.prediction_states = _with_needed_states(cls.prediction_states)
    _ORIGINALS["RulePolicy._find_action_from_rules"] = RulePolicy._find_action_from_rules
    RulePolicy._find_action_from_rules = _with_rule_states(RulePolicy._find_action_from_rules)
    return True


def _with_rasa_code_in_training(original):
    # Not `train` itself: Rasa's graph validation reads the return annotation of `train`.
    def _run_prediction_on_trackers(self, *args, **kwargs):
        token = _training.set(True)
        try:
            return original(self, *args, **kwargs)
        finally:
            _training.reset(token)

    _run_prediction_on_trackers.__wrapped__ = original  # type: ignore[attr-defined]
    return _run_prediction_on_trackers


def apply() -> bool:
    """Install the patches (idempotent). RulePolicy's training checks predict on plain
    trackers too (``_run_prediction_on_trackers``, the only place its training predicts):
    there Rasa's own code runs, so `rasa train` is untouched.
    False where Rasa's dialogue code is absent (the action server)."""
    if not install():
        return False
    from rasa.core.policies.rule_policy import RulePolicy

    current = RulePolicy._run_prediction_on_trackers
    if not hasattr(current, "__wrapped__"):
        RulePolicy._run_prediction_on_trackers = _with_rasa_code_in_training(current)
    return True
