"""The short labels code puts into messages itself, per language, from one table that a
designer edits: content/labels.yml (button titles built from live data, words that fill a
response's slot, the WhatsApp list's button and section and the "choose" prompt).

In the domain package because both sides read it: the actions (actions/labels.py) and the
gateway's renderer (gateway/render.py), which runs without Rasa or the action server.
"""

from __future__ import annotations

from typing import Dict, Optional

import yaml

from clinic.i18n import DEFAULT_LANGUAGE, language_code
from clinic.settings import PROJECT_ROOT

LABELS_FILE = PROJECT_ROOT / "content" / "labels.yml"
# Read once, when the process imports this module.
LABELS: Dict[str, Dict[str, str]] = yaml.safe_load(LABELS_FILE.read_text(encoding="utf-8"))["labels"]


def label(key: str, language: Optional[str] = "en") -> str:
    """The label in ``language`` (English when the language is unknown or the label lacks it)."""
    labels = LABELS[key]
    return labels.get(language_code(language)) or labels[DEFAULT_LANGUAGE]
