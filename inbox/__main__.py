"""Serve the staff inbox: ``python -m inbox [--host 127.0.0.1] [--port 8070] [--demo]``.

``--demo`` (what ``make run`` uses) creates the demo staff accounts when the database has
no staff yet and prints them (see inbox/demo.py). Without staff accounts and without
``--demo``, create the first admin with ``python -m inbox.users create NAME --role admin``.
"""

from __future__ import annotations

import argparse

import uvicorn

from clinic.logs import configure_logging
from inbox.app import create_app
from inbox.demo import ensure_demo_accounts
from inbox.settings import InboxProcessSettings
from inbox.wiring import build


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = InboxProcessSettings.load()
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--database-url", default=None, help="default: CLINIC_DATABASE_URL or var/clinic.db")
    parser.add_argument("--demo", action="store_true", help="create and print demo staff accounts if none exist")
    args = parser.parse_args(argv)
    configure_logging("inbox")
    built = build(args.database_url)
    if args.demo and (not built.staff.any_exists() or built.staff.by_username("demo-admin")):
        for line in ensure_demo_accounts(built.staff):
            print(line, flush=True)
    elif not built.staff.any_exists():
        print("No staff accounts yet: create the first admin with "
              "`python -m inbox.users create NAME --role admin`.", flush=True)
    print(f"Staff inbox: http://{args.host}:{args.port}/inbox/login", flush=True)
    app = create_app(built.inbox, built.staff, built.audit, secret_key=built.secret_key,
                     cookie_secure=built.cookie_secure)
    app.state.documents = built.documents  # the ticket page lists them (inbox/documents.py)
    app.state.media = built.media  # photos, voice notes… in the transcript (inbox/media.py)
    # access_log off: paths carry ticket ids; every view and action is in the audit log.
    # ws="none": no websockets here, and Rasa pins a websockets release too old for uvicorn's.
    # log_config=None: uvicorn's records go through configure_logging's handler (JSON lines).
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, ws="none", log_level="info",
                log_config=None)


if __name__ == "__main__":
    main()
