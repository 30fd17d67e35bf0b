"""Words for the codes tickets store, for staff (the inbox is in English).

Tickets keep codes (``patient_request``, ``chest_pain``): stable for the API, the audit log
and analytics. Staff read words: a handoff reason's label below, a red-flag category's
``label`` from the clinician-reviewed list of the clinic's default language
(content/red_flags/<default>.yml), so the words staff see are the ones reviewers approved.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional

import yaml

from clinic.inbox.service import RESOLUTION_REASONS
from clinic.language.catalogue import default_catalogue
from clinic.safety.red_flags import DEFAULT_RED_FLAGS_DIR

# Every value of TicketRow.reason (clinic.inbox.service.HANDOFF_REASONS).
HANDOFF_REASON_LABELS: Dict[str, str] = {
    "patient_request": "Patient asked for a person",
    "emergency": "Emergency (red flag)",
    "callback_request": "Patient asked for a call-back",
    "bot_fallback": "Assistant did not understand",
    "frustration": "Patient frustrated with the assistant",
    "clinical_question": "Clinical question",
    "long_message": "Long message: read it all",
    "message_failed": "Message the assistant could not process",
    "reply_failed": "Assistant's reply could not be delivered",
}


# Every clinic.handoff.teams.Team, as the queues' headings and the chat's wording name them.
TEAM_LABELS: Dict[str, str] = {
    "nurse": "Nurse",
    "billing": "Billing & insurance",
    "reception": "Reception",
}


def team_label(code: Optional[str]) -> str:
    if not code:
        return "—"
    return TEAM_LABELS.get(code) or _words(code)


def resolution_label(code: Optional[str]) -> str:
    """"Question answered" for ``answered`` (clinic.inbox.service.RESOLUTION_REASONS)."""
    if not code:
        return "—"
    return RESOLUTION_REASONS.get(code) or _words(code)


def reason_label(code: Optional[str]) -> str:
    if not code:
        return "—"
    return HANDOFF_REASON_LABELS.get(code) or _words(code)


def red_flag_label(category: Optional[str]) -> str:
    """"Chest pain or pressure" for ``chest_pain``; an unknown category in plain words."""
    if not category:
        return ""
    return _red_flag_labels().get(category) or _words(category)


@functools.lru_cache(maxsize=1)
def _red_flag_labels(directory: Path = DEFAULT_RED_FLAGS_DIR) -> Dict[str, str]:
    # Only the labels: reading the YAML is cheap, building the detector (normalisers,
    # compiled phrases) is not, and the inbox needs none of it.
    path = directory / f"{default_catalogue().default}.yml"
    try:
        categories = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("categories") or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {str(key): str(body["label"]) for key, body in categories.items()
            if isinstance(body, dict) and body.get("label")}


def _words(code: str) -> str:
    return code.replace("_", " ").strip().capitalize()
