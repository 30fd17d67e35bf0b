"""A message's journal line with its words sealed (issue 18): the webhook door's journal
(whatsapp/journal.py) holds what the patient wrote for the seconds between the 200 and the
flusher, and longer when a door dies; a copied segment should not reveal it.

The line keeps in clear what recovery and dedupe need (``type``, ``wamid``,
``conversation_id``, ``kind``, ``received_at``, ``redacted`` kinds, ``attempts``, the
Fernet-encrypted address) and seals the turn's ``text`` and tapped ``title`` together into one
``sealed`` field (``enc:v1:<key id>:…``, the clinic's keyring: clinic/at_rest.py). A line
written before this (``text`` in clear, no ``sealed``) reads as it is.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from clinic.at_rest import AtRestError, Sealer

SEALED = "sealed"
SEALED_FIELDS = ("text", "title")


def seal_record(record: Dict[str, Any], sealer: Sealer) -> Dict[str, Any]:
    """``record`` with its words moved into ``sealed`` (unchanged when it has none)."""
    words = {name: record[name] for name in SEALED_FIELDS if record.get(name) is not None}
    if not words:
        return record
    sealed = {key: value for key, value in record.items() if key not in SEALED_FIELDS}
    sealed[SEALED] = sealer.seal(json.dumps(words, ensure_ascii=False, separators=(",", ":")))
    return sealed


def open_record(record: Any, sealer: Sealer) -> Any:
    """The record with its words back in their fields; anything without ``sealed`` (a
    status, a quarantine note, a line written before sealing, a malformed line) as it is.
    A key the keyring lacks raises ``AtRestError`` naming it: the segment stays."""
    if not isinstance(record, dict) or not isinstance(record.get(SEALED), str):
        return record
    words = json.loads(sealer.open(record[SEALED]))
    if not isinstance(words, dict):
        raise AtRestError("a journal line's sealed field does not hold an object")
    opened = {key: value for key, value in record.items() if key != SEALED}
    opened.update({name: words[name] for name in SEALED_FIELDS if name in words})
    return opened


def reseal_record(record: Any, sealer: Sealer) -> Any:
    """For a rotation: the record sealed under the current key (a line in clear gets sealed)."""
    if not isinstance(record, dict):
        return record
    return seal_record(open_record(record, sealer), sealer)


def key_id_of_record(record: Any) -> str:
    """The key id a line's words are sealed under; ``plaintext`` (words in clear) or
    ``none`` (no words: a status, a reaction)."""
    if isinstance(record, dict) and isinstance(record.get(SEALED), str):
        return Sealer.key_id_of(record[SEALED]) or "plaintext"
    if isinstance(record, dict) and any(record.get(name) is not None for name in SEALED_FIELDS):
        return "plaintext"
    return "none"
