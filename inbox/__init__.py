"""The staff inbox web application (FastAPI, server-rendered pages, JSON API).

``python -m inbox --port 8070``. The domain lives in ``clinic.inbox``; this package only
handles HTTP: sessions, CSRF, security headers, pages and the OpenAPI-described API.
"""
