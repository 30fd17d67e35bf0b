"""Notifications from the clinic's systems to a patient on WhatsApp, without health content.

Rasa-free. ``POST /api/v1/notifications`` (clinic_api/routes/notifications.py) hands a
validated event to :class:`service.NotificationService`, which records it once per event id
(idempotency), updates the patient's record states (clinic.records) and plans a reminder job
of kind ``notify_<type>``. The reminder scheduler pushes the job into the conversation and
``action_send_notification`` sends the template exactly once, with a fresh single-use portal
link (clinic.portal) where there is something to see. See docs/notifications.md.
"""
