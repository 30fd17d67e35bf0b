"""A local WhatsApp Cloud API simulator: Meta's Graph API (sends, read receipts, media),
signed webhooks with Meta's delivery semantics, a control API for tests and benchmarks,
and a WhatsApp-like chat page. See simulator/README.md."""

from .app import create_app, get_simulator
from .config import ConfigError, SimulatorConfig

__all__ = ["create_app", "get_simulator", "SimulatorConfig", "ConfigError"]
__version__ = "0.1.0"
