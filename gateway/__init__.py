"""The WhatsApp gateway: everything WhatsApp asks of the clinic, in a process without Rasa.

The outbox (outbox.py, sender.py): every message the clinic sends is recorded, checked (PHI
guard, 24-hour window) and sent through one rate-limited Graph client, with retries and
dead letters. See README, "How it is built"."""
