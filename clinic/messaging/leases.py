"""Who holds an inbox row (or an outbound row being sent), so several gateway workers can
share one database: a worker id, and whether a holder is known to be dead.

A worker id is ``host/pid/random`` (``host``: the host name and a digest of the boot id and
the pid namespace, so a pid is only compared where it means one process): unique per
process incarnation. A lease (``lease_owner`` + ``lease_until`` on ``wa_inbox``) expires
unless its worker renews it; a row is taken back
only when its lease expired or its holder is *known* dead: a process of this same host (and
pid namespace) whose pid no longer exists, or an earlier incarnation with this very pid.
A holder on another host is only ever judged by its lease's expiry.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import socket
from pathlib import Path
from typing import Optional


@functools.lru_cache(maxsize=None)
def _host() -> str:
    """The host name, and a digest of this machine's boot id and this process's pid
    namespace: a pid means the same process only within one namespace of one boot (two
    containers with one host name, e.g. on the host's network, are told apart, and a worker
    there is judged by its lease alone)."""
    identity = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            identity.append(Path(path).read_text().strip() if "boot_id" in path else str(os.stat(path).st_ino))
        except OSError:
            identity.append(secrets.token_hex(8))  # unknown: never matches another process
    digest = hashlib.sha256("|".join(identity).encode()).hexdigest()[:8]
    return f"{socket.gethostname()[:80].replace('/', '_') or 'host'}~{digest}"


_WORKERS: dict[int, str] = {}
# The worker ids made in this process (alive while the process is).
_LIVE_HERE: set[str] = set()


def worker_id() -> str:
    """This process's worker id (the same for every caller in the process; a new one after a
    fork or a restart)."""
    pid = os.getpid()
    found = _WORKERS.get(pid)
    if found is None:
        found = _WORKERS[pid] = f"{_host()}/{pid}/{secrets.token_hex(4)}"
        _LIVE_HERE.add(found)
    return found


def new_worker_id() -> str:
    """A distinct worker id in this process (tests running two workers side by side)."""
    made = f"{_host()}/{os.getpid()}/{secrets.token_hex(4)}"
    _LIVE_HERE.add(made)
    return made


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    except OSError:
        return True
    # A zombie (killed, not yet reaped by its parent) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True


def holder_is_dead(owner: Optional[str], me: Optional[str] = None) -> bool:
    """Whether the worker ``owner`` is known to be gone (never guessed: False when unsure)."""
    if not owner:
        return True  # held by nobody (a caller without leases): free to take back
    parts = owner.split("/")
    if len(parts) != 3 or parts[0] != _host() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    current = me or worker_id()
    if owner == current:
        return False
    if pid == os.getpid():
        # This pid, another incarnation (a restarted process: pid 1 in a container), unless
        # it is another worker of this very process (tests: ``new_worker_id``).
        return owner not in _LIVE_HERE
    return not _pid_exists(pid)


def forget_local(owner: str) -> None:
    """``owner``, a worker of this process, stopped (tests: as if its process died)."""
    _LIVE_HERE.discard(owner)
