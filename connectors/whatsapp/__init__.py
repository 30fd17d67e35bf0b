"""WhatsApp Cloud API channel for Rasa. Register it in credentials.yml as
``connectors.whatsapp.WhatsAppInput:`` (settings come from the environment)."""

from connectors.whatsapp.channel import WhatsAppInput

__all__ = ["WhatsAppInput"]
