"""Forcing an intent from a deterministic NLU component (language choice, safety net).

The classifier's guess stays in the ranking (below the forced intent) so evaluation and the
logs still show what the model thought.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message


def force_intent(message: Message, intent: Text) -> Optional[Text]:
    """Make ``intent`` the message's intent with confidence 1.0; returns the previous one."""
    previous: Optional[Dict[Text, Any]] = message.get(INTENT)
    forced = {INTENT_NAME_KEY: intent, PREDICTED_CONFIDENCE_KEY: 1.0}
    ranking = [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get(INTENT_NAME_KEY) != intent]
    message.set(INTENT, forced, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [forced, *ranking], add_to_output=True)
    return (previous or {}).get(INTENT_NAME_KEY)


def add_entity(message: Message, name: Text, value: Text, start: int, end: int,
               extractor: Text) -> None:
    entities: List[Dict[Text, Any]] = [e for e in (message.get(ENTITIES) or []) if e.get("entity") != name]
    entities.append({"entity": name, "value": value, "start": start, "end": end,
                     "confidence_entity": 1.0, "extractor": extractor})
    message.set(ENTITIES, entities, add_to_output=True)
