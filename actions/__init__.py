"""Rasa action server code. Actions are thin: they read the tracker, call the Rasa-free
``clinic`` package, and choose domain responses. Run with ``rasa run actions``."""
