"""Who may see the media patients send in the chat (photos, voice notes, videos, documents).

A photo of a rash or a voice note describing symptoms is clinical content, more than the
text of a chat. The inbox's roles are ``agent`` (their teams' queues), ``supervisor`` (every
queue) and ``admin`` (accounts and settings, never patient conversations). Media is shown to:

- supervisors (they answer for every queue, escalations included), and
- agents of the **nurse** team (the clinical team that handles symptoms and red flags).

Agents who are only in billing & insurance or reception see the message, but as "photo (not
shown to your role)": they can hand the ticket to a nurse. Administrators see no conversation
at all (clinic/inbox/service.py), hence no media. Every view is audited (``media_viewed``,
inbox/media.py).
"""

from __future__ import annotations

from clinic.handoff.teams import Team
from clinic.inbox.model import Actor, Role

# The teams whose agents may see media (a clinic with a clinical team of another name adds it).
CLINICAL_TEAMS = frozenset({Team.NURSE.value})


def may_see_media(actor: Actor) -> bool:
    if not actor.is_staff or actor.role is None:
        return False
    if actor.role is Role.SUPERVISOR:
        return True
    if actor.role is Role.AGENT:
        return bool(CLINICAL_TEAMS & set(actor.teams))
    return False
