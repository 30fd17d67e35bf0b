"""Media patients send in the chat (photos, voice notes, videos, documents, stickers), kept
encrypted for staff (issue 19, item 3).

The door records only Meta's media id with the message (clinic/messaging/turn.py
``MediaRef``); the gateway, processing the message, records an ``inbound_media`` row
(``pending``) and downloads the bytes through the Graph API (gateway/media.py). The bytes are
stored the way patients' portal uploads are (clinic/portal/uploads.py): AES-256-GCM with the
document key (``CLINIC_DOCUMENT_KEY`` or ``var/document.key``), a fresh nonce per value, the
associated data naming the row and the field, and the key's fingerprint (``key_ref``) on the
row. Unlike uploads (at most 10 MB, in the database) a chat's media can be a 100 MB document,
so the sealed bytes are a file of their own (mode 0600) in the media folder: beside a SQLite
database file (``<database>-media``, so each test stack has its own) or ``var/media``.

States: ``pending`` (recorded, not fetched yet; ``attempts`` counts tries, and a fetch in
progress holds the row under a lease, ``lease_until``, so no other worker or sweep fetches it too) → ``stored`` |
``failed`` (the download failed for good: ``reason``) | ``too_large`` (over the maximum for its
type: Meta's documented limits by default) | ``unsupported`` (a type WhatsApp does not
forward or this product does not know). What staff see: clinic/inbox and inbox/media.py.
Retention: ``media`` in content/clinic.yml (clinic/retention.py deletes rows and files);
erasure on request deletes them too (clinic/privacy_erasure.py).

Each row names the conversation's pseudonymous id and the patient's message (its wamid and
the ``wa_inbox`` row), which is how the ticket's transcript finds it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Tuple

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, delete, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.db import VAR_DIR, Base
from clinic.messaging.turn import MediaRef
from clinic.portal.uploads import DocumentCipher, DocumentKeyError

logger = logging.getLogger(__name__)

PENDING, STORED, FAILED, TOO_LARGE, UNSUPPORTED = "pending", "stored", "failed", "too_large", "unsupported"
STATES = (PENDING, STORED, FAILED, TOO_LARGE, UNSUPPORTED)
# Kinds fetched (a voice note is an ``audio`` message with ``voice: true``).
FETCHED_KINDS = ("image", "audio", "voice", "video", "document", "sticker")
# What staff read for each kind.
KIND_WORDS = {"image": "photo", "audio": "audio", "voice": "voice message", "video": "video",
              "document": "document", "sticker": "sticker"}
# Shown in the browser (<img>, <audio>, <video>) rather than offered as a download.
INLINE_TYPES = {"image/jpeg", "image/png", "image/webp", "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac",
                "audio/amr", "video/mp4", "video/3gpp"}
FILE_SUFFIX = ".sealed"


class InboundMediaRow(Base):
    __tablename__ = "inbound_media"

    id = Column(String(24), primary_key=True)  # med_<16 hex>
    conversation_id = Column(String(64), nullable=False)  # the pseudonymous conversation id
    wamid = Column(String(191), nullable=False, unique=True)  # the patient's message
    inbox_id = Column(Integer, nullable=True)  # its wa_inbox row
    kind = Column(String(16), nullable=False)
    meta_media_id = Column(String(64), nullable=True)  # Meta's id (downloadable for 7 days)
    mime_type = Column(String(100), nullable=True)
    expected_sha256 = Column(String(100), nullable=True)  # as the webhook gave it
    state = Column(String(12), nullable=False)
    reason = Column(String(200), nullable=True)  # why failed / too_large / unsupported
    attempts = Column(Integer, nullable=False, default=0)
    # A fetch in progress holds the row until then (several gateway workers, the sweep).
    lease_until = Column(DateTime(timezone=True), nullable=True)
    size_bytes = Column(Integer, nullable=True)
    key_ref = Column(String(32), nullable=True)
    name_sealed = Column(LargeBinary, nullable=True)  # a document's file name, sealed
    received_at = Column(DateTime(timezone=True), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False)
    stored_at = Column(DateTime(timezone=True), nullable=True)

    __table_args__ = (
        Index("ix_inbound_media_conversation", "conversation_id"),
        Index("ix_inbound_media_created", "created_at"),
    )


class MediaKeyError(DocumentKeyError):
    """A stored media file was sealed with another key, was changed, or is missing."""


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What staff see of one media (no content)."""

    id: str
    conversation_id: str
    wamid: str
    kind: str
    state: str
    mime_type: Optional[str]
    size_bytes: Optional[int]
    reason: Optional[str]
    name: Optional[str]
    received_at: dt.datetime

    @property
    def words(self) -> str:
        return KIND_WORDS.get(self.kind, self.kind)

    @property
    def shows_as(self) -> str:
        """image | audio | video | link | none (how the ticket page shows it)."""
        if self.state != STORED:
            return "none"
        media_type = (self.mime_type or "").split(";")[0].strip().lower()
        if media_type in INLINE_TYPES:
            return media_type.split("/")[0]
        return "link"

    @property
    def size_label(self) -> str:
        size = self.size_bytes or 0
        if size < 1024:
            return f"{size} B"
        if size < 1024 * 1024:
            return f"{size / 1024:.0f} KB"
        return f"{size / (1024 * 1024):.1f} MB"

    @property
    def download_name(self) -> str:
        if self.name:
            return self.name
        suffix = (self.mime_type or "").split(";")[0].split("/")[-1].strip() or "bin"
        return f"{self.words.replace(' ', '-')}-{self.id}.{suffix}"


