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
from typing import Dict, List, Mapping, Optional

import yaml

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
    guidance: Mapping[str, str]  # response kind (emergency, crisis) -> text
    flagged: str
    not_flagged: str

    @classmethod
    def from_domain(cls, settings: ClinicSettings, path: Path = DOMAIN_SAFETY_FILE) -> "EmergencyTexts":
        responses = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}
        values = settings.as_slots()

        def fill(text: str) -> str:
            # Rasa fills {slot} from the tracker; here the slots are the clinic settings.
            return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text.strip())

        guidance: Dict[str, str] = {}
        for variant in responses.get("utter_emergency") or []:
            kind = "emergency"
            for condition in variant.get("condition") or []:
                if condition.get("name") == "red_flag_response":
                    kind = str(condition.get("value"))
            guidance.setdefault(kind, fill(variant["text"]))
        if "emergency" not in guidance:
            raise ValueError(f"{path}: utter_emergency needs a variant without condition")
        guidance.setdefault("crisis", guidance["emergency"])
        first = lambda name: fill((responses.get(name) or [{"text": ""}])[0]["text"])  # noqa: E731
        return cls(guidance, first("utter_emergency_flagged"), first("utter_emergency_not_flagged"))

    def for_response(self, response: str) -> str:
        return self.guidance.get(response) or self.guidance["emergency"]


def detect(text: Optional[str], detector: Optional[RedFlagDetector] = None) -> Optional[Detected]:
    """The red flag in ``text`` as the NLU component reports it (crisis wording wins)."""
    matches: List[RedFlagMatch] = (detector or default_detector()).detect(text or "")
    if not matches:
        return None
    chosen = next((m for m in matches if m.category.response == "crisis"), matches[0])
    return Detected(chosen.category.id, chosen.category.response)
