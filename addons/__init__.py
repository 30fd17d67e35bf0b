"""Project extensions loaded by Rasa itself (named in config.yml): NLU components and the
training-data importer. Thin wrappers; the logic lives in the Rasa-free ``clinic`` package."""

from addons import lean_action_calls as _lean_action_calls
from addons import lean_tracker as _lean_tracker
from addons import lean_turns as _lean_turns
from addons import rasa_patches as _rasa_patches
from addons import tracker_cache as _tracker_cache

_rasa_patches.apply()
if _lean_turns.enabled():  # LEAN_TURNS=0: Rasa's own code (benchmarks compare both)
    _lean_turns.apply()
    _tracker_cache.apply()
    _lean_action_calls.apply()
    _lean_tracker.apply()
