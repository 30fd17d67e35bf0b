"""Rasa's lock store for several replicas (addons/lock_store.py), against a real Redis.

Each "replica" is a thread with its own event loop and its own Redis connection, all taking
the same conversation's lock: the lock must let one holder in at a time and lose nobody.
Rasa's own ``RedisLockStore`` is the control (RasaHQ/rasa#9213): under the same contention it
issues one ticket number twice, and two holders are inside at once.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import uuid

from rasa.core.lock_store import InMemoryLockStore, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

from addons.lock_store import AtomicRedisLockStore, EnvironmentLockStore

REPLICAS = 4


def atomic_store(redis_server, prefix="test"):
    return AtomicRedisLockStore(redis_server.url(), key_prefix=prefix, poll_seconds=0.02)


def rasa_store(redis_server, prefix="test"):
    return RedisLockStore(host=redis_server.host, port=redis_server.port, key_prefix=prefix)


def test_the_environment_chooses_redis_or_memory(redis_server, monkeypatch):
    config = EndpointConfig(type="addons.lock_store.EnvironmentLockStore", key_prefix="clinic")
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert isinstance(EnvironmentLockStore(endpoint_config=config), InMemoryLockStore)
    monkeypatch.setenv("REDIS_URL", redis_server.url(2))
    store = EnvironmentLockStore(endpoint_config=config)
    assert isinstance(store, AtomicRedisLockStore) and store.key_prefix == "clinic:lock:"
    store.issue_ticket("c1")
    assert store.red.connection_pool.connection_kwargs["db"] == 2
    assert store.red.exists("clinic:lock:c1") and 0 < store.red.pttl("clinic:lock:c1")
    monkeypatch.setenv("RASA_LOCK_KEY_PREFIX", "staging")
    assert EnvironmentLockStore(endpoint_config=config).key_prefix == "staging:lock:"


def issue_concurrently(make_store, conversation: str, per_replica: int = 100) -> list:
    numbers: list = []
    start = threading.Barrier(REPLICAS)

    def replica() -> None:
        store = make_store()
        start.wait()
        for _ in range(per_replica):
            numbers.append(store.issue_ticket(conversation, 600))

    threads = [threading.Thread(target=replica) for _ in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return numbers


def hold_concurrently(make_store, conversation: str, per_replica: int = 25, lifetime: float = 30) -> dict:
    """Every replica takes the lock ``per_replica`` times; counts how many were inside at once
    and the attempts that failed (an error, or still waiting ``lifetime`` + 5 s later)."""
    state = {"inside": 0, "most_inside": 0, "served": 0, "errors": []}
    guard = threading.Lock()
    start = threading.Barrier(REPLICAS)

    async def one(store) -> None:
        await asyncio.wait_for(turn(store), timeout=lifetime + 5)  # a stuck waiter is an error

    async def turn(store) -> None:
        async with store.lock(conversation, lifetime, 0.02):
            with guard:
                state["inside"] += 1
                state["most_inside"] = max(state["most_inside"], state["inside"])
            await asyncio.sleep(0.002)  # a turn
            with guard:
                state["inside"] -= 1
                state["served"] += 1

    def replica() -> None:
        store = make_store()
        start.wait()

        async def run() -> None:
            results = await asyncio.gather(*(one(store) for _ in range(per_replica)), return_exceptions=True)
            state["errors"] += [r for r in results if isinstance(r, BaseException)]

        asyncio.run(run())

    threads = [threading.Thread(target=replica) for _ in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state


def test_tickets_are_unique_across_replicas(redis_server):
    conversation = f"c-{uuid.uuid4().hex}"
    numbers = issue_concurrently(lambda: atomic_store(redis_server), conversation)
    assert sorted(numbers) == list(range(len(numbers)))  # 0, 1, 2, … each once


def test_one_holder_at_a_time_across_replicas_and_nobody_lost(redis_server):
    conversation = f"c-{uuid.uuid4().hex}"
    state = hold_concurrently(lambda: atomic_store(redis_server), conversation)
    assert state["errors"] == []
    assert state["most_inside"] == 1
    assert state["served"] == REPLICAS * 25
    assert not atomic_store(redis_server).red.exists(f"test:lock:{conversation}")  # cleaned up


def test_control_rasa_redis_lock_store_is_not_safe_across_replicas(redis_server):
    """The control: the same contention breaks Rasa's RedisLockStore (RasaHQ/rasa#9213) — so
    the tests above can fail."""
    numbers = issue_concurrently(lambda: rasa_store(redis_server), f"c-{uuid.uuid4().hex}")
    duplicates = [n for n, count in collections.Counter(numbers).items() if count > 1]
    state = hold_concurrently(lambda: rasa_store(redis_server), f"c-{uuid.uuid4().hex}", per_replica=10, lifetime=3)
    assert duplicates, "Rasa's store issued unique tickets under contention"
    # Two holders at once, or waiters that failed: their tickets were overwritten, so they
    # wait for a turn that never comes (or find the lock deleted under them).
    assert state["most_inside"] > 1 or state["errors"], state
    print(f"control: {len(duplicates)} duplicate tickets of {len(numbers)}; at most "
          f"{state['most_inside']} holders at once; {len(state['errors'])} of {REPLICAS * 10} failed "
          f"({collections.Counter(type(e).__name__ for e in state['errors'])})")
