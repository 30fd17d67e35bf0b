"""Rasa's lock store from the environment: Redis when ``REDIS_URL`` is set, in memory otherwise.

endpoints.yml names ``addons.lock_store.EnvironmentLockStore``; Rasa loads a custom lock store
by module path and calls it with ``endpoint_config=``. Without ``REDIS_URL`` (one Rasa
process, ``make run``) that is Rasa's ``InMemoryLockStore``, as before. With it
(``redis://host:6379/1``, ``rediss://…`` for TLS, ``unix:///run/redis.sock?db=1``) it is
``AtomicRedisLockStore``: every Rasa replica takes a conversation's lock in the same Redis,
so one conversation is processed by one replica at a time, in the order its messages came.

Why not Rasa's ``type: redis`` (``RedisLockStore``) as it is — what matters for us from
Rasa's known issue RasaHQ/rasa#9213 ("RedisLockStore don't tread safe", two Rasa servers,
one user's two messages sent to different servers):

* Rasa's ``RedisLockStore`` changes a conversation's lock with GET, change in Python, SET.
  Two replicas taking a message of the same conversation at the same moment both read the
  same lock and issue the *same* ticket number; the second SET overwrites the first, and
  both replicas believe it is their turn: the conversation is processed twice at once
  (interleaved events, one reply computed from a tracker that misses the other message).
  Its clean-up (remove my ticket; nobody waiting? delete the key) races the same way: it can
  delete a lock in which another replica has just queued, and that replica's message then
  fails with "Could not acquire lock" (a lost turn). Rasa's fix (``ConcurrentRedisLockStore``,
  RasaHQ/rasa#11256) was reverted (#11428) and is not in Rasa Open Source 3.6.
  Here every read-change-write of a lock is one Redis transaction (WATCH/MULTI/EXEC, retried
  when another replica changed the key in between), so tickets are unique and a queued
  ticket is never deleted. tests/test_lock_store.py shows both (Rasa's store issues
  duplicate tickets under contention, this one does not); tests/test_rasa_replicas_e2e.py
  runs two Rasa replicas.
* Lock lifetime vs. turn time: a ticket expires ``TICKET_LOCK_LIFETIME`` seconds after it was
  issued (Rasa's environment variable, read when Rasa starts; default 60 s), *including the
  time spent waiting behind earlier messages of the conversation*. A turn (model + action
  server calls, whose own timeout in Rasa is 5 minutes) that takes longer loses the lock and
  the next message of that conversation runs at the same time. So the lifetime must exceed
  the longest turn plus the queue a burst from one patient builds; it is also how long a
  conversation stays blocked after a replica is killed while holding its lock (the key
  itself expires a minute after its last ticket, so nothing stays in Redis for good). The
  project's turns take well under a second; 60 s is kept.
* Key prefix: keys are ``<key_prefix>:lock:<conversation id>`` (Rasa's format, so Rasa's own
  store and this one could share locks). Rasa accepts an alphanumeric prefix only (others
  are ignored with a warning). Give each deployment that shares a Redis its own prefix
  (``key_prefix`` in endpoints.yml, or ``RASA_LOCK_KEY_PREFIX``), else a staging and a
  production Rasa serialise — and expire — each other's conversations.
* Waiting: Rasa polls a waiting ticket every second; here every ``poll_seconds`` (0.1 s by
  default), so a patient's quick second message does not wait a whole second for the first.
* Redis down: taking a lock fails (``LockError``) and the turn with it — nothing is processed
  without a lock. The WhatsApp channel answers the gateway's turn with HTTP 500, which the
  gateway counts as a failed attempt of that message (gateway/relay.py): a Redis outage
  longer than its retries (WHATSAPP_INBOUND_MAX_ATTEMPTS) dead-letters the messages that
  came in meanwhile (quarantine and a ticket). Telling "no lock" apart from "failed on this
  message" is left to the gateway's side (issue 16, item 2).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, AsyncContextManager, Callable, Optional, Text, Tuple

from rasa.core.lock import TicketLock
from rasa.core.lock_store import (
    DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX,
    DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
    LOCK_LIFETIME,
    InMemoryLockStore,
    LockError,
    LockStore,
    RedisLockStore,
)

logger = logging.getLogger(__name__)

REDIS_URL_ENV = "REDIS_URL"
KEY_PREFIX_ENV = "RASA_LOCK_KEY_PREFIX"
DEFAULT_POLL_SECONDS = 0.1
# A lock's key expires this long after its last ticket, so a crashed replica leaves nothing
# behind in Redis for good (an expired ticket no longer locks anything anyway).
KEY_GRACE_SECONDS = 60
UNCHANGED = object()  # _change: nothing to write (a write would restart every watcher's transaction)


def key_prefix_for(prefix: Optional[Text]) -> Text:
    """Rasa's key format: ``<prefix>:lock:`` for an alphanumeric prefix, else ``lock:``."""
    if prefix and str(prefix).isalnum():
        return f"{prefix}:{DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX}"
    if prefix:
        logger.warning("Ignoring the non-alphanumeric lock key prefix %r", prefix)
    return DEFAULT_REDIS_LOCK_STORE_KEY_PREFIX


