"""The webhook door's journal: append-only files that make an accepted webhook durable
before the 200, without waiting for the database.

Why: the acknowledgement must be fast whatever else the machine is doing (Meta redelivers
slow webhooks, and the issue's target is p99 ≤ 25 ms at 200 msg/s). A database commit is
usually quick, but on SQLite every writer of the file queues for one lock, and a waiting
writer sleeps in steps of up to 25-100 ms (SQLite's busy handler): with the assistant,
the action server and the staff inbox writing too, the acknowledgement's tail was the
lock's (docs/measurements.md). Appending a line to a file the door alone owns costs tens
of microseconds and waits for no one.

Guarantees: a record is in the kernel when ``append`` returns, so it survives the process
being killed (the same promise as SQLite's WAL with synchronous=NORMAL, which the inbox
had); with ``fsync=True`` it also survives a power cut. ``drain`` moves records into the
database in batches and deletes a segment only after its batch is committed; a process
that died leaves its segments behind and the next one (``InboxJournal`` on the same
directory) drains them first. Applying twice is harmless: the inbox dedupes on wamid and
statuses never move backwards. A crash in the middle of ``append`` can leave a torn last
line; it is skipped (Meta redelivers any webhook that did not get its 200).

What is written is what the inbox would hold: redacted text, pseudonymous conversation
ids, Fernet-encrypted addresses; never a phone number in clear. Files are 0600. The door
seals a message's words before appending (clinic/messaging/journal_lines.py); this module
stores whatever records it is given. ``rewrite_idle`` lets a key rotation rewrite the
segments of a directory no live door owns.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"
Record = Dict[str, Any]


class JournalInUse(RuntimeError):
    """Another live process owns this journal directory (two doors must not share one)."""


class InboxJournal:
    def __init__(self, directory: Path, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fsync = fsync
        # One owner per directory: a second door would rotate and delete the first's files.
        self._lock_fd = os.open(self.directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JournalInUse(f"{self.directory} is used by another running process; give each "
                               "webhook door its own WHATSAPP_JOURNAL_DIR") from None
        self._append_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        existing = self._segments()
        self._sequence = (int(existing[-1].stem) if existing else 0) + 1
        self._fd = self._open_segment()
        self._written = 0

    # ── writing ───────────────────────────────────────────────────────────────────────
    def append(self, records: Iterable[Record]) -> None:
        data = "".join(json.dumps(r, separators=(",", ":"), default=str) + "\n" for r in records).encode()
        if not data:
            return
        with self._append_lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self._fsync:
                os.fdatasync(self._fd)
            self._written += len(data)

    # ── moving records on ─────────────────────────────────────────────────────────────
    def pending(self) -> bool:
        """Whether anything awaits ``drain`` (cheap: no file is read)."""
        return self._written > 0 or len(self._segments()) > 1

    def drain(self, apply: Callable[[List[Record]], Any]) -> int:
        """Hand every record written so far to ``apply`` (one call per segment, in order) and
        delete each segment once ``apply`` returned. If ``apply`` raises, that segment and the
        later ones stay for the next drain. Returns how many records were applied."""
        with self._drain_lock:
            with self._append_lock:
                if self._written:
                    # New appends go to a fresh segment while this one is applied.
                    os.close(self._fd)
                    self._sequence += 1
                    self._fd = self._open_segment()
                    self._written = 0
                current = self._segment_path(self._sequence)
            applied = 0
            for path in self._segments():
                if path == current:
                    continue
                records = self._read(path)
                if records:
                    apply(records)
                path.unlink()
                applied += len(records)
            return applied

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    # ── files ─────────────────────────────────────────────────────────────────────────
    def _segment_path(self, sequence: int) -> Path:
        return self.directory / f"{sequence:012d}{SUFFIX}"

    def _segments(self) -> List[Path]:
        return sorted(p for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit())

    def _open_segment(self) -> int:
        # 0600 whatever the umask (the records are patients' messages, redacted).
        fd = os.open(self._segment_path(self._sequence), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        return fd

    @staticmethod
    def _read(path: Path) -> List[Record]:
        records: List[Record] = []
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                # Only the last line can be torn (a crash mid-append); its webhook never got
                # a 200, so Meta sends it again. Anything else is worth a loud warning.
                level = logging.INFO if number >= len(lines) - 2 else logging.WARNING
                logger.log(level, "Skipped an unreadable journal line (%s, line %d)", path.name, number + 1)
        return records


def rewrite_idle(directory: Path, transform: Callable[[Record], Record]) -> Optional[int]:
    """Rewrite each record of every segment in ``directory`` through ``transform`` (a key
    rotation resealing the words), each segment atomically (a new 0600 file, then a rename),
    holding the directory's lock meanwhile: no door can start on it, drain or delete a
    segment half-rewritten. A directory a live door owns is left alone: None (that door
    drains its segments into the database within seconds, and writes new ones under its
    own keys). Unreadable lines are kept as they are. Returns the records changed."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    lock_fd = os.open(directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        changed = 0
        for path in sorted(p for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit()):
            lines: List[bytes] = []
            segment_changed = False
            for line in path.read_bytes().split(b"\n"):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    lines.append(line)
                    continue
                rewritten = transform(record)
                if rewritten is not record:
                    segment_changed = True
                    changed += 1
                lines.append(json.dumps(rewritten, separators=(",", ":"), default=str).encode())
            if not segment_changed:
                continue
            temporary = path.with_name(f".{path.name}.rewrite")
            fd = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"".join(line + b"\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        return changed
    finally:
        os.close(lock_fd)  # releases the lock
