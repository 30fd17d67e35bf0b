"""Rasa channel connectors. ``connectors.whatsapp.WhatsAppInput`` is the WhatsApp Cloud API
channel (credentials.yml key ``connectors.whatsapp.WhatsAppInput``)."""
