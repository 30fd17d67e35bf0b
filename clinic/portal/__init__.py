"""The secure way to results and documents: single-use, expiring portal links (tokens.py),
and a small demo portal (demo_documents.py + clinic_api/routes/portal.py) standing in for the
clinic's real one in the embedded default."""
