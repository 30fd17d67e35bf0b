"""Health-education broadcasts to contacts who opted in to health tips.

Rasa-free. ``tables.py`` (campaigns, recipients), ``store.py`` (conditional updates),
``runner.py`` (throttled, paced, exactly-once sending; its docstring explains the design),
``campaign_file.py`` (campaigns from YAML, checked for patient data), ``__main__.py`` (the
command: ``python -m clinic.broadcasts create|run|status|list|requeue-unknown|cancel``).
"""