class AtomicRedisLockStore(RedisLockStore):
    """Rasa's ``RedisLockStore`` whose every change of a lock is one Redis transaction."""

    def __init__(self, url: Text, key_prefix: Optional[Text] = None,
                 socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_IN_SECONDS,
                 poll_seconds: float = DEFAULT_POLL_SECONDS) -> None:
        import redis

        # Not RedisLockStore.__init__: it takes host/port/db separately; a URL also gives
        # TLS (rediss://), a Unix socket (unix://) and credentials in one setting.
        self.red = redis.StrictRedis.from_url(url, socket_timeout=float(socket_timeout))
        self.key_prefix = key_prefix_for(key_prefix)
        self.poll_seconds = float(poll_seconds)
        LockStore.__init__(self)

    # ── one read-change-write of a conversation's lock, atomically ──────────────────────────
    def _change(self, conversation_id: Text,
                change: Callable[[Optional[TicketLock]], Tuple[Any, Any]]) -> Any:
        """``change(lock or None) -> (lock to save, None to delete or UNCHANGED, result)``,
        applied in a WATCH/MULTI/EXEC transaction: redone from a fresh read when another
        replica changed the key in between. Only real changes are written: waiters look
        again every ``poll_seconds``, and a write per look would make the holder's own
        clean-up retry behind theirs."""
        key = self.key_prefix + conversation_id

        def attempt(pipe: Any) -> Any:
            raw = pipe.get(key)  # immediate: the key is watched
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            new, result = change(lock)
            pipe.multi()
            if new is UNCHANGED:
                pass  # an empty transaction: EXEC succeeds, nothing is written
            elif new is None:
                pipe.delete(key)
            else:
                last_expiry = max((t.expires for t in new.tickets), default=time.time())
                ttl_ms = max(1, int((last_expiry - time.time() + KEY_GRACE_SECONDS) * 1000))
                pipe.set(key, new.dumps(), px=ttl_ms)
            return result

        return self.red.transaction(attempt, key, value_from_callable=True)

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def change(lock: Optional[TicketLock]) -> Tuple[TicketLock, int]:
            lock = lock or TicketLock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, change)
        except Exception as error:  # as Rasa's: the caller sees a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: Text) -> None:
        def change(lock: Optional[TicketLock]) -> Tuple[Any, None]:
            if lock is None:
                return UNCHANGED, None
            before = len(lock.tickets)
            lock.remove_expired_tickets()
            return (lock if len(lock.tickets) != before else UNCHANGED), None

        self._change(conversation_id, change)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        def change(lock: Optional[TicketLock]) -> Tuple[Any, None]:
            if lock is None:
                return UNCHANGED, None
            lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, change)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove my ticket and, in the same transaction, the lock if nobody else queued."""
        def change(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is None:
                return UNCHANGED, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.is_someone_waiting() else None), None

        self._change(conversation_id, change)

    def lock(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME,
             wait_time_in_seconds: Optional[float] = None) -> AsyncContextManager[TicketLock]:
        wait = self.poll_seconds if wait_time_in_seconds is None else wait_time_in_seconds
        return super().lock(conversation_id, lock_lifetime, wait)


class EnvironmentLockStore(LockStore):
    """endpoints.yml's lock store: ``AtomicRedisLockStore`` when ``REDIS_URL`` is set, else
    Rasa's ``InMemoryLockStore``. A factory in the shape Rasa loads (a class called with
    ``endpoint_config=``): the object made is one of those two, never this class.

    endpoints.yml options (all optional): ``key_prefix`` (or ``RASA_LOCK_KEY_PREFIX``),
    ``socket_timeout`` (seconds), ``poll_seconds`` (how often a waiting message looks again).
    """

    def __new__(cls, endpoint_config: Any = None, **_: Any) -> LockStore:  # type: ignore[misc]
        options = dict(getattr(endpoint_config, "kwargs", None) or {})
        url = os.environ.get(REDIS_URL_ENV, "").strip()
        if not url:
            logger.info("Lock store: in memory (one Rasa process; set %s for several)", REDIS_URL_ENV)
            return InMemoryLockStore()
        store = AtomicRedisLockStore(
            url,
            key_prefix=os.environ.get(KEY_PREFIX_ENV) or options.get("key_prefix"),
            socket_timeout=float(options.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT_IN_SECONDS)),
            poll_seconds=float(options.get("poll_seconds", DEFAULT_POLL_SECONDS)),
        )
        logger.info("Lock store: Redis (%s), key prefix %r, ticket lifetime %ss", store.red.connection_pool
                    .connection_kwargs.get("host") or "unix socket", store.key_prefix, LOCK_LIFETIME)
        return store
