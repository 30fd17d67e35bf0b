"""Choosing a domain response's variation the way Rasa does, for code that renders a
response outside Rasa's NLG: the paused-conversation safety net, and the session-start
welcome (rendered before the slots of its own events exist).

Among the variations whose every condition holds, the one with the most conditions wins
(as addons/rasa_patches.py makes Rasa do); else the first without a condition or channel.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

Variation = Mapping[str, Any]
_PLACEHOLDER = re.compile(r"(?<!{){([A-Za-z_]+)}(?!})")


def select_variation(variations: Sequence[Variation], slots: Mapping[str, Any]) -> Optional[Variation]:
    matching = [v for v in variations if v.get("condition") and not v.get("channel") and all(
        slots.get(c.get("name")) == c.get("value") for c in v["condition"])]
    if matching:
        return max(matching, key=lambda v: len(v["condition"]))
    return next((v for v in variations if not v.get("condition") and not v.get("channel")), None)


def fill(text: str, values: Mapping[str, Any]) -> str:
    """``{slot}`` placeholders filled from ``values``; unknown ones are left as they are."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), text)
