"""Aggregate reports for the clinic (no patient-level data leaves these functions)."""
