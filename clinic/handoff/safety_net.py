"""The emergency safety net while a staff member owns the conversation.

Rasa predicts no action on a paused conversation, so neither the red-flag rule nor the
urgent handoff runs then. The channel (connectors/whatsapp/safety_net.py) uses this module
to do the same by itself: the same detector and phrase list as the NLU component
(``clinic.safety.red_flags``), the same choice of wording (a "crisis" category wins), and
the *same texts*: read from the domain's ``utter_emergency`` / ``utter_emergency_flagged`` /
``utter_emergency_not_flagged`` (domain/safety.yml), so designers still edit one place.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence

import yaml

from clinic.language.responses import Variation, select_variation
from clinic.safety.red_flags import RedFlagDetector, RedFlagMatch, default_detector
from clinic.settings import PROJECT_ROOT, ClinicSettings

DOMAIN_SAFETY_FILE = PROJECT_ROOT / "domain" / "safety.yml"
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclasses.dataclass(frozen=True)
class Detected:
    category: str
    response: str  # emergency | crisis


@dataclasses.dataclass(frozen=True)
class EmergencyTexts:
    """The emergency responses of domain/safety.yml, with the clinic's settings filled in,
    chosen like Rasa chooses them (by ``red_flag_response`` and ``language``)."""

    responses: Mapping[str, Sequence[Variation]]
    values: Mapping[str, str]

    @classmethod
    def from_domain(cls, settings: ClinicSettings, path: Path = DOMAIN_SAFETY_FILE) -> "EmergencyTexts":
        responses = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}
        for name in ("utter_emergency", "utter_emergency_flagged", "utter_emergency_not_flagged"):
            if select_variation(responses.get(name) or [], {}) is None:
                raise ValueError(f"{path}: {name} needs a variant without condition")
        return cls(responses, settings.as_slots())

    def _text(self, name: str, **slots: Any) -> str:
        variation = select_variation(self.responses[name], slots) or select_variation(self.responses[name], {})
        # Rasa fills {slot} from the tracker; here the slots are the clinic settings.
        return _PLACEHOLDER.sub(lambda m: self.values.get(m.group(1), m.group(0)),
                                str(variation["text"]).strip())

    def for_response(self, response: str, language: Optional[str] = None) -> str:
        return self._text("utter_emergency", red_flag_response=response, language=language)

    def flagged_in(self, language: Optional[str] = None) -> str:
        return self._text("utter_emergency_flagged", language=language)

    def not_flagged_in(self, language: Optional[str] = None) -> str:
        return self._text("utter_emergency_not_flagged", language=language)

    @property
    def flagged(self) -> str:
        return self.flagged_in(None)

    @property
    def not_flagged(self) -> str:
        return self.not_flagged_in(None)


def detect(text: Optional[str], detector: Optional[RedFlagDetector] = None) -> Optional[Detected]:
    """The red flag in ``text`` as the NLU component reports it (crisis wording wins)."""
    matches: List[RedFlagMatch] = (detector or default_detector()).detect(text or "")
    if not matches:
        return None
    chosen = next((m for m in matches if m.category.response == "crisis"), matches[0])
    return Detected(chosen.category.id, chosen.category.response)