def media_directory(database_url: str) -> Path:
    """Beside a SQLite database file (``<file>-media``), else ``var/media``; like the journal."""
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        database = Path(database_url.removeprefix("sqlite:///"))
        return database.with_name(database.name + "-media")
    if database_url.startswith("sqlite"):
        return Path(tempfile.mkdtemp(prefix="inbound-media-"))
    return VAR_DIR / "media"


def _aad(media_id: str, field: str) -> bytes:
    return f"inbound_media:{media_id}:{field}".encode("ascii")


def _aware(moment: Optional[dt.datetime]) -> dt.datetime:
    if moment is None:
        return utcnow()
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


class MediaStore:
    """Recording and storing (the gateway), reading (the inbox), purging (retention, erasure)."""

    def __init__(self, sessions: sessionmaker, directory: Path, cipher: Optional[DocumentCipher] = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._sessions = sessions
        self.directory = Path(directory)
        self._cipher = cipher
        self._clock = clock

    @classmethod
    def for_database(cls, sessions: sessionmaker, database_url: str,
                     cipher: Optional[DocumentCipher] = None) -> "MediaStore":
        return cls(sessions, media_directory(database_url), cipher)

    @property
    def sessions(self) -> sessionmaker:
        return self._sessions

    def _need_cipher(self) -> DocumentCipher:
        if self._cipher is None:
            self._cipher = DocumentCipher.from_environment()
        return self._cipher

    def path_of(self, media_id: str) -> Path:
        return self.directory / f"{media_id}{FILE_SUFFIX}"

    # ── recording (gateway) ─────────────────────────────────────────────────────────
    def record(self, conversation_id: str, wamid: str, ref: MediaRef, received_at: dt.datetime,
               inbox_id: Optional[int] = None) -> Tuple[str, str]:
        """The row for a message's media, created once per wamid; returns (id, state).
        A kind that is not fetched, or a reference without an id, is ``unsupported`` at once."""
        with self._sessions() as session, session.begin():
            row = session.scalars(select(InboundMediaRow).where(InboundMediaRow.wamid == wamid)).first()
            if row is not None:
                return row.id, row.state
            fetchable = ref.kind in FETCHED_KINDS and bool(ref.media_id)
            media_id = "med_" + secrets.token_hex(8)
            name_sealed = None
            if ref.filename and fetchable:
                name_sealed = self._need_cipher().seal(ref.filename[:200].encode("utf-8"), _aad(media_id, "name"))
            row = InboundMediaRow(
                id=media_id, conversation_id=conversation_id, wamid=wamid, inbox_id=inbox_id,
                kind=ref.kind[:16], meta_media_id=(ref.media_id or "")[:64] or None,
                mime_type=(ref.mime_type or "")[:100] or None, expected_sha256=(ref.sha256 or "")[:100] or None,
                state=PENDING if fetchable else UNSUPPORTED,
                reason=None if fetchable else f"type {ref.kind!r} is not shown to staff",
                attempts=0, key_ref=self._cipher.key_ref if name_sealed and self._cipher else None,
                name_sealed=name_sealed, received_at=received_at, created_at=self._clock())
            session.add(row)
            return media_id, row.state

    def pending_of(self, media_id: str) -> Optional[Tuple[str, str, Optional[str]]]:
        """(Meta's media id, kind, expected sha256) of a row still waiting to be fetched."""
        with self._sessions() as session:
            row = session.get(InboundMediaRow, media_id)
            if row is None or row.state != PENDING or not row.meta_media_id:
                return None
            return row.meta_media_id, row.kind, row.expected_sha256

    def claim(self, media_id: str, lease_seconds: float) -> Optional[int]:
        """Take a ``pending`` row for one fetch (held ``lease_seconds``, so no other worker or
        sweep fetches it meanwhile) and count the attempt; returns the attempt's number, or
        None if the row is not pending or another fetch holds it."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            row = session.scalars(select(InboundMediaRow).where(InboundMediaRow.id == media_id)
                                  .with_for_update()).first()
            if row is None or row.state != PENDING:
                return None
            if row.lease_until is not None and _aware(row.lease_until) > now:
                return None
            row.lease_until = now + dt.timedelta(seconds=lease_seconds)
            row.attempts = (row.attempts or 0) + 1
            return int(row.attempts)

    def release(self, media_id: str) -> None:
        """A fetch that will be tried again later gives the row back."""
        with self._sessions() as session, session.begin():
            row = session.get(InboundMediaRow, media_id)
            if row is not None:
                row.lease_until = None

    def store(self, media_id: str, content: bytes, mime_type: str) -> None:
        """Seal ``content`` into the media folder (0600, written then renamed) and mark the
        row ``stored``. The plaintext never touches the disk."""
        cipher = self._need_cipher()
        sealed = cipher.seal(content, _aad(media_id, "content"))
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path_of(media_id)
        temporary = target.with_name(target.name + ".part")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(sealed)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.chmod(temporary, 0o600)
        os.replace(temporary, target)
        with self._sessions() as session, session.begin():
            row = session.get(InboundMediaRow, media_id)
            if row is None:  # erased meanwhile
                target.unlink(missing_ok=True)
                return
            row.state, row.reason, row.lease_until = STORED, None, None
            row.mime_type = mime_type[:100]
            row.size_bytes = len(content)
            row.key_ref = cipher.key_ref
            row.stored_at = self._clock()

    def mark(self, media_id: str, state: str, reason: str, size_bytes: Optional[int] = None) -> None:
        """A terminal outcome other than ``stored`` (failed, too_large, unsupported)."""
        if state not in STATES or state in (PENDING, STORED):
            raise ValueError(f"not a terminal failure state: {state}")
        with self._sessions() as session, session.begin():
            row = session.get(InboundMediaRow, media_id)
            if row is not None:
                row.state, row.reason, row.lease_until = state, reason[:200], None
                if size_bytes is not None:
                    row.size_bytes = size_bytes

    def pending(self, limit: int = 20, older_than: float = 0.0) -> List[str]:
        """Rows still waiting (a crash, or a fetch that will be tried again), oldest first;
        ``older_than`` seconds: leave alone what a turn is fetching right now."""
        now = self._clock()
        cutoff = now - dt.timedelta(seconds=older_than)
        with self._sessions() as session:
            return list(session.scalars(select(InboundMediaRow.id).where(
                InboundMediaRow.state == PENDING, InboundMediaRow.created_at <= cutoff,
                (InboundMediaRow.lease_until.is_(None)) | (InboundMediaRow.lease_until <= now))
                                        .order_by(InboundMediaRow.created_at).limit(limit)))

    # ── reading (inbox) ─────────────────────────────────────────────────────────────
    def for_conversation(self, conversation_id: str, limit: int = 200) -> List[MediaInfo]:
        with self._sessions() as session:
            rows = session.scalars(select(InboundMediaRow).where(InboundMediaRow.conversation_id == conversation_id)
                                   .order_by(InboundMediaRow.received_at, InboundMediaRow.id).limit(limit)).all()
            return [self._info(row) for row in rows]

    def read(self, session: Session, media_id: str, conversation_id: str) -> Optional[Tuple[MediaInfo, bytes]]:
        """A stored media of ``conversation_id``, decrypted, in the caller's session (so the
        caller's audit row and the read share a transaction); None if there is none."""
        row = session.scalars(select(InboundMediaRow).where(InboundMediaRow.id == media_id,
                                                            InboundMediaRow.conversation_id == conversation_id)).first()
        if row is None or row.state != STORED:
            return None
        cipher = self._need_cipher()
        if row.key_ref != cipher.key_ref:
            raise MediaKeyError("the media was encrypted with another key (CLINIC_DOCUMENT_KEY or "
                                "var/document.key changed)")
        try:
            sealed = self.path_of(row.id).read_bytes()
        except FileNotFoundError:
            raise MediaKeyError("the stored file is missing") from None
        try:
            content = cipher.open(sealed, _aad(row.id, "content"), row.key_ref)
        except DocumentKeyError as error:
            raise MediaKeyError(str(error)) from None
        return self._info(row), content

    def _info(self, row: InboundMediaRow) -> MediaInfo:
        name = None
        if row.name_sealed is not None and row.key_ref:
            try:
                name = self._need_cipher().open(row.name_sealed, _aad(row.id, "name"), row.key_ref).decode("utf-8")
            except DocumentKeyError:
                name = None
        return MediaInfo(row.id, row.conversation_id, row.wamid, row.kind, row.state, row.mime_type,
                         row.size_bytes, row.reason, name, _aware(row.received_at))

    # ── purging (retention, erasure) ─────────────────────────────────────────────────
    def delete_files(self, media_ids: Iterable[str]) -> int:
        removed = 0
        for media_id in media_ids:
            for path in (self.path_of(media_id), self.path_of(media_id).with_name(self.path_of(media_id).name + ".part")):
                try:
                    path.unlink()
                    removed += path.suffix == FILE_SUFFIX
                except FileNotFoundError:
                    pass
        return removed


def delete_media_rows(session: Session, condition) -> List[str]:
    """Delete the ``inbound_media`` rows matching ``condition`` in the caller's transaction;
    returns their ids (the caller deletes the files once the transaction committed)."""
    ids = list(session.scalars(select(InboundMediaRow.id).where(condition)))
    if ids:
        session.execute(delete(InboundMediaRow).where(InboundMediaRow.id.in_(ids)))
    return ids
