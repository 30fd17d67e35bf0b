"""The human teams a patient can be routed to, and how to pick one from the context."""

from __future__ import annotations

import dataclasses
import enum
from typing import Callable, Iterable, Optional


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


@dataclasses.dataclass(frozen=True)
class Said:
    """One patient message as routing sees it: the words (empty for a button tap) and the
    topic the assistant understood (an intent or FAQ key)."""

    text: str = ""
    topic: str = ""


def route(
    explicit: Optional[str],
    recent: Iterable[Said],
    team_for_text: Callable[[str], Optional[Team]] = lambda text: None,
) -> Team:
    """The team asked for; else, reading the messages most recent first, the first whose
    words name a team's subject (``team_for_text``, clinic/handoff/routing.py) or whose topic
    belongs to a team; else reception.

    Words come before the topic because the topic of "I want to talk to a real person about
    my bill" is only `request_human`: the word "bill" is what says billing.
    """
    team = parse_team(explicit)
    if team:
        return team
    for said in recent:
        team = (team_for_text(said.text) if said.text else None) or _TOPIC_TEAMS.get(said.topic)
        if team:
            return team
    return FALLBACK_TEAM
