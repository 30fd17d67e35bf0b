"""Demo staff accounts: ``python -m inbox.demo [--database-url URL]``.

Creates (once) ``demo-agent`` (nurse and reception teams), ``demo-supervisor`` and
``demo-admin`` with the known password below, and prints each TOTP key while the account
has not logged in yet (add it to an authenticator app, or compute codes with
``python -c "import pyotp; print(pyotp.TOTP('KEY').now())"``). Never use on real data.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from clinic.inbox.model import SYSTEM, Role
from clinic.inbox.staff import StaffAccounts

DEMO_PASSWORD = "demo-inbox-password"
DEMO_ACCOUNTS = [
    ("demo-agent", "Demo Agent (nurse)", Role.AGENT, ["nurse", "reception"]),
    ("demo-supervisor", "Demo Supervisor", Role.SUPERVISOR, []),
    ("demo-admin", "Demo Admin", Role.ADMIN, []),
]


def ensure_demo_accounts(staff: StaffAccounts) -> List[str]:
    """Create the missing demo accounts; return lines describing all three."""
    lines = [f"Staff inbox demo accounts (password for all: {DEMO_PASSWORD}):"]
    for username, name, role, teams in DEMO_ACCOUNTS:
        member = staff.by_username(username)
        if member is None:
            member = staff.create(username, DEMO_PASSWORD, role, teams, display_name=name, by=SYSTEM).member
        provisioning = staff.provisioning(member.id)
        key = f"TOTP key {provisioning[0]}" if provisioning else "TOTP already set up"
        lines.append(f"  {username:16} {role.value:10} {key}")
    return lines


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    from inbox.wiring import build

    for line in ensure_demo_accounts(build(args.database_url).staff):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
