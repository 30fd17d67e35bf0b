"""The human teams a patient can be routed to, and how to pick one from the context."""

from __future__ import annotations

import enum
from typing import Iterable, Optional


class Team(str, enum.Enum):
    NURSE = "nurse"
    BILLING = "billing"
    RECEPTION = "reception"

FALLBACK_TEAM = Team.RECEPTION

# What a patient was talking about -> who can help. Topics are intents (or FAQ keys) so the
# mapping stays independent of any NLU framework.
_TOPIC_TEAMS = {
    "emergency": Team.NURSE,
    "clinical_question": Team.NURSE,
    "results_status": Team.NURSE,
    "faq/preparation": Team.NURSE,
    "billing_status": Team.BILLING,
    "insurance_billing": Team.BILLING,
    "faq/insurance": Team.BILLING,
    "faq/payment_methods": Team.BILLING,
}


def parse_team(value: Optional[str]) -> Optional[Team]:
    try:
        return Team(value.strip().lower()) if value else None
    except ValueError:
        return None


def route(explicit: Optional[str], recent_topics: Iterable[str]) -> Team:
    """The team asked for, else the one that fits the most recent topic, else reception."""
    team = parse_team(explicit)
    if team:
        return team
    for topic in recent_topics:  # most recent first
        if topic in _TOPIC_TEAMS:
            return _TOPIC_TEAMS[topic]
    return FALLBACK_TEAM
