"""The staff inbox domain (no Rasa, no web framework inside).

A *ticket* is one conversation's request for a human: it waits in a team's queue, a staff
member claims it (the bot is paused), replies and writes internal notes, may transfer it to
another team, and resolves it with a reason (the bot is resumed). Every view and action is
written to an append-only, hash-chained audit log. Modules:

- ``model``     enums, value objects and errors shared by the rest
- ``states``    the ticket state machine: the explicit table of allowed transitions
- ``tables``    SQLAlchemy rows (``inbox_*`` tables)
- ``audit``     the append-only audit log (hash chain, verification)
- ``staff``     staff accounts: argon2 password hashes, encrypted TOTP secrets, roles, teams
- ``sla``       waiting time, time to first response and to resolution, overdue flag
- ``ports``     what the inbox needs from the conversation side (protocols)
- ``rasa_http`` those ports over Rasa's HTTP API
- ``templates`` the approved WhatsApp templates, each name in one or more languages
- ``languages`` the language of each ticket's conversation (contact language memory), in bulk
- ``patients``  who the patient is for staff: a friendly label, name and birth date from the
                clinic's patient record, earlier tickets
- ``labels``    words for the codes tickets store (reasons, red-flag categories)
- ``patient_texts`` what the inbox itself tells a patient (who has joined), per language
- ``service``   ``Inbox``: every staff operation, with its permission check and audit row
- ``testing``   database-backed stand-ins for the ports, for the inbox's own tests only
"""
