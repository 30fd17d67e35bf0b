"""WhatsApp Cloud API channel for Rasa. Register it in credentials.yml as
``connectors.whatsapp.WhatsAppInput:`` (settings come from the environment).

The channel class is imported lazily, so processes without Rasa (the staff inbox, which
reads ``connectors.whatsapp.settings`` to send staff replies) don't load Rasa."""

__all__ = ["WhatsAppInput"]


def __getattr__(name: str):
    if name == "WhatsAppInput":
        from connectors.whatsapp.channel import WhatsAppInput

        return WhatsAppInput
    raise AttributeError(name)
