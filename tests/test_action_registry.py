"""The action server loads: every custom action the domain names is registered, and no
helper base class trips the SDK's registration (it registers every non-abstract Action)."""

from __future__ import annotations

from pathlib import Path

import yaml
from rasa_sdk.executor import ActionExecutor


def domain_custom_actions() -> set:
    names = set()
    for path in Path("domain").glob("*.yml"):
        for action in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("actions") or []:
            name = action if isinstance(action, str) else next(iter(action))
            if not name.startswith("utter_"):
                names.add(name)
    return names


def test_every_custom_action_in_the_domain_is_registered():
    executor = ActionExecutor()
    executor.register_package("actions")
    expected = domain_custom_actions()
    assert expected, "the domain names no custom action?"
    assert expected - set(executor.actions) == set()
