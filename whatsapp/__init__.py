"""WhatsApp Cloud API protocol, with no Rasa inside: typed inbound and outbound messages,
webhook signatures, Meta's limits and error codes, and an async Graph API client.
Used by the gateway (gateway/), the Rasa channel (connectors/whatsapp) and the local simulator
(simulator/); it imports nothing of the project (tests/test_architecture.py)."""
