"""HTTP API for the clinic's own systems (EHR, front desk): record appointment outcomes and
read reports. Authenticated with per-system API keys and scopes (clinic.api_keys), described
by OpenAPI at /api/openapi.json. Rasa-free: it calls the clinic domain package only.
"""
