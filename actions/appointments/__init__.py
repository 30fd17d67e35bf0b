"""Appointments in chat: booking (``booking``), and listing, rescheduling and cancelling
(``changes``). Helpers shared by both are in ``common``."""
