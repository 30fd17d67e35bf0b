"""Voice calls in the handoff (issue 19): while a team is staffed (its hours in
content/clinic.yml) and calling is on (``calling``), a patient who asks for a person, or
taps "Call me back", is asked whether the clinic may call them on WhatsApp: an interactive
call-permission request, its text from content/calling.yml in the patient's language.
Outside the team's hours nothing changes: the patient gets the call-back offer and task as
before. Knows nothing of Rasa: the actions call it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Dict, Optional

from clinic.i18n import LANGUAGES, language_code
from clinic.yaml_files import load_yaml_file

CALLING_TEXTS = Path(__file__).resolve().parents[2] / "content" / "calling.yml"


class CallingTextsError(ValueError):
    """content/calling.yml is missing, malformed, or lacks a language's text."""


@functools.lru_cache(maxsize=1)
def _texts() -> Dict[str, Dict[str, str]]:
    texts = load_yaml_file(CALLING_TEXTS, CallingTextsError, "the calling texts")
    request = texts.get("permission_request") if isinstance(texts, dict) else None
    if not isinstance(request, dict) or not all(isinstance(request.get(code), str) and request[code].strip()
                                                for code in LANGUAGES):
        raise CallingTextsError(f"{CALLING_TEXTS}: permission_request needs a text in each of {', '.join(LANGUAGES)}")
    return texts


def permission_request_text(language: Optional[str]) -> str:
    texts = _texts()["permission_request"]
    return texts.get(language_code(language)) or texts["en"]


def permission_request_message(language: Optional[str]) -> Dict[str, Any]:
    """The custom response the WhatsApp channel sends as ``call_permission_request``
    (gateway/render.py, whatsapp/calls.py)."""
    return {"whatsapp": {"type": "call_permission_request", "body": permission_request_text(language)}}
