"""Serve the clinic API: ``python -m clinic_api [--host 127.0.0.1] [--port 8090]``."""

from __future__ import annotations

import argparse

import uvicorn

from clinic.api_keys import ApiKeys
from clinic.container import build_scheduling
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.logs import configure_logging
from clinic.settings import load_settings
from clinic_api.app import create_app
from clinic_api.settings import ApiAddress


def build_app(database_url=None):
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    return create_app(build_scheduling(sessions, load_settings()), ApiKeys(sessions), sessions)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    address = ApiAddress.load()
    parser.add_argument("--host", default=address.host)
    parser.add_argument("--port", type=int, default=address.port)
    parser.add_argument("--database-url", default=None, help="default: CLINIC_DATABASE_URL or var/clinic.db")
    args = parser.parse_args(argv)
    configure_logging("clinic_api")
    # access_log off: paths carry appointment ids, and request logs are not needed to audit
    # changes (every change is in the appointment's history with the key's name).
    # ws="none": no websockets here, and Rasa pins a websockets release too old for uvicorn's.
    # log_config=None: uvicorn's records go through configure_logging's handler (JSON lines).
    uvicorn.run(build_app(args.database_url), host=args.host, port=args.port, access_log=False, ws="none",
                log_level="info", log_config=None)


if __name__ == "__main__":
    main()
