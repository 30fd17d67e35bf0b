"""Manage API keys: ``python -m clinic_api.keys create NAME SCOPE [SCOPE ...] | revoke NAME | list``.

The key is printed once, on creation; only its hash is stored.
"""

from __future__ import annotations

import argparse
import sys

from clinic.api_keys import SCOPES, ApiKeys, UnknownScope
from clinic.db import create_schema, make_engine, make_session_factory


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="scopes:\n" + "\n".join(f"  {k:20} {v}" for k, v in SCOPES.items()))
    parser.add_argument("--database-url", default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create")
    create.add_argument("name")
    create.add_argument("scopes", nargs="+")
    revoke = commands.add_parser("revoke")
    revoke.add_argument("name")
    commands.add_parser("list")
    args = parser.parse_args(argv)

    engine = make_engine(args.database_url)
    create_schema(engine)
    keys = ApiKeys(make_session_factory(engine))
    if args.command == "create":
        try:
            print(keys.create(args.name, args.scopes))
        except (UnknownScope, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except Exception as error:  # e.g. the name is taken (unique constraint)
            print(f"error: could not create the key: {error.__class__.__name__}", file=sys.stderr)
            return 2
        return 0
    if args.command == "revoke":
        if not keys.revoke(args.name):
            print(f"error: no active key named {args.name!r}", file=sys.stderr)
            return 2
        return 0
    for name in keys.names():
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
