"""The webhook door's journal: durable appends, ordered drains, crash leftovers, one owner."""

import stat

import pytest

from whatsapp.journal import InboxJournal, JournalInUse


def drained(journal):
    batches = []
    journal.drain(batches.append)
    return batches


def test_records_come_back_in_order_once_and_the_files_go(tmp_path):
    journal = InboxJournal(tmp_path / "j")
    journal.append([{"n": 1}, {"n": 2}])
    journal.append([{"n": 3}])
    assert drained(journal) == [[{"n": 1}, {"n": 2}, {"n": 3}]]
    assert drained(journal) == []
    journal.append([{"n": 4}])
    assert drained(journal) == [[{"n": 4}]]
    assert [p for p in (tmp_path / "j").glob("*.jsonl") if p.stat().st_size] == []


def test_files_are_private(tmp_path):
    journal = InboxJournal(tmp_path / "j")
    journal.append([{"n": 1}])
    [segment] = (tmp_path / "j").glob("*.jsonl")
    assert stat.S_IMODE(segment.stat().st_mode) == 0o600


def test_a_failed_apply_keeps_the_records_for_the_next_drain(tmp_path):
    journal = InboxJournal(tmp_path / "j")
    journal.append([{"n": 1}])

    def fail(_records):
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        journal.drain(fail)
    journal.append([{"n": 2}])
    assert drained(journal) == [[{"n": 1}], [{"n": 2}]]


def test_a_dead_owners_segments_are_drained_first_and_a_torn_last_line_is_skipped(tmp_path):
    directory = tmp_path / "j"
    first = InboxJournal(directory)
    first.append([{"n": 1}])
    first.drain(lambda r: None)  # rotates: {"n": 2} goes to a newer segment
    first.append([{"n": 2}, {"n": 3}])
    [segment] = [p for p in directory.glob("*.jsonl") if p.stat().st_size]
    with segment.open("ab") as f:
        f.write(b'{"n": 4, "torn')  # killed in the middle of an append
    first.close()
    second = InboxJournal(directory)
    second.append([{"n": 5}])
    assert drained(second) == [[{"n": 2}, {"n": 3}], [{"n": 5}]]


def test_two_live_processes_cannot_share_a_directory(tmp_path):
    owner = InboxJournal(tmp_path / "j")
    with pytest.raises(JournalInUse, match="WHATSAPP_JOURNAL_DIR"):
        InboxJournal(tmp_path / "j")
    owner.close()
    InboxJournal(tmp_path / "j")  # free again once the owner is gone


def test_fsync_mode_writes_the_same_records(tmp_path):
    journal = InboxJournal(tmp_path / "j", fsync=True)
    journal.append([{"text": "ünïcode ✓"}])
    assert drained(journal) == [[{"text": "ünïcode ✓"}]]
