"""The assistant's outcome figures, from the clinic database only (``report.py``), with plots
(``plots.py``) and a command: ``python -m clinic.analytics report [--since --until --out]``.
docs/analytics.md defines each figure.
"""
