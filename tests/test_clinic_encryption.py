"""Encryption at rest of the clinic database's message texts and the WhatsApp journal
(issue 18, item 1): the WhatsApp inbox, outbox and quarantine, the staff inbox's replies,
notes and call-back notes, and the door's journal lines.

What is checked, on SQLite and PostgreSQL: the raw column (and the SQLite file and its
write-ahead log, and the journal's bytes) does not hold what the patient wrote while the
stores give it back; ids, kinds, states and times stay in clear; rows written before the
keyring (plain text, or the inbox's Fernet tokens) still read; ``rotate`` re-seals every
value in batches of its size, one commit each, after which the old key can go; a key the
keyring lacks, or the wrong key under a known id, fails loudly naming the key id.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from clinic.at_rest import (
    CLINIC_KEYS_ENV,
    Keyring,
    Sealer,
    UndecryptableError,
    UnknownKeyError,
    clinic_keyring_in_use,
    clinic_sealer,
    load_clinic_keyring,
    new_key_entry,
)
from clinic.at_rest_rotation import (
    SEALED_COLUMNS,
    check_keys,
    journal_key_counts,
    key_counts,
    main,
    reencrypt_database,
    reseal_journals,
)
from clinic.db import checkpoint, create_schema, make_engine, make_session_factory
from clinic.inbox.tables import MessageRow, TaskRow
from clinic.messaging.journal_lines import open_record, seal_record
from clinic.messaging.quarantine import Quarantine
from clinic.messaging.store import WhatsAppStore
from clinic.messaging.turn import InboundTurn
from clinic.privacy import ContactCipher
from tests.pg_support import fresh_database
from whatsapp.journal import InboxJournal

SECRET = "QUOKKA-7731 rash on my left arm"
TITLE = "PELICAN-2210 I'll wait here"
REPLY = "MARMOT-5150 please come in today"
FALLBACK = "OCELOT-8080 default language"
NOTE = "WOMBAT-3141 check the lab system"
CALLBACK = "NARWHAL-2718 prefers mornings"
CONVERSATION = "c" * 64
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)

K1, K1_OTHER, K2 = new_key_entry("k1"), new_key_entry("k1"), new_key_entry("k2")


def keyring(*entries: str) -> Keyring:
    return Keyring.parse(",".join(entries), "test keyring")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(the URL, the SQLite file or None)."""
    if request.param == "sqlite":
        path = tmp_path / "clinic.db"
        yield f"sqlite:///{path}", path
    else:
        with fresh_database(request.getfixturevalue("postgres_url"), "sealed") as url:
            yield url, None


@pytest.fixture
def engine(database):
    engine = make_engine(database[0])
    create_schema(engine)
    yield engine
    engine.dispose()


def raw(engine, query: str) -> list:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(query))]


def turn(wamid: str = "wamid.1", text: str = SECRET, title=TITLE) -> InboundTurn:
    return InboundTurn(wamid=wamid, conversation_id=CONVERSATION, kind="button_reply", text=text,
                       received_at=NOW, title=title)


def fill(engine) -> dict:
    """A message waiting in the inbox, a queued reply with its fallback, a quarantined
    journal record: written through the stores (whatever keyring is in use)."""
    sessions = make_session_factory(engine)
    store = WhatsAppStore(sessions)
    store.accept([turn()], {})
    outbound = store.enqueue(CONVERSATION, "text", {"type": "text", "text": {"body": REPLY}}, priority=0,
                             fallback={"type": "text", "text": {"body": FALLBACK}})
    quarantined = Quarantine(sessions).add("journal", "journal_apply_failed", detail="X", wamid="wamid.q",
                                           conversation_id=CONVERSATION, kind="text",
                                           record={"type": "message", "text": SECRET})
    return {"store": store, "outbound": outbound, "quarantine": Quarantine(sessions), "quarantined": quarantined}


def all_raw_text(engine) -> str:
    parts = []
    for column in SEALED_COLUMNS:
        parts += [str(value) for (value,) in raw(engine, f"SELECT {column.column} FROM {column.table}")]
    return "\n".join(parts)


