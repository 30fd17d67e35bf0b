"""Appointments: catalogue (locations, practitioners, services), slots, bookings, outcomes.

Knows nothing of Rasa or WhatsApp. Actions, the reminder scheduler and the clinic API call
:class:`clinic.scheduling.backend.SchedulingBackend`; the SQL implementation in
``clinic.scheduling.sql_backend`` is the embedded default, and a clinic can plug in an
adapter to its own EHR by implementing the same protocol.
"""
