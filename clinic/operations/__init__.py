"""Operating a deployment (issue 16): backups of the databases and key files
(``python -m clinic.operations.backup``) and the move from the embedded SQLite default to
PostgreSQL (``python -m clinic.operations.copy_to_postgres``). No Rasa inside: the tracker
store's tables are copied as rows, never through Rasa's classes."""
