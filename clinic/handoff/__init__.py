"""Handoff to clinic staff: which team, how urgent, and the queue of requests."""
