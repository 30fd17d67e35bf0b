"""The conversation's language, as every action reads it: the ``language`` slot
(domain/language.yml), normalised to en / ru / zh, English when unset or unknown."""

from __future__ import annotations

from rasa_sdk import Tracker

from clinic.i18n import language_code


def language_of(tracker: Tracker) -> str:
    return language_code(tracker.get_slot("language"))
