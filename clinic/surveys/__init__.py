"""Satisfaction surveys: a 1–5 rating (one tap) and an optional comment.

Rasa-free. After a fulfilled visit and after a resolved handoff ticket, a survey request is
planned (``planner.py``), sent as an approved template whose five quick replies carry
``/rate{"rating": N, "survey_id": "srv_…"}`` (``sender.py``, exactly once like broadcasts),
and answered in the conversation (``actions/surveys.py``): the rating is stored, the bot
thanks, a low score (1–2) gets the offer of a human, and an optional comment is kept
encrypted (it may hold health information). ``python -m clinic.surveys plan|send|status``.

Consent: a survey is a follow-up of care the patient received, so it follows the
transactional "reminders" consent (STOP turns it off), not the health-tips opt-in
(docs/consent.md).
"""
