"""Manage staff accounts from the command line (the first admin, or a locked-out one):

    python -m inbox.users create NAME --role admin|supervisor|agent [--teams nurse billing] [--display-name "…"]
    python -m inbox.users list

The password is read from ``INBOX_NEW_PASSWORD`` or asked for (not echoed); the TOTP key
is printed once and shown again at the user's first login.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from clinic.inbox.model import SYSTEM, InboxError, Role
from inbox.settings import new_staff_password


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create")
    create.add_argument("username")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--teams", nargs="*", default=[])
    create.add_argument("--display-name", default=None)
    commands.add_parser("list")
    args = parser.parse_args(argv)
    from inbox.wiring import build

    staff = build(args.database_url).staff
    if args.command == "list":
        for m in staff.all():
            print(f"{m.username:20} {m.role.value:10} {','.join(sorted(m.teams)):24} {'disabled' if m.disabled else 'active'}")
        return 0
    password = new_staff_password() or getpass.getpass("Password (12+ characters): ")
    try:
        created = staff.create(args.username, password, Role(args.role), args.teams,
                               display_name=args.display_name, by=SYSTEM)
    except InboxError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"created {created.member.username}; TOTP key {created.totp_secret}")
    print(created.provisioning_uri)
    return 0


if __name__ == "__main__":
    sys.exit(main())
