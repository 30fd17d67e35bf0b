"""The Rasa side of WhatsApp: the channel Rasa loads (register it in credentials.yml as
``connectors.whatsapp.WhatsAppInput:``; settings come from the environment) with the
``/turn`` endpoint the gateway calls and the Rasa-only development mode, its output channel,
and the paused-conversation safety net. The gateway itself (door, relay, render, outbox) is
gateway/, a process without Rasa.

The channel class is imported lazily, so importing this package does not load Rasa."""

__all__ = ["WhatsAppInput"]


def __getattr__(name: str):
    if name == "WhatsAppInput":
        from connectors.whatsapp.channel import WhatsAppInput

        return WhatsAppInput
    raise AttributeError(name)
