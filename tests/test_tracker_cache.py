"""addons/tracker_cache.py hands over the tracker Rasa would read from its SQL store (issue 15).

Real turns (the benchmark's message mix: greeting, FAQ answers through the action server,
a booking started and left, menu, thanks, goodbye) through an Agent on a SQLite tracker
store and a real action server: after every turn the kept tracker equals, event for event
and in its whole serialised state, the tracker Rasa's own reader builds from the database,
and the next turn uses it. Rows written by someone else make the next read go to the database.
The same with the project's encrypted store (addons/encrypted_tracker_store.py, endpoints.yml).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from addons import tracker_cache
from benchmarks.turn_bench import PROJECT_TURNS

pytestmark = [pytest.mark.model, pytest.mark.servers]


def as_json(value):
    return json.loads(json.dumps(value))


@pytest.fixture(scope="module")
def action_server(tmp_path_factory, model):
    # `model`: tests/conftest.py (trained first if needed, so a fresh clone runs this too).
    from benchmarks.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("actions"), model)
    stack.start_actions()
    yield stack
    stack.stop()


@pytest.mark.parametrize("encrypted", [False, True], ids=["rasa-sql", "encrypted-sql"])
def test_kept_trackers_equal_what_rasa_reads_from_the_database(action_server, model, tmp_path, monkeypatch,
                                                               encrypted):
    from rasa.core.agent import Agent
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.trackers import EventVerbosity
    from rasa.utils.endpoints import EndpointConfig

    monkeypatch.setenv("LEAN_TURNS", "1")
    assert tracker_cache.apply()
    tracker_cache.TRACKERS.clear()
    agent = Agent.load(str(model), action_endpoint=EndpointConfig(f"{action_server.url('actions')}/webhook"))
    if encrypted:
        from addons.encrypted_tracker_store import EncryptedSQLTrackerStore
        from clinic.at_rest import Keyring, new_key_entry

        store = EncryptedSQLTrackerStore(agent.domain, dialect="sqlite", db=str(tmp_path / "tracker.db"),
                                         keyring=Keyring.parse(new_key_entry("k1")))
    else:
        store = SQLTrackerStore(agent.domain, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    agent.tracker_store = store
    agent.processor.tracker_store = store
    sender = "patient-1"

    async def conversation():
        for n, text in enumerate(PROJECT_TURNS * 3):
            replies = await agent.handle_text(text, sender_id=sender)
            assert replies, text
            kept = tracker_cache.TRACKERS.kept.get((id(store), sender))
            if n == 0:
                assert kept is None  # a new session started in it: not kept
                continue
            assert kept is not None, n
            from_database = await tracker_cache._ORIGINALS["retrieve"](store, sender)
            # As JSON (what the action server, the API and the store see): in memory the NLU
            # leaves `text_tokens` as tuples, which the database gives back as lists.
            assert as_json([e.as_dict() for e in kept.tracker.events]) == as_json(
                [e.as_dict() for e in from_database.events])
            assert as_json(kept.tracker.current_state(EventVerbosity.ALL)) == as_json(
                from_database.current_state(EventVerbosity.ALL))
        # Another writer (the API, another Rasa process): the next read is from the database.
        tracker = await tracker_cache._ORIGINALS["retrieve"](store, sender)
        from rasa.shared.core.events import SlotSet

        tracker.update(SlotSet("language", "en"))
        await tracker_cache._ORIGINALS["save"](store, tracker)
        misses = tracker_cache.TRACKERS.misses
        fresh = await store.retrieve(sender)
        assert tracker_cache.TRACKERS.misses == misses + 1
        assert fresh.events[-1] == SlotSet("language", "en")

    asyncio.run(conversation())
    assert tracker_cache.TRACKERS.hits >= len(PROJECT_TURNS) * 3 - 2
    if encrypted:
        import sqlite3

        with sqlite3.connect(tmp_path / "tracker.db") as db:
            data = [row[0] for row in db.execute("SELECT data FROM events")]
        assert data and all(value.startswith("enc:v1:k1:") for value in data)