# ── sealed in the database, plain through the stores ─────────────────────────────────────
def test_the_whatsapp_tables_hold_no_clear_text_and_the_stores_give_it_back(database, engine):
    url, path = database
    with clinic_keyring_in_use(keyring(K1)):
        made = fill(engine)
        store = made["store"]
        pending = store.next_pending(CONVERSATION)
        assert (pending.turn.text, pending.turn.title) == (SECRET, TITLE)
        item = store.outbound_item(made["outbound"])
        assert item.payload["text"]["body"] == REPLY and item.fallback["text"]["body"] == FALLBACK
        assert made["quarantine"].message_text(made["quarantined"]) == SECRET
    # What the database holds: sealed under k1; what recovery, dedupe and analytics use, in clear.
    [(wamid, kind, state, text, metadata)] = raw(engine, "SELECT wamid, kind, state, text, metadata_json FROM wa_inbox")
    assert (wamid, kind, state) == ("wamid.1", "button_reply", "processing")
    assert text.startswith("enc:v1:k1:") and metadata.startswith("enc:v1:k1:")
    [(payload, fallback)] = raw(engine, "SELECT payload_json, fallback_json FROM wa_outbound")
    assert payload.startswith("enc:v1:k1:") and fallback.startswith("enc:v1:k1:")
    [(record,)] = raw(engine, "SELECT record_json FROM wa_quarantine")
    assert record.startswith("enc:v1:k1:")
    stored = all_raw_text(engine)
    for words in (SECRET, "QUOKKA", TITLE, "PELICAN", REPLY, "MARMOT", "OCELOT"):
        assert words not in stored
    if path is not None:  # nor anywhere in the SQLite file or its write-ahead log
        files = [path, path.with_name(path.name + "-wal")]
        data = b"".join(p.read_bytes() for p in files if p.exists())
        assert data and b"QUOKKA" not in data and b"PELICAN" not in data and b"MARMOT" not in data
        checkpoint(engine)
        assert b"QUOKKA" not in path.read_bytes()


def test_rows_written_before_the_keyring_still_read(engine):
    with engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO wa_inbox (wamid, conversation_id, kind, text, metadata_json, state, attempts, received_at) "
            "VALUES ('wamid.old', :c, 'text', :t, :m, 'pending', 0, :at)"),
            {"c": CONVERSATION, "t": SECRET, "m": json.dumps({"title": TITLE}), "at": NOW})
        connection.execute(sa.text(
            "INSERT INTO wa_outbound (conversation_id, kind, payload_json, state, attempts, created_at, updated_at, "
            "ambiguous, retries, priority) VALUES (:c, 'text', :p, 'queued', 0, :at, :at, false, 0, 0)"),
            {"c": CONVERSATION, "p": json.dumps({"text": {"body": REPLY}}), "at": NOW})
    with clinic_keyring_in_use(keyring(K1)):
        store = WhatsAppStore(make_session_factory(engine))
        pending = store.next_pending(CONVERSATION)
        assert (pending.turn.text, pending.turn.title) == (SECRET, TITLE)
        [item] = store.outbound()
        assert json.loads(item.payload_json)["text"]["body"] == REPLY


# ── the staff inbox ──────────────────────────────────────────────────────────────────────
@pytest.fixture(scope="module")
def rasa():
    from clinic.inbox.testing import FakeRasa

    fake = FakeRasa()
    fake.start()
    yield fake
    fake.stop()


def test_staff_replies_notes_and_callback_notes_are_sealed_and_fernet_rows_still_read(tmp_path, rasa):
    from tests.inbox_support import build_world, conversation

    patient = conversation("patient")
    with clinic_keyring_in_use(keyring(K1)):
        world = build_world(tmp_path / "clinic.db", rasa)
        nina = world.members["nina"].actor
        ticket = world.inbox.open_for_handoff(patient, "nurse").ticket
        world.inbox.claim(nina, ticket.id)
        world.inbox.add_note(nina, ticket.id, NOTE)
        world.inbox.reply(nina, ticket.id, REPLY)
        task = world.inbox.request_callback(patient, "nurse", CALLBACK)
        # A reply stored before the keyring: a Fernet token under CLINIC_ENCRYPTION_KEY.
        with world.sessions() as session, session.begin():
            old = world.inbox._cipher.encrypt("GECKO-1618 an older note")  # noqa: SLF001
            session.add(MessageRow(ticket_id=ticket.id, kind="note", author_id=world.members["nina"].id,
                                   text_encrypted=old, created_at=world.clock()))
        page = world.inbox.open_ticket_page(nina, ticket.id)
        texts = [item.text for item in page.timeline]
        assert NOTE in texts and REPLY in texts and "GECKO-1618 an older note" in texts
        assert [t.note for t in world.inbox.tasks(nina) if t.id == task.id] == [CALLBACK]
    with world.sessions() as session:
        stored = [m.text_encrypted for m in session.scalars(sa.select(MessageRow))]
        notes = [t.note_encrypted for t in session.scalars(sa.select(TaskRow))]
    sealed = [s for s in stored + notes if s.startswith("enc:v1:k1:")]
    assert len(sealed) >= 3 and sum(s.startswith("gAAAA") for s in stored) == 1
    everything = "\n".join(stored + notes)
    for words in ("WOMBAT", "MARMOT", "NARWHAL", "GECKO"):
        assert words not in everything
    # No search on message text in SQL: the inbox's lists filter on ticket fields only.


