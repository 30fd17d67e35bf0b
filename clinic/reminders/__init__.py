"""Appointment reminders, visit follow-ups and recalls, driven by persisted jobs.

Rasa-free. Jobs are rows in ``reminder_jobs`` (``tables.py``), planned inside the booking
transaction by :class:`planner.ReminderPlanner` (an ``AppointmentListener``), claimed and
pushed into the patient's conversation by the scheduler process (``scheduler.py``, using
``dispatcher.py``), and marked sent by the Rasa action that sends the template
(``actions/reminders.py``). Why not Rasa's own ``ReminderScheduled``: those live in the
Rasa server's memory and are lost on every restart or deployment.
"""
