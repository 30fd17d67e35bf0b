"""WhatsApp Cloud API protocol, with no Rasa inside: typed inbound and outbound messages,
webhook signatures, Meta's limits and error codes, and an async Graph API client.
Used by the Rasa connector (connectors/whatsapp) and by the local simulator (simulator/)."""