# ── rotation ─────────────────────────────────────────────────────────────────────────────
def test_rotation_reseals_every_kind_of_value_in_batches_and_the_old_key_can_go(engine, tmp_path):
    fernet = Fernet.generate_key()
    legacy = ContactCipher(fernet)
    with clinic_keyring_in_use(keyring(K1)):
        fill(engine)
        WhatsAppStore(make_session_factory(engine)).accept([turn("wamid.2", "second " + SECRET)], {})
    with engine.begin() as connection:  # and rows from before the keyring
        connection.execute(sa.text(
            "INSERT INTO wa_inbox (wamid, conversation_id, kind, text, state, attempts, received_at) "
            "VALUES ('wamid.plain', :c, 'text', :t, 'pending', 0, :at)"), {"c": CONVERSATION, "t": SECRET, "at": NOW})
        connection.execute(sa.text(
            "INSERT INTO inbox_staff (username, display_name, password_hash, totp_secret_encrypted, role, disabled, "
            "failed_logins, session_epoch, created_at) VALUES ('nina', 'Nina', 'x', 'x', 'agent', false, 0, 0, :at)"),
            {"at": NOW})
        connection.execute(sa.text(
            "INSERT INTO inbox_tickets (conversation_id, team, priority, state, reason, created_at, opened_at, "
            "reopen_count, bot_paused, version) VALUES (:c, 'nurse', 'normal', 'assigned', 'patient_request', :at, :at, "
            "0, false, 1)"), {"c": CONVERSATION, "at": NOW})
        ticket_id = connection.execute(sa.text("SELECT id FROM inbox_tickets")).scalar()
        staff_id = connection.execute(sa.text("SELECT id FROM inbox_staff")).scalar()
        for text in (legacy.encrypt(NOTE), Sealer(keyring(K1)).seal(REPLY)):
            connection.execute(sa.text(
                "INSERT INTO inbox_messages (ticket_id, kind, author_id, text_encrypted, created_at) "
                "VALUES (:t, 'note', :a, :x, :at)"), {"t": ticket_id, "a": staff_id, "x": text, "at": NOW})
        connection.execute(sa.text(
            "INSERT INTO inbox_tasks (conversation_id, team, note_encrypted, state, created_by, created_at) "
            "VALUES (:c, 'nurse', :n, 'open', 'bot', :at)"), {"c": CONVERSATION, "n": legacy.encrypt(CALLBACK), "at": NOW})
    before = key_counts(engine)
    assert before["wa_inbox.text"] == {"k1": 2, "plaintext": 1}
    assert before["inbox_messages.text_encrypted"] == {"fernet": 1, "k1": 1}

    happened = []  # the updates of wa_inbox.text (rows each) and the commits, in order

    def updates(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE wa_inbox SET text"):
            happened.append(("update", len(parameters) if executemany else 1))

    sa.event.listen(engine, "before_cursor_execute", updates)
    sa.event.listen(engine, "commit", lambda connection: happened.append(("commit", 0)))
    new_keys = Sealer(keyring(K2, K1))
    done = reencrypt_database(engine, new_keys, legacy.decrypt, batch_size=2)
    assert done["wa_inbox.text"] == {"k1": 2, "plaintext": 1}
    assert done["wa_inbox.metadata_json"] == {"k1": 2}
    assert done["wa_outbound.payload_json"] == {"k1": 1} and done["wa_outbound.fallback_json"] == {"k1": 1}
    assert done["wa_quarantine.record_json"] == {"k1": 1}
    assert done["inbox_messages.text_encrypted"] == {"fernet": 1, "k1": 1}
    assert done["inbox_tasks.note_encrypted"] == {"fernet": 1}
    # Batches of two, each committed before the next: wa_inbox.text's 3 values took two.
    text_updates = [(kind, n) for kind, n in happened if kind == "update"]
    assert text_updates == [("update", 2), ("update", 1)]
    first, second = (i for i, (kind, _) in enumerate(happened) if kind == "update")
    assert ("commit", 0) in happened[first:second] and happened[second + 1] == ("commit", 0)
    after = key_counts(engine)
    assert all(set(counts) <= {"k2"} for counts in after.values()), after
    # Nothing left to do.
    assert all(not counts for counts in reencrypt_database(engine, new_keys, legacy.decrypt).values())

    # The old key (and the Fernet key) can go: everything reads with k2 alone.
    with clinic_keyring_in_use(keyring(K2)) as only_k2:
        store = WhatsAppStore(make_session_factory(engine))
        texts = set()
        while (pending := store.next_pending(CONVERSATION)) is not None:
            texts.add(pending.turn.text)
            store.finish(pending.id)
        assert texts == {SECRET, "second " + SECRET}
        [item] = [store.outbound_item(row.id) for row in store.outbound()]
        assert item.payload["text"]["body"] == REPLY and item.fallback["text"]["body"] == FALLBACK
        opened = {only_k2.open(v) for (v,) in raw(engine, "SELECT text_encrypted FROM inbox_messages")}
        assert opened == {NOTE, REPLY}
        assert [only_k2.open(v) for (v,) in raw(engine, "SELECT note_encrypted FROM inbox_tasks")] == [CALLBACK]


def test_the_command_line_adds_a_key_rotates_and_reports(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    engine = make_engine(url)
    create_schema(engine)
    key_file = tmp_path / "clinic-encryption.keys"
    environ = {"CLINIC_DATABASE_URL": url, "WHATSAPP_JOURNAL_DIR": str(tmp_path / "journal"),
               "CLINIC_ENCRYPTION_KEY": Fernet.generate_key().decode()}
    first = load_clinic_keyring({}, key_file)
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    with clinic_keyring_in_use(first):
        fill(engine)
    assert main(["new-key", "--key-file", str(key_file)], environ) == 0
    second = load_clinic_keyring({}, key_file)
    assert second.current != first.current and list(second.keys)[1] == first.current
    assert main(["status", "--key-file", str(key_file)], environ) == 0
    assert f"wa_inbox.text: {first.current}: 1" in capsys.readouterr().out
    assert main(["rotate", "--key-file", str(key_file), "--batch-size", "1", "--pause", "0"], environ) == 0
    out = capsys.readouterr().out
    assert f"current key {second.current}" in out and "wa_inbox.text: re-sealed 1" in out
    assert main(["status", "--key-file", str(key_file)], environ) == 0
    assert f"{first.current}:" not in capsys.readouterr().out
    # With the variable, new-key prints an entry instead of touching a file.
    assert main(["new-key"], {**environ, CLINIC_KEYS_ENV: K1}) == 0
    assert "put this entry first" in capsys.readouterr().out


# ── loud failures ────────────────────────────────────────────────────────────────────────
def test_a_missing_or_wrong_key_fails_naming_the_key_id(engine):
    with clinic_keyring_in_use(keyring(K1)):
        made = fill(engine)
    store = made["store"]
    with clinic_keyring_in_use(keyring(K2)):
        with pytest.raises(UnknownKeyError, match=r"key 'k1', which is not in test keyring \(it has k2\)"):
            store.next_pending(CONVERSATION)
        with pytest.raises(UnknownKeyError, match="'k1'"):
            made["quarantine"].message_text(made["quarantined"])
    with clinic_keyring_in_use(keyring(K1_OTHER)):
        with pytest.raises(UndecryptableError, match="key 'k1' does not open with the key of that id"):
            store.outbound_item(made["outbound"])
    # At start, a process opens the newest value of each column: the same errors, before any work.
    check_keys(engine, Sealer(keyring(K1)))
    with pytest.raises(UnknownKeyError, match="'k1'"):
        check_keys(engine, Sealer(keyring(K2)))
    with pytest.raises(UndecryptableError, match="'k1'"):
        check_keys(engine, Sealer(keyring(K1_OTHER)))
    # The rotation stops at the first value it cannot open, naming the key; nothing garbled.
    with pytest.raises(UnknownKeyError, match="'k1'"):
        reencrypt_database(engine, Sealer(keyring(K2)))
    assert "k2" not in json.dumps(key_counts(engine))


def test_the_process_keyring_comes_from_the_variable_else_a_private_file(tmp_path):
    key_file = tmp_path / "keys"
    from_file = clinic_sealer({}, key_file)
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert clinic_sealer({}, key_file) is from_file  # loaded once
    from_variable = clinic_sealer({CLINIC_KEYS_ENV: f"{K2},{K1}"}, key_file)
    assert from_variable.keyring.current == "k2" and list(from_variable.keyring.keys) == ["k2", "k1"]
    # A key added to the file by another process (new-key) is read when a value names it.
    from clinic.at_rest import add_key_to_file

    newer = add_key_to_file(key_file)
    sealed_elsewhere = Sealer(newer).seal(SECRET)
    assert from_file.open(sealed_elsewhere) == SECRET


# ── the journal ──────────────────────────────────────────────────────────────────────────
def message_line(wamid: str) -> dict:
    return {"type": "message", **turn(wamid).to_json(), "address_encrypted": "gAAAA-address"}


def test_journal_lines_keep_ids_in_clear_and_the_words_sealed(tmp_path):
    sealer = Sealer(keyring(K1))
    line = seal_record(message_line("wamid.j1"), sealer)
    assert "text" not in line and "title" not in line and line["sealed"].startswith("enc:v1:k1:")
    assert (line["wamid"], line["conversation_id"], line["kind"]) == ("wamid.j1", CONVERSATION, "button_reply")
    assert InboundTurn.from_json(open_record(line, sealer)) == turn("wamid.j1")
    # Lines written before sealing, statuses and malformed lines pass as they are.
    plain = message_line("wamid.j0")
    assert open_record(plain, sealer) == plain and open_record(["odd"], sealer) == ["odd"]
    status = {"type": "status", "wamid": "wamid.o", "status": "read"}
    assert seal_record(status, sealer) == status
    with pytest.raises(UnknownKeyError, match="'k1'"):
        open_record(line, Sealer(keyring(K2)))


def test_rotation_rewrites_idle_journal_folders_and_leaves_a_running_doors_alone(tmp_path):
    root = tmp_path / "journal"
    old = Sealer(keyring(K1))
    idle = InboxJournal(root / "gateway")
    idle.append([seal_record(message_line("wamid.a"), old), message_line("wamid.b"),
                 {"type": "status", "wamid": "wamid.o", "status": "read"}])
    idle.close()  # its door is gone; the segment stays
    live = InboxJournal(root / "channel")
    live.append([seal_record(message_line("wamid.c"), old)])
    raw_before = b"".join(p.read_bytes() for p in root.rglob("*.jsonl"))
    assert b"QUOKKA" in raw_before  # the line written before sealing
    assert journal_key_counts([root]) == {"k1": 2, "plaintext": 1}

    new = Sealer(keyring(K2, K1))
    result = reseal_journals([root], new)
    assert result == {str(root): 0, str(root / "channel"): None, str(root / "gateway"): 2}
    assert journal_key_counts([root]) == {"k2": 2, "k1": 1}  # the running door's line waits for it
    gateway_bytes = b"".join(p.read_bytes() for p in (root / "gateway").glob("*.jsonl"))
    assert b"QUOKKA" not in gateway_bytes and b"PELICAN" not in gateway_bytes
    for path in (root / "gateway").glob("*.jsonl"):
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    # With k2 alone, the rewritten folder reads: a new door drains it.
    only_k2 = Sealer(keyring(K2))
    again = InboxJournal(root / "gateway")
    batches = []
    again.drain(batches.append)
    records = [open_record(r, only_k2) for batch in batches for r in batch]
    assert [r["wamid"] for r in records] == ["wamid.a", "wamid.b", "wamid.o"]
    assert [InboundTurn.from_json(r).text for r in records[:2]] == [SECRET, SECRET]
    live.close()
    again.close()


@pytest.mark.asyncio
async def test_the_door_writes_sealed_journal_lines_and_the_inbox_reads_them(tmp_path, monkeypatch):
    from tests.connector_support import envelope, make_channel, signed, text

    with clinic_keyring_in_use(keyring(K1)):
        channel = make_channel(tmp_path, monkeypatch)
        assert (await channel.receive_webhook(*signed(envelope(text("16505551234", SECRET)))))[0] == 200
        on_disk = b"".join(p.read_bytes() for p in channel.journal.directory.glob("*.jsonl"))
        assert b"QUOKKA" not in on_disk and b'"sealed":"enc:v1:k1:' in on_disk and b"wamid" in on_disk
        await channel.flush_journal()
        conversation = channel.conversation_id("16505551234")
        assert channel.store.next_pending(conversation).turn.text == SECRET
    channel.journal.close()
    # Restarted without k1: the door refuses to start, naming the key.
    with clinic_keyring_in_use(keyring(K2)):
        with pytest.raises(UnknownKeyError, match="'k1'"):
            make_channel(tmp_path, monkeypatch)


def test_every_sealed_column_is_a_sealed_type():
    from clinic.at_rest import SealedText
    from clinic.db import Base, import_models

    import_models()
    tables = Base.metadata.tables
    for column in SEALED_COLUMNS:
        kind = tables[column.table].c[column.column].type
        assert isinstance(kind, SealedText) or column.fernet_before, column.name

