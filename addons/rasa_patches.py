"""Two small patches for Rasa 3.6, applied when Rasa loads this package.

1. The most specific response variation wins (``most_specific_variations``). Rasa picks at
   random among *all* conditional variations whose conditions hold. With one variation per
   language (a condition on ``language``) next to variations conditioned on something else
   (``red_flag_response: crisis``, ``status_expected: null``), a Russian crisis would draw
   from the Russian emergency text, the English crisis text and the Russian crisis text.
   Here only the matching variations with the most conditions are kept: the Russian crisis
   text ([crisis, ru]) beats both. Responses without overlapping conditions behave exactly
   as before (tests/test_rasa_patches.py).

2. Performance:

``RemoteAction._validate_action_result`` checks every action server response with
``jsonschema.validate(result, schema)``. ``jsonschema.validate`` first checks the *schema*
against its meta-schema (draft 2020-12, whose ``$dynamicRef`` resolution is slow in
jsonschema 4.17), on every call; for a schema that never changes. In our profile of Rasa
answering FAQ questions that meta-schema check was about 30 % of Rasa's CPU per message
(docs/measurements.md, "Where Rasa's time goes"). Here the schema is checked once and one
validator is reused; responses are validated exactly as before and an invalid one raises
the same ``ValidationError`` with Rasa's own explanation appended.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

logger = logging.getLogger(__name__)

_validator: Optional[Any] = None


def _validate_action_result(self, result: Dict[str, Any]) -> bool:
    import jsonschema
    from rasa.shared.constants import DOCS_BASE_URL

    global _validator
    if _validator is None:
        schema = self.action_response_format_spec()
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
        _validator = validator_class(schema)
    error = jsonschema.exceptions.best_match(_validator.iter_errors(result))
    if error is not None:
        # Rasa's wording (rasa/core/actions/action.py), so logs read the same as unpatched.
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


def most_specific_variations(original):
    """Wrap ``ResponseVariationFilter.responses_for_utter_action`` (see the module's 1.)."""

    def responses_for_utter_action(self, utter_action, output_channel, filled_slots):
        variations = original(self, utter_action, output_channel, filled_slots)
        if not variations or not all(v.get("condition") for v in variations):
            return variations
        most = max(len(v["condition"]) for v in variations)
        return [v for v in variations if len(v["condition"]) == most]

    responses_for_utter_action.__wrapped__ = original  # type: ignore[attr-defined]
    return responses_for_utter_action


def _apply_variation_patch() -> bool:
    try:
        from rasa.core.nlg.generator import ResponseVariationFilter
    except ImportError:  # the action server's process: nothing to patch
        return False
    current = ResponseVariationFilter.responses_for_utter_action
    if not hasattr(current, "__wrapped__"):
        ResponseVariationFilter.responses_for_utter_action = most_specific_variations(current)
    return True


def apply() -> bool:
    """Install the patches if this Rasa has what they replace; returns whether it did."""
    _apply_variation_patch()
    try:
        from rasa.core.actions.action import RemoteAction
    except ImportError:  # the action server's process: nothing to patch
        return False
    if not hasattr(RemoteAction, "_validate_action_result"):
        logger.warning("Rasa has no RemoteAction._validate_action_result any more: patch not applied")
        return False
    RemoteAction._validate_action_result = _validate_action_result
    return True
