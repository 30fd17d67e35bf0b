"""States of a patient's results, documents, bills and queue place (never their content),
so the assistant can answer "are my results ready?" with a portal link or a date."""
