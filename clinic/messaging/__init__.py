"""The clinic's WhatsApp bookkeeping tables: the durable inbox, contacts (encrypted
addresses, the 24-hour window), outbound messages and their statuses (store.py), and the
quarantine of inbound messages that could not be read, stored or answered (quarantine.py).
Used by the gateway (gateway/), the Rasa channel (connectors/whatsapp/), the staff inbox's
failure pages, reports and the other senders; no protocol code here (that is whatsapp/)."""
